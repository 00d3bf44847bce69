"""EPUB e-books: ``<meta name="AIGC" content="JSON"/>`` in the package document (OPF) metadata.

TC260-PG-20258A names no EPUB placement ([UNCONFIRMED] in our digest). We use the OPF 2 ``meta``
form, ``<meta name="AIGC" content="{...}"/>``, because it is the one form every reader and tool
keeps: EPUB 2 defines it, EPUB 3.x still allows it ("OPF2 meta", kept for compatibility and accepted
by epubcheck), and calibre, Apple Books and exiftool read it. The EPUB 3 alternative,
``<meta property="tc260:AIGC">`` with a ``prefix`` declaration on ``<package>``, would need a second
edit and is dropped by EPUB 2 tools. The reader accepts both forms (``name`` or ``property``
containing ``AIGC``) and reports each.

The OPF is found through ``META-INF/container.xml``; it is edited textually (everything else in it
keeps its bytes) and every other member, ``mimetype`` first and stored, is copied raw by
:mod:`._zip`.
"""

from __future__ import annotations

import posixpath
import re
from html import unescape
from pathlib import Path

from ..errors import MalformedFileError
from ..label import AIGCLabel
from ..xmp import xml_text
from . import Container, FoundLabel, MediaKind, register
from ._zip import LOCAL_SIG, ZipArchive, rewrite_zip
from .ooxml import decode_xml, parse_xml

MIMETYPE = b"application/epub+zip"
CONTAINER = "META-INF/container.xml"
OPF_NS = "http://www.idpf.org/2007/opf"
CONTAINER_NS = "urn:oasis:names:tc:opendocument:xmlns:container"
_META = re.compile(r"<(?P<p>(?:[A-Za-z_][\w.-]*:)?)meta\b(?P<attrs>[^>]*?)(?:/>|>.*?</(?P=p)meta\s*>)", re.S)
_ATTR = r"""\b{}\s*=\s*(?:"([^"]*)"|'([^']*)')"""


def _is_epub(archive: ZipArchive) -> bool:
    entry = archive.get("mimetype")
    return entry is not None and archive.read(entry, 256).strip() == MIMETYPE


def package_document_name(archive: ZipArchive) -> str:
    """The member holding the EPUB's package document (OPF), as ``META-INF/container.xml`` names it."""
    entry = archive.get(CONTAINER)
    if entry is None:
        raise MalformedFileError(f"EPUB has no {CONTAINER}")
    root = parse_xml(archive.read(entry), CONTAINER)
    for rootfile in root.iter(f"{{{CONTAINER_NS}}}rootfile"):
        if rootfile.get("media-type", "application/oebps-package+xml") == "application/oebps-package+xml":
            full = rootfile.get("full-path", "")
            if full:
                return posixpath.normpath(full.lstrip("/"))
    raise MalformedFileError(f"{CONTAINER} names no package document")


def _label_metas(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, attribute name, content) of every ``meta`` whose name/property contains AIGC."""
    found = []
    for match in _META.finditer(text):
        attrs = match.group("attrs")
        for key in ("name", "property"):
            attr = re.search(_ATTR.format(key), attrs)
            if attr and "aigc" in (attr.group(1) or attr.group(2) or "").casefold():
                if key == "name":
                    content = re.search(_ATTR.format("content"), attrs)
                    value = (content.group(1) or content.group(2) or "") if content else ""
                else:
                    body = text[match.end("attrs") : match.end()]
                    value = re.sub(r"^/?>|</[^>]*>$", "", body)
                found.append((match.start(), match.end(), f"{key}={attr.group(1) or attr.group(2)}", unescape(value)))
                break
    return found


@register
class EpubContainer(Container):
    """EPUB 2 and 3 publications."""

    name = "epub"
    description = "EPUB e-book"
    extensions = (".epub",)
    mime_type = "application/epub+zip"
    media = MediaKind.DOCUMENT
    primary_location = 'OPF <meta name="AIGC">'

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        if not head.startswith(LOCAL_SIG):
            return False
        if head[30:38] == b"mimetype" and head[38:58] == MIMETYPE:
            return True  # the layout the OCF spec requires: mimetype first and stored
        try:
            return _is_epub(ZipArchive(path))
        except (MalformedFileError, OSError):
            return False

    def read(self, path: Path) -> list[FoundLabel]:
        archive = ZipArchive(path)
        opf_name = package_document_name(archive)
        entry = archive.get(opf_name)
        if entry is None:
            raise MalformedFileError(f"EPUB package document {opf_name} is missing")
        data = archive.read(entry)
        parse_xml(data, opf_name)
        text = decode_xml(data, opf_name)
        return [
            FoundLabel.from_text(f"{opf_name} <meta {where}>", value) for _s, _e, where, value in _label_metas(text)
        ]

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        archive = ZipArchive(src)
        if not _is_epub(archive):
            raise MalformedFileError(f"{src} has no EPUB mimetype member")
        opf_name = package_document_name(archive)
        entry = archive.get(opf_name)
        if entry is None:
            raise MalformedFileError(f"EPUB package document {opf_name} is missing")
        data = archive.read(entry)
        new = set_opf_label(data, label.to_json() if label is not None else None, opf_name)
        rewrite_zip(archive, dst, {opf_name: new} if new != data else {}, [])

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over every member except ``mimetype`` and the package document (whose metadata
        holds the label): member names and uncompressed bytes, in name order."""
        archive = ZipArchive(path)
        skip = {"mimetype", package_document_name(archive)}
        return archive.digest(lambda e: e.name in skip)


def set_opf_label(data: bytes, value: str | None, what: str) -> bytes:
    """The OPF ``data`` with one ``<meta name="AIGC">`` holding ``value`` (``None``: all removed)."""
    parse_xml(data, what)
    text = decode_xml(data, what)
    for start, end, _where, _value in reversed(_label_metas(text)):
        while start > 0 and text[start - 1] in " \t":
            start -= 1
        if start > 0 and text[start - 1] == "\n":
            start -= 1
            if start > 0 and text[start - 1] == "\r":
                start -= 1
        text = text[:start] + text[end:]
    if value is not None:
        closes = list(re.finditer(r"</((?:[A-Za-z_][\w.-]*:)?)metadata\s*>", text))
        if not closes:
            raise MalformedFileError(f"{what} has no <metadata> element")
        close = closes[0]
        before = text[: close.start()]
        stripped = before.rstrip()
        ws = before[len(stripped) :]
        last_line = re.search(r"(?:^|\n)([ \t]*)[^\n]*$", stripped)
        indent = last_line.group(1) if last_line and "\n" in ws else ""
        newline = "\r\n" if "\r\n" in ws else "\n" if "\n" in ws else ""
        content = xml_text(value)
        element = f'<{close.group(1)}meta name="AIGC" content="{content}"/>'
        text = stripped + newline + indent + element + ws + text[close.start() :]
    result = text.encode("utf-8")
    check = parse_xml(result, what)
    opf_metas = [
        m.get("content", "")
        for m in check.iter()
        if isinstance(m.tag, str) and m.tag.rsplit("}", 1)[-1] == "meta"
        if "aigc" in (m.get("name", "") + m.get("property", "")).casefold()
    ]
    if opf_metas != ([value] if value is not None else []):
        raise MalformedFileError(f"could not edit {what} safely (unexpected structure)")
    return result if result != data else data
