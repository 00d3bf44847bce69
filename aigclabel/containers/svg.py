"""SVG images: an XMP packet with ``TC260:AIGC`` inside the document's ``<metadata>`` element.

No TC260 guide names an SVG placement ([UNCONFIRMED] in our digest). SVG's own metadata slot is the
``<metadata>`` element, which SVG 1.1 §21 and SVG 2 §5.12 say should hold RDF; an XMP ``x:xmpmeta``
wrapper around that RDF is what Adobe Illustrator writes and what exiftool reads back as XMP. The
images guide already puts the label in XMP as ``TC260:AIGC``, so SVG carries the same property and
every XMP-aware tool finds it the same way it finds it in a JPEG.

Editing is textual: the first ``<metadata>`` of the document gets an ``x:xmpmeta`` block of its own
(or one is created as the first child of the root ``<svg>``); any ``TC260:AIGC`` already present,
under any prefix, element or attribute form, is removed first, so one label remains. All other
bytes stay as they were, and write-then-strip gives the original back. The result is re-parsed
(defusedxml) and checked before it is written. Reading streams through the document with
``iterparse``. Compressed ``.svgz`` files are not handled. An empty or self-closing ``<metadata>`` is
left alone and ours is added beside it; a self-closing root ``<svg/>`` has to be opened to take the
block, so such a file does not strip back to identical bytes.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .. import xmp
from ..errors import LimitExceededError, MalformedFileError, UnsupportedFormatError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register

#: Largest SVG we edit in memory (reading streams and has no limit).
MAX_SVG_BYTES = 64 << 20
#: Text formats whose files may start with an ``<svg>`` tag but are not SVG documents.
_FOREIGN_TEXT_SUFFIXES = frozenset({".html", ".htm", ".xhtml", ".md", ".markdown", ".txt", ".text"})
_AIGC_TAG = f"{{{xmp.TC260_NS}}}AIGC"
#: What may come before the first ``<`` of an SVG: whitespace as ``re``'s ``\s`` and ``str.strip`` see
#: it in Latin-1-decoded bytes, and a UTF-8 byte order mark.
_LEADING = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\xef\xbb\xbf"
_ATTRS = r"""(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*"""
_PROLOG = re.compile(
    r"""(?:\ufeff)?(?:\s+|<\?[^?]*(?:\?(?!>)[^?]*)*\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)*""", re.S | re.I
)
_ROOT = re.compile(r"<(?P<p>(?:[A-Za-z_][\w.-]*:)?)svg(?P<attrs>" + _ATTRS + r")(?P<close>/?>)")
_EMPTY_BLOCK = re.compile(
    r"""<x:xmpmeta\s+xmlns:x="adobe:ns:meta/"\s*>\s*<rdf:RDF\s+xmlns:rdf="[^"]*"\s*>\s*</rdf:RDF>\s*</x:xmpmeta>"""
)


def root_tag(text: str) -> re.Match[str] | None:
    """The ``<svg>`` start tag after the prolog of an SVG document's text (group ``p``: its namespace prefix,
    ``close``: how it ends), or ``None``."""
    prolog = _PROLOG.match(text)
    return _ROOT.match(text, prolog.end() if prolog else 0)


