"""Office Open XML documents (DOCX, XLSX, PPTX and their templates): custom property ``AIGC``.

TC260-PG-20258A §6.1 stores the bare seven-field JSON as a custom document property::

    docProps/custom.xml
    <property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="N" name="AIGC"><vt:lpwstr>JSON</vt:lpwstr></property>

The part is registered in ``_rels/.rels`` (relationship type ``.../custom-properties``) and in
``[Content_Types].xml`` when it is new. An existing custom.xml is edited textually: other properties
keep their bytes, the new ``pid`` is the next free one (>= 2, as Office requires). Every other
member of the package is copied raw by :mod:`._zip`, so its compressed bytes and CRC stay identical.

Reading reports every custom property whose name contains ``AIGC`` (Annex E a: "a field whose name
contains AIGC"), so a second label written by another tool is visible; writing and stripping remove
them all. Office matches property names case-insensitively, and so do we. ISO/IEC 29500 *Strict*
packages are handled too: an existing Strict custom part is edited in its own namespaces (a new part
is written in Transitional markup, which Strict consumers also accept).
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from ..errors import MalformedFileError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._zip import LOCAL_SIG, ZipArchive, rewrite_zip

CONTENT_TYPES = "[Content_Types].xml"
ROOT_RELS = "_rels/.rels"
CUSTOM_PART = "docProps/custom.xml"
FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
CUSTOM_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
#: ISO/IEC 29500 Strict spellings of the same namespaces and relationship type.
STRICT_CUSTOM_NS = "http://purl.oclc.org/ooxml/officeDocument/customProperties"
STRICT_VT_NS = "http://purl.oclc.org/ooxml/officeDocument/docPropsVTypes"
STRICT_CUSTOM_REL = "http://purl.oclc.org/ooxml/officeDocument/relationships/customProperties"
CUSTOM_TYPE = "application/vnd.openxmlformats-officedocument.custom-properties+xml"

#: Fragments of the main-part content types of Word, Excel and PowerPoint packages (incl. templates
#: and macro-enabled variants). Other OPC packages (Visio, XPS, NuGet) are not ours.
_MAIN_TYPES = re.compile(
    r"(?:wordprocessingml|spreadsheetml|presentationml)\.(?:document|template|sheet|presentation|slideshow)\.main\+xml"
    r"|ms-(?:word|excel|powerpoint)\.[\w.]*macroenabled[\w.]*\.main\+xml",
    re.I,
)
_OOXML_SUFFIXES = (
    ".docx",
    ".docm",
    ".dotx",
    ".dotm",
    ".xlsx",
    ".xlsm",
    ".xltx",
    ".xltm",
    ".pptx",
    ".pptm",
    ".potx",
    ".potm",
    ".ppsx",
)


def parse_xml(data: bytes, what: str) -> ET.Element:
    """Parse a package part with defusedxml; hostile or broken XML becomes MalformedFileError."""
    try:
        root: ET.Element = SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise MalformedFileError(f"{what} uses forbidden XML constructs ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise MalformedFileError(f"{what} is not well-formed XML: {exc}") from None
    return root


def decode_xml(data: bytes, what: str) -> str:
    """Package XML as text (UTF-8, or UTF-16 with a BOM as the OPC spec also allows)."""
    try:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise MalformedFileError(f"{what} is UTF-16; only UTF-8 parts can be edited losslessly")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFileError(f"{what} is not UTF-8") from None


def close_tag(text: str, local: str) -> re.Match[str]:
    """The last ``</local>`` end tag (any namespace prefix, group 1) in XML ``text``: where to insert before it."""
    matches = list(re.finditer(r"</((?:[A-Za-z_][\w.-]*:)?)" + local + r"\s*>", text))
    if not matches:
        raise MalformedFileError(f"no </{local}> end tag to insert before")
    return matches[-1]


def _is_ooxml(archive: ZipArchive) -> bool:
    entry = archive.get(CONTENT_TYPES)
    if entry is None:
        return False
    root = parse_xml(archive.read(entry, 4 << 20), CONTENT_TYPES)
    # The main part is usually typed by an Override, but a Default for its extension is just as valid
    # (OPC Part 2 §10.1.2.2; some XLSX writers type every .xml part as the workbook that way).
    return any(
        _MAIN_TYPES.search(el.get("ContentType", ""))
        for tag in ("Override", "Default")
        for el in root.iter(f"{{{CT_NS}}}{tag}")
    )


@register
class OOXMLContainer(Container):
    """Word, Excel and PowerPoint documents and templates (Office Open XML packages)."""

    name = "ooxml"
    description = "Office Open XML document"
    extensions = _OOXML_SUFFIXES
    mime_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    media = MediaKind.DOCUMENT
    primary_location = "docProps/custom.xml property AIGC"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        if not head.startswith(LOCAL_SIG):
            return False
        try:
            return _is_ooxml(ZipArchive(path))
        except (MalformedFileError, OSError):
            # A damaged package is still ours if it says so, so that reading it gives a clear error.
            return path.suffix.lower() in _OOXML_SUFFIXES or head[30:49] == CONTENT_TYPES.encode()

    # ------------------------------------------------------------------ reading
    def _custom_part(self, archive: ZipArchive) -> str | None:
        """Name of the custom-properties part the root relationships point at (if any)."""
        rels = archive.get(ROOT_RELS)
        if rels is None:
            return None
        root = parse_xml(archive.read(rels), ROOT_RELS)
        for rel in root.iter(f"{{{RELS_NS}}}Relationship"):
            if rel.get("Type") in (CUSTOM_REL, STRICT_CUSTOM_REL) and rel.get("TargetMode", "Internal") == "Internal":
                target = rel.get("Target", "")
                return posixpath.normpath(target.lstrip("/")) if target else None
        return None

    def read(self, path: Path) -> list[FoundLabel]:
        archive = ZipArchive(path)
        if not _is_ooxml(archive):
            raise MalformedFileError(f"{path} is a ZIP file but not a Word, Excel or PowerPoint package")
        part = self._custom_part(archive) or CUSTOM_PART
        found: list[FoundLabel] = []
        entries = archive.find_all_ci(part)  # a second copy of the part is a second (hidden) label
        for index, entry in enumerate(entries):
            root = parse_xml(archive.read(entry), entry.name)
            where = f"{entry.name} (copy {index + 1} of {len(entries)})" if len(entries) > 1 else entry.name
            for name, value in _label_properties(root):
                found.append(FoundLabel.from_text(f"{where} property {name}", value))
        return found

    # ------------------------------------------------------------------ writing
    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        archive = ZipArchive(src)
        if not _is_ooxml(archive):
            raise MalformedFileError(f"{src} is a ZIP file but not a Word, Excel or PowerPoint package")
        replace: dict[str, bytes] = {}
        add: list[tuple[str, bytes]] = []
        linked = self._custom_part(archive)
        part = linked or CUSTOM_PART
        copies = archive.find_all_ci(part)
        entry = copies[0] if copies else None  # further copies are dropped: one part, one label
        value = label.to_json() if label is not None else None
        if entry is not None:
            old = archive.read(entry)
            new = set_custom_property(old, value, entry.name)
            if new != old:  # stripping an unlabelled file leaves it byte-identical
                replace[entry.name] = new
        elif value is not None:
            add.append((part, set_custom_property(None, value, part)))
        if value is not None and linked is None:
            rels = archive.get(ROOT_RELS)
            if rels is None:
                raise MalformedFileError(f"package has no {ROOT_RELS}")
            replace[ROOT_RELS] = add_relationship(archive.read(rels), ROOT_RELS, CUSTOM_REL, "docProps/custom.xml")[0]
        if value is not None:
            ct_entry = archive.get(CONTENT_TYPES)
            assert ct_entry is not None  # _is_ooxml checked it
            ct = archive.read(ct_entry)
            new_ct = register_content_type(ct, "/" + (entry.name if entry else part), CUSTOM_TYPE)
            if new_ct != ct:
                replace[CONTENT_TYPES] = new_ct
        rewrite_zip(archive, dst, replace, add, drop=copies[1:])

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over every package member except the document-properties parts (``docProps/*``)
        and the package relationships/content types that only register them: names and
        uncompressed bytes, in name order. Editing properties leaves it unchanged; editing the
        document body, a sheet or a slide changes it."""
        skip = {CONTENT_TYPES.casefold(), ROOT_RELS.casefold()}
        return ZipArchive(path).digest(lambda e: e.name.casefold().startswith("docprops/") or e.name.casefold() in skip)


