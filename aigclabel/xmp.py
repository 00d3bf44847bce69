"""The TC260 XMP property: find, set and remove ``TC260:AIGC`` inside an existing XMP packet.

The label lives in namespace ``http://www.tc260.org.cn/ns/AIGC/1.0/`` (prefix ``TC260``) as the
simple property ``AIGC`` holding the bare seven-field JSON (TC260-PG-20259A). Writers emit the
element form ``<TC260:AIGC>{&quot;Label&quot;...}</TC260:AIGC>`` that real producer files use;
readers accept the element and the attribute form, under any prefix bound to the namespace.

Editing is textual on purpose: everything else in the packet (other namespaces, comments, the
``xpacket`` wrapper, padding) stays byte-for-byte as it was. Each edit is verified by re-parsing;
if the text surgery does not give exactly the intended result the packet is rebuilt with
ElementTree, which keeps every property but may rename namespace prefixes.

Reading (:func:`find_aigc`, and the check before an edit) drives :mod:`xml.parsers.expat` directly
and keeps only the ``TC260:AIGC`` text, because building a whole tree for one property dominated
the cost of inspecting a file. The packets that need a tree (rebuild, :func:`has_properties`) go
through :mod:`defusedxml`. Both refuse any DOCTYPE (an XMP packet has no use for one) and
every entity declaration or external reference, so entity-expansion and external-entity attacks
raise a :class:`~aigclabel.errors.MalformedFileError` instead of eating memory or reading files.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn
from xml.parsers import expat

from .errors import MalformedFileError

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

TC260_NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"
TC260_PREFIX = "TC260"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X_NS = "adobe:ns:meta/"
#: Namespace of ``xmpNote:HasExtendedXMP`` (XMP Part 3), which names a JPEG's Extended XMP.
XMP_NOTE_NS = "http://ns.adobe.com/xmp/note/"

_AIGC_TAG = f"{{{TC260_NS}}}AIGC"
_AIGC_NAME = f"{TC260_NS} AIGC"  # how expat names it with namespace_separator=" "
_DESCRIPTION_TAG = f"{{{RDF_NS}}}Description"
_ABOUT_ATTR = f"{{{RDF_NS}}}about"
_PREFIX_DECL = re.compile(r"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']""" + re.escape(TC260_NS) + r"""["']""")
_RDF_CLOSE = re.compile(r"</(?:[A-Za-z_][\w.-]*:)?RDF\s*>")


@functools.cache
def etree() -> ModuleType:
    """:mod:`xml.etree.ElementTree` with the XMP prefixes registered, imported by the first packet that
    needs a tree: reading a label needs only expat, and the tree modules cost a few ms of every
    one-file command."""
    import xml.etree.ElementTree as tree

    tree.register_namespace("x", X_NS)
    tree.register_namespace("rdf", RDF_NS)
    tree.register_namespace(TC260_PREFIX, TC260_NS)
    tree.register_namespace("xmpNote", XMP_NOTE_NS)
    return tree


def _parse(packet: bytes | str) -> ET.Element:
    import defusedxml.ElementTree as safe_tree
    from defusedxml import DefusedXmlException

    tree = etree()
    text = _decode(packet) if isinstance(packet, bytes) else packet
    text = text.strip("\x00 \t\r\n\ufeff")
    try:
        root: ET.Element = safe_tree.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise MalformedFileError(f"XMP packet uses forbidden XML constructs ({type(exc).__name__})") from None
    except tree.ParseError as exc:
        raise MalformedFileError(f"XMP packet is not well-formed XML: {exc}") from None
    return root