def _values(path: Path) -> list[str]:
    found: list[str] = []
    try:
        for _event, element in SafeET.iterparse(str(path), events=("end",)):
            if _AIGC_TAG in element.attrib:
                found.append(element.attrib[_AIGC_TAG])
            if element.tag == _AIGC_TAG:
                found.append(element.text or "")
            element.clear()
    except DefusedXmlException as exc:
        raise MalformedFileError(f"SVG uses forbidden XML constructs ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise MalformedFileError(f"SVG is not well-formed XML: {exc}") from None
    return found


def _text_values(text: str) -> list[str]:
    try:
        root = SafeET.fromstring(text.encode("utf-8"))
    except DefusedXmlException as exc:
        raise MalformedFileError(f"SVG uses forbidden XML constructs ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise MalformedFileError(f"SVG is not well-formed XML: {exc}") from None
    found: list[str] = []
    for element in root.iter():
        if _AIGC_TAG in element.attrib:
            found.append(element.attrib[_AIGC_TAG])
        if element.tag == _AIGC_TAG:
            found.append(element.text or "")
    return found


@register
class SvgContainer(Container):
    """SVG vector images (uncompressed)."""

    name = "svg"
    description = "SVG image"
    extensions = (".svg",)
    mime_type = "image/svg+xml"
    media = MediaKind.DOCUMENT
    primary_location = "XMP TC260:AIGC in <metadata>"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        if head.startswith(b"\x1f\x8b") or path.suffix.lower() in _FOREIGN_TEXT_SUFFIXES:
            return False
        if head.lstrip(_LEADING)[:1] != b"<":  # binary formats sniffed after SVG skip the regexes
            return False
        text = head.decode("latin-1")
        if root_tag(text) is not None:
            return True
        # A long prolog can push the root past the sniffed bytes: then trust the suffix.
        return path.suffix.lower() == ".svg" and text.lstrip("\ufeff\xef\xbb\xbf \t\r\n").startswith("<")

    def read(self, path: Path) -> list[FoundLabel]:
        return [FoundLabel.from_text("XMP TC260:AIGC in <metadata>", v) for v in _values(path)]

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        text = load_svg(src)
        edited = set_svg_label(text, label.to_json() if label is not None else None)
        with open(dst, "wb") as out:
            out.write(edited.encode("utf-8"))

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of the document as :meth:`strip` leaves it (the label block removed)."""
        return hashlib.sha256(set_svg_label(load_svg(path), None).encode("utf-8")).digest()


def load_svg(path: Path) -> str:
    """The text of the SVG document at ``path`` (UTF-8, at most :data:`MAX_SVG_BYTES`; typed errors otherwise)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_SVG_BYTES + 1)
    if len(data) > MAX_SVG_BYTES:
        raise LimitExceededError(f"SVG is over {MAX_SVG_BYTES} bytes; too large to edit in memory")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFormatError("UTF-16 SVG documents are not supported; convert to UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsupportedFormatError("only UTF-8 SVG documents can be edited losslessly") from None


_EMPTY_METADATA = re.compile(r"[ \t]*<metadata>\s*</metadata>\r?\n?")


def set_svg_label(text: str, value: str | None) -> str:
    """``text`` with one ``TC260:AIGC`` holding ``value`` (``None``: all removed), other bytes kept."""
    before = _text_values(text)
    if not before:
        edited = text
    else:
        # Shells that were already empty are not ours to remove: hide them behind NUL-delimited
        # markers (NUL cannot occur in XML) while the ones our removal empties are dropped.
        kept: list[str] = []

        def hide(match: re.Match[str]) -> str:
            kept.append(match.group(0))
            return f"\0{len(kept) - 1}\0"

        edited = _EMPTY_METADATA.sub(hide, _EMPTY_BLOCK.sub(hide, text))
        # xmp's textual remover handles every prefix, element and attribute form of the property.
        edited = xmp._remove_text(edited)
        edited = _EMPTY_METADATA.sub("", _EMPTY_BLOCK.sub("", edited))
        edited = re.sub("\0(\\d+)\0", lambda m: kept[int(m.group(1))], edited)
    if value is not None:
        edited = _insert(edited, value)
    if _text_values(edited) != ([value] if value is not None else []):
        raise MalformedFileError("could not edit the SVG metadata safely (unexpected structure)")
    return edited


def _insert(text: str, value: str) -> str:
    # Search a copy with comments and CDATA blanked out (same length), so markup quoted there is not
    # mistaken for elements; edit the real text at the positions found.
    masked = re.sub(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>", lambda m: " " * len(m.group(0)), text, flags=re.S)
    root = root_tag(masked)
    if root is None:
        raise MalformedFileError("no <svg> root element found")
    newline = "\r\n" if "\r\n" in text else "\n"
    content = xmp.xml_text(value)
    block = (
        f'<x:xmpmeta xmlns:x="{xmp.X_NS}"><rdf:RDF xmlns:rdf="{xmp.RDF_NS}">'
        f'<rdf:Description rdf:about="" xmlns:{xmp.TC260_PREFIX}="{xmp.TC260_NS}">'
        f"<{xmp.TC260_PREFIX}:AIGC>{content}</{xmp.TC260_PREFIX}:AIGC>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    prefix = root.group("p")
    meta = re.compile(r"<" + re.escape(prefix) + r"metadata(?P<attrs>" + _ATTRS + r")(?P<close>/?>)")
    found = meta.search(masked, root.end())
    if found is not None and found.group("close") == ">":
        closing = masked.find(f"</{prefix}metadata", found.end())
        if closing < 0:
            raise MalformedFileError("<metadata> element is not closed")
        # An empty <metadata> is left alone (ours comes separately), so stripping restores it exactly.
        if text[found.end() : closing].strip():
            return text[:closing] + block + text[closing:]
    element = f"<{prefix}metadata>{block}</{prefix}metadata>"
    if root.group("close") == "/>":
        opened = f"<{prefix}svg{root.group('attrs')}>"
        return text[: root.start()] + opened + element + f"</{prefix}svg>" + text[root.end() :]
    following = re.match(r"[ \t]*\r?\n([ \t]*)", text[root.end() :])
    if following:
        at = root.end() + following.end() - len(following.group(1))
        return text[:at] + following.group(1) + element + newline + text[at:]
    return text[: root.end()] + element + text[root.end() :]