def _property_spans(text: str) -> list[tuple[int, int, str, int]]:
    """(start, end, name, pid) of every ``<property>`` element, found textually."""
    spans = []
    pattern = re.compile(
        r"<(?P<p>(?:[A-Za-z_][\w.-]*:)?)property\b(?P<attrs>[^>]*?)(?:/>|>.*?</(?P=p)property\s*>)", re.S
    )
    for match in pattern.finditer(text):
        attrs = match.group("attrs")
        name = re.search(r"""\bname\s*=\s*(?:"([^"]*)"|'([^']*)')""", attrs)
        pid = re.search(r"""\bpid\s*=\s*["']\s*(\d+)\s*["']""", attrs)
        spans.append(
            (
                match.start(),
                match.end(),
                (name.group(1) or name.group(2) or "") if name else "",
                int(pid.group(1)) if pid else 0,
            )
        )
    return spans


def set_custom_property(part: bytes | None, value: str | None, what: str) -> bytes:
    """``part`` (a custom.xml, or ``None`` for a new one) with one ``AIGC`` property set to ``value``
    (``None``: every AIGC property removed). Other bytes are kept; the result is checked by parsing."""
    from xml.sax.saxutils import escape  # imports urllib.request and ssl: load it only to write

    if part is None:
        text = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Properties xmlns="{CUSTOM_NS}" xmlns:vt="{VT_NS}"></Properties>'
        )
    else:
        text = decode_xml(part, what)
    root = parse_xml(text.encode(), what)
    if root.tag not in (f"{{{CUSTOM_NS}}}Properties", f"{{{STRICT_CUSTOM_NS}}}Properties"):
        raise MalformedFileError(f"{what} is not a custom-properties part")
    vt_ns = STRICT_VT_NS if root.tag.startswith(f"{{{STRICT_CUSTOM_NS}}}") else VT_NS
    for start, end, name, _pid in reversed(_property_spans(text)):
        if "aigc" in name.casefold():
            # Take the whitespace before the element with it, so removal leaves no blank line.
            while start > 0 and text[start - 1] in " \t\r\n":
                start -= 1
            text = text[:start] + text[end:]
    if value is not None:
        used = [pid for _s, _e, _n, pid in _property_spans(text)]
        pid = max([1, *used]) + 1
        close = close_tag(text, "Properties")
        prefix = close.group(1)
        vt = re.search(r"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']""" + re.escape(vt_ns) + "[\"']", text)
        vt_open = f"{vt.group(1)}:lpwstr" if vt else "vt:lpwstr"
        vt_decl = "" if vt else f' xmlns:vt="{vt_ns}"'
        element = (
            f'<{prefix}property fmtid="{FMTID}" pid="{pid}" name="AIGC">'
            f"<{vt_open}{vt_decl}>{escape(value)}</{vt_open}></{prefix}property>"
        )
        text = text[: close.start()] + element + text[close.start() :]
    result = text.encode("utf-8")
    values = [v for _name, v in _label_properties(parse_xml(result, what))]
    if values != ([value] if value is not None else []):
        raise MalformedFileError(f"could not edit {what} safely (unexpected structure)")
    return result if part is None or result != part else part