#: XMP allows UTF-16 and UTF-32 (XMP Part 1, 7.1): their BOMs, or how ``<?`` starts a packet without one.
_WIDE = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00\x00\x00<\x00\x00\x00?", "utf-32-be"),
    (b"<\x00\x00\x00?\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)


def _decode(packet: bytes) -> str:
    """The packet's text: UTF-8, or UTF-16/32 told by BOM or by the ``<?`` it starts with. Edits are
    always written back as UTF-8, which every XMP reader must accept."""
    for mark, encoding in _WIDE:
        if packet.startswith(mark):
            width = 4 if "32" in encoding else 2
            body = packet[: len(packet) - len(packet) % width]  # trailing NUL padding of odd length
            try:
                text = body.decode(encoding).lstrip("\ufeff")
            except UnicodeDecodeError:
                break
            if text.lstrip().startswith("<"):  # else it was not a wide packet after all
                return text
            break
    try:
        return packet.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFileError("XMP packet is not UTF-8, UTF-16 or UTF-32") from None


class _Forbidden(Exception):
    """Raised from an expat handler to stop at a DTD construct before expat acts on it."""


def _forbid(what: str) -> Callable[..., NoReturn]:
    def handler(*_args: object) -> NoReturn:
        raise _Forbidden(what)

    return handler


_REFUSE_DOCTYPE = _forbid("DTDForbidden")
_REFUSE_ENTITY = _forbid("EntitiesForbidden")
_REFUSE_EXTERNAL = _forbid("ExternalReferenceForbidden")


def _scan(text: str) -> list[str]:
    """Every ``TC260:AIGC`` value of a packet, checked for well-formedness in one expat pass.

    Same results as walking an ElementTree in document order (attribute form first, then the
    element's text before its first child), without building the tree.
    """
    values: list[str | list[str]] = []
    current: list[str] | None = None  # text parts of the AIGC element whose text is still open

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal current
        if attrs and _AIGC_NAME in attrs:
            values.append(attrs[_AIGC_NAME])
        if name == _AIGC_NAME:
            current = []
            values.append(current)
        else:
            current = None

    def end(_name: str) -> None:
        nonlocal current
        current = None

    def data(chunk: str) -> None:
        if current is not None:
            current.append(chunk)

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _REFUSE_DOCTYPE
    parser.EntityDeclHandler = _REFUSE_ENTITY
    parser.UnparsedEntityDeclHandler = _REFUSE_ENTITY
    parser.ExternalEntityRefHandler = _REFUSE_EXTERNAL
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    try:
        parser.Parse(text.strip("\x00 \t\r\n\ufeff"), True)
    except _Forbidden as exc:
        raise MalformedFileError(f"XMP packet uses forbidden XML constructs ({exc})") from None
    except expat.ExpatError as exc:
        raise MalformedFileError(f"XMP packet is not well-formed XML: {exc}") from None
    return [value if isinstance(value, str) else "".join(value) for value in values]


def find_aigc(packet: bytes | str) -> list[str]:
    """Every ``TC260:AIGC`` value in the packet, element and attribute forms, in document order."""
    if isinstance(packet, bytes):
        value = _our_packet_value(packet)
        if value is not None:
            return [value]
        packet = _decode(packet)
    if TC260_NS not in packet:
        return []
    return _scan(packet)


def new_packet(value: str) -> bytes:
    """A minimal XMP packet holding only ``TC260:AIGC``."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="{X_NS}">\n'
        f' <rdf:RDF xmlns:rdf="{RDF_NS}">\n'
        f"{_description(value, 'rdf')}\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _our_packet_value(packet: bytes) -> str | None:
    """The value of a packet that is byte for byte :func:`new_packet` of printable ASCII (what this
    package writes in every image it labels: a label's JSON, its quotes as ``&quot;``), else None.
    Such a packet is well-formed by construction and :func:`_scan` would return exactly ``[value]``,
    so the XML parser, a third of a bulk PNG inspection, is skipped."""
    if not (packet.startswith(_OURS_HEAD) and packet.endswith(_OURS_TAIL)):
        return None
    body = packet[len(_OURS_HEAD) : len(packet) - len(_OURS_TAIL)].replace(b"&quot;", b'"')
    return body.decode("ascii") if _PLAIN_TEXT(body) else None


def xml_text(value: str) -> str:
    """``value`` escaped for XML character data and double-quoted attribute values.

    The same as ``xml.sax.saxutils.escape(value, {'"': "&quot;"})`` without importing
    ``xml.sax.saxutils``, which pulls in ``urllib.request`` and ``ssl`` (15 ms at CLI start).
    """
    return value.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;").replace('"', "&quot;")


def _description(value: str, rdf_prefix: str) -> str:
    body = xml_text(value)
    return (
        f'  <{rdf_prefix}:Description {rdf_prefix}:about="" xmlns:{TC260_PREFIX}="{TC260_NS}">\n'
        f"   <{TC260_PREFIX}:AIGC>{body}</{TC260_PREFIX}:AIGC>\n"
        f"  </{rdf_prefix}:Description>"
    )


def _cut(pattern: re.Pattern[str], text: str) -> str:
    r"""``text`` without the matches of ``pattern`` and the whitespace run before each, in linear time.

    A pattern that itself starts with ``\s*`` rescans the whole run from each of its characters:
    64,000 blanks in a packet took minutes to edit, 15 MiB never finished.
    """
    kept: list[str] = []
    pos = 0
    for match in pattern.finditer(text):
        kept.append(text[pos : match.start()].rstrip())
        pos = match.end()
    if not kept:
        return text
    kept.append(text[pos:])
    return "".join(kept)


# A Description left with nothing but rdf:about and namespace declarations is dropped.
_EMPTY_DESCRIPTION = re.compile(
    r"""<([A-Za-z_][\w.-]*):Description((?:\s+(?:xmlns:[\w.-]+|\1:about)\s*=\s*(?:"[^"]*"|'[^']*'))*)"""
    r"""\s*(?:/>|>\s*</\1:Description\s*>)"""
)


def _remove_text(text: str) -> str:
    for prefix in set(_PREFIX_DECL.findall(text)):
        name = re.escape(prefix) + r":AIGC"
        text = _cut(re.compile(r"<" + name + r"\b[^>]*/>"), text)
        text = _cut(re.compile(r"<" + name + r"\b[^>]*>.*?</" + name + r"\s*>", re.S), text)
        text = _cut(re.compile(r"""(?<=\s)""" + name + r"""\s*=\s*(?:"[^"]*"|'[^']*')"""), text)
    return _cut(_EMPTY_DESCRIPTION, text)


def _rebuild(packet: str, value: str | None) -> bytes:
    root = _parse(packet)
    tree = etree()
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag == _AIGC_TAG:
                parent.remove(child)
        parent.attrib.pop(_AIGC_TAG, None)
    rdf = root if root.tag == f"{{{RDF_NS}}}RDF" else root.find(f".//{{{RDF_NS}}}RDF")
    if rdf is None and root.tag == f"{{{X_NS}}}xmpmeta" and value is not None:
        rdf = tree.SubElement(root, f"{{{RDF_NS}}}RDF")  # an empty x:xmpmeta (Pillow's tests have them)
    if rdf is None:
        raise MalformedFileError("XMP packet has no rdf:RDF element")
    if value is not None:
        description = tree.SubElement(rdf, _DESCRIPTION_TAG, {_ABOUT_ATTR: ""})
        tree.SubElement(description, _AIGC_TAG).text = value
    body = tree.tostring(root, encoding="unicode")
    return f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n{body}\n<?xpacket end="w"?>'.encode()


def set_aigc(packet: bytes | None, value: str) -> bytes:
    """``packet`` with ``TC260:AIGC`` set to ``value`` as the only AIGC property (new packet if None)."""
    if not packet or not packet.strip(b"\x00 \t\r\n"):
        return new_packet(value)
    text = _decode(packet)
    _scan(text)  # refuse to edit what we cannot parse
    edited = _remove_text(text)
    closes = list(_RDF_CLOSE.finditer(edited))
    if closes:
        close = closes[-1]
        rdf_prefix = close.group(0)[2:].split(":")[0] if ":" in close.group(0) else "rdf"
        at = len(edited[: close.start()].rstrip())
        edited = edited[:at] + "\n" + _description(value, rdf_prefix) + edited[at:]
        try:
            if find_aigc(edited) == [value]:
                return edited.encode()
        except MalformedFileError:
            pass
    return _rebuild(text, value)


def remove_aigc(packet: bytes) -> bytes | None:
    """``packet`` without any ``TC260:AIGC``; ``None`` when nothing else of value is left in it."""
    text = _decode(packet)
    if not find_aigc(text):
        return packet
    edited = _remove_text(text)
    try:
        ok = not find_aigc(edited)
    except MalformedFileError:
        ok = False
    result = edited.encode() if ok else _rebuild(text, None)
    return result if has_properties(result) else None


def has_properties(packet: bytes | str) -> bool:
    """True if the packet holds any property at all (so dropping it would lose information)."""
    root = _parse(packet)
    for element in root.iter(_DESCRIPTION_TAG):
        if len(element) or any(key != _ABOUT_ATTR for key in element.attrib):
            return True
    rdf = root if root.tag == f"{{{RDF_NS}}}RDF" else root.find(f".//{{{RDF_NS}}}RDF")
    if rdf is None:
        return True  # not an RDF packet we understand: keep it
    return any(child.tag != _DESCRIPTION_TAG for child in rdf)


_OURS_HEAD, _OURS_TAIL = new_packet("\x00").split(b"\x00")
#: Printable ASCII without ``<``, ``&``, ``>``: XML keeps it as it is in character data.
_PLAIN_TEXT = re.compile(rb"[\x20-\x25\x27-\x3b\x3d\x3f-\x7e]*").fullmatch