def _label_properties(root: ET.Element) -> list[tuple[str, str]]:
    """(name, text) of every property whose name contains AIGC, in Transitional or Strict markup."""
    found = []
    for prop in root.iter():
        if isinstance(prop.tag, str) and prop.tag.rsplit("}", 1)[-1] == "property":
            name = prop.get("name", "")
            if "aigc" in name.casefold():
                found.append((name, "".join(child.text or "" for child in prop)))
    return found


def add_relationship(data: bytes, what: str, rel_type: str, target: str) -> tuple[bytes, str]:
    """A relationships part with one more relationship (the first free ``rIdN``), and that id."""
    from xml.sax.saxutils import quoteattr  # imports urllib.request and ssl: load it only to write

    text = decode_xml(data, what)
    root = parse_xml(data, what)
    ids = {rel.get("Id", "") for rel in root.iter(f"{{{RELS_NS}}}Relationship")}
    number = 1
    while f"rId{number}" in ids:
        number += 1
    close = close_tag(text, "Relationships")
    element = (
        f"<{close.group(1)}Relationship Id={quoteattr(f'rId{number}')} Type={quoteattr(rel_type)} "
        f"Target={quoteattr(target)}/>"
    )
    result = (text[: close.start()] + element + text[close.start() :]).encode()
    parse_xml(result, what)
    return result, f"rId{number}"


def register_content_type(data: bytes, part_name: str, content_type: str) -> bytes:
    """``[Content_Types].xml`` with an Override typing ``part_name`` (unchanged if it has one)."""
    from xml.sax.saxutils import quoteattr  # imports urllib.request and ssl: load it only to write

    root = parse_xml(data, CONTENT_TYPES)
    for override in root.iter(f"{{{CT_NS}}}Override"):
        if override.get("PartName", "").casefold() == part_name.casefold():
            return data
    text = decode_xml(data, CONTENT_TYPES)
    close = close_tag(text, "Types")
    element = f"<{close.group(1)}Override PartName={quoteattr(part_name)} ContentType={quoteattr(content_type)}/>"
    result = (text[: close.start()] + element + text[close.start() :]).encode()
    parse_xml(result, CONTENT_TYPES)
    return result
