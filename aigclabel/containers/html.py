"""HTML documents: ``<meta name="AIGC" content="{...}">`` in the document head.

TC260-PG-20258A's HTML placement was not found ([UNCONFIRMED] in our digest). A ``<meta name>``
element is HTML's own document-metadata slot (HTML Living Standard §4.2.5), read by every crawler,
CMS and by exiftool (as ``HTML:AIGC``), and its name follows Annex E a) ("a field whose name contains
AIGC"). The value is the bare seven-field JSON with its quotes written as ``&quot;``.

The edit is textual and touches nothing else: the new element goes where an old label was, or right
after ``<meta charset>`` (which must stay within the first 1024 bytes), or at the start of ``<head>``.
A document without a ``<head>`` start tag (it is optional in HTML) gets the element right after its
``<html>`` start tag or doctype, where the parser opens the implied head; no other element is
created. Only the head is parsed (with the standard library's tolerant HTML tokenizer, so comments,
scripts and CDATA are handled); the rest of the file is streamed through unchanged.

Documents are parsed as bytes mapped one-to-one to characters (latin-1), which is exact for UTF-8
and every ASCII-compatible legacy encoding; UTF-16 documents are refused with a clear error.
"""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO

from .._io import COPY_CHUNK, MAX_METADATA_BYTES, copy_rest
from ..errors import LimitExceededError, MalformedFileError, UnsupportedFormatError
from ..label import AIGCLabel
from ..xmp import xml_text
from . import Container, FoundLabel, MediaKind, register

_SNIFF = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!doctype\s+html|<html[\s>])", re.I | re.S
)
_HEAD_END = re.compile(rb"</head\s*>|<body[\s>]", re.I)
_DOCTYPE = re.compile(r"^(?:\ufeff|\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<!doctype[^>]*>", re.I | re.S)
_FOREIGN_TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".mdx", ".svg", ".xml", ".opf"})
#: Elements that may appear in a head; any other start tag implies the body has begun.
_HEAD_TAGS = frozenset({"html", "head", "meta", "title", "link", "style", "script", "base", "noscript", "template"})


class _Scan(HTMLParser):
    """Records the positions of the head's tags up to the first sign of the body."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.tags: list[tuple[str, dict[str, str], int, int]] = []
        self.closed = False
        self.self_closing = False

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.closed:
            return
        if tag not in _HEAD_TAGS:
            self.closed = True
            return
        start = self._offset()
        raw = self.get_starttag_text() or ""
        self.tags.append((tag, {k: v or "" for k, v in attrs}, start, start + len(raw)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta" and not self.closed:
            self.self_closing = True
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.closed = True

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """``<![foo ...]>`` is a bogus comment to browsers; the stdlib asserts on it instead."""
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return -1 if end < 0 else end + 1


def _is_label(tag: str, attrs: dict[str, str]) -> bool:
    return tag == "meta" and "aigc" in attrs.get("name", "").casefold()


def _read_head(handle: BinaryIO) -> bytes:
    """The file's bytes up to the end of its head (bounded), read in chunks."""
    data = bytearray()
    while True:
        chunk = handle.read(COPY_CHUNK)
        if not chunk:
            return bytes(data)
        search_from = max(0, len(data) - 16)
        data += chunk
        match = _HEAD_END.search(data, search_from)
        if match:
            handle.seek(match.end() - len(data), 1)
            return bytes(data[: match.end()])
        if len(data) > MAX_METADATA_BYTES:
            raise LimitExceededError(f"HTML head is over {MAX_METADATA_BYTES} bytes")


def _scan(head: bytes) -> _Scan:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFormatError("UTF-16 HTML documents are not supported; convert to UTF-8")
    scan = _Scan(head.decode("latin-1"))
    try:
        scan.feed(scan.text)
        scan.close()
    except AssertionError as exc:  # the stdlib tokenizer's way of giving up on markup
        raise MalformedFileError(f"HTML head cannot be tokenized: {exc}") from None
    return scan


@register
class HtmlContainer(Container):
    """HTML and XHTML documents."""

    name = "html"
    description = "HTML document"
    extensions = (".html", ".htm", ".xhtml", ".shtml")
    mime_type = "text/html"
    media = MediaKind.TEXT
    primary_location = '<meta name="AIGC"> in <head>'

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        suffix = path.suffix.lower()
        if suffix in cls.extensions:
            return True
        # Content sniffing must not take a text, Markdown or SVG file that happens to start with a tag.
        return suffix not in _FOREIGN_TEXT_SUFFIXES and bool(_SNIFF.match(head))

    def read(self, path: Path) -> list[FoundLabel]:
        with open(path, "rb") as handle:
            scan = _scan(_read_head(handle))
        found = []
        for tag, attrs, _start, _end in scan.tags:
            if _is_label(tag, attrs):
                raw = attrs.get("content", "").encode("latin-1").decode("utf-8", "replace")
                found.append(FoundLabel.from_text(f'<meta name="{attrs["name"]}">', raw))
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        with open(src, "rb") as handle, open(dst, "wb") as out:
            head = _read_head(handle)
            scan = _scan(head)
            out.write(_edit(scan, label.to_json() if label is not None else None, src).encode("latin-1"))
            copy_rest(handle, out)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of the document bytes with every AIGC ``<meta>`` element (and the line break and
        indentation our writer puts before it) cut out: labelling leaves it unchanged, any other
        edit changes it."""
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            scan = _scan(_read_head(handle))
            digest.update(_edit(scan, None, path).encode("latin-1"))
            while chunk := handle.read(COPY_CHUNK):
                digest.update(chunk)
        return digest.digest()


def _edit(scan: _Scan, value: str | None, path: Path) -> str:
    """The head text with every label ``<meta>`` removed and, unless ``value`` is None, ours added.

    An element that had a line of its own is removed with its line, and ours is inserted as a line
    of its own where the neighbours are on separate lines, so write-then-strip gives back the
    original bytes.
    """
    text = scan.text
    newline = "\r\n" if "\r\n" in text else "\n"
    labels = [(s, e) for tag, attrs, s, e in scan.tags if _is_label(tag, attrs)]
    insert_at: int | None = None
    own_line = False
    indent = ""
    for start, end in reversed(labels):
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        if text[line_start:start].strip() == "" and line_end >= 0 and text[end:line_end].strip() == "":
            insert_at, own_line, indent = line_start, True, text[line_start:start]
            text = text[:line_start] + text[line_end + 1 :]
        else:
            insert_at, own_line, indent = start, False, ""
            text = text[:start] + text[end:]
    if value is None:
        return text
    lowered = text[:64].lstrip("\ufeff\xef\xbb\xbf")
    xhtml = scan.self_closing or path.suffix.lower() == ".xhtml" or lowered.startswith("<?xml")
    content = xml_text(value)
    element = f'<meta name="AIGC" content="{content}"' + (" />" if xhtml else ">")
    if insert_at is None:
        anchor = _anchor(scan)
        if anchor is None:
            doctype = _DOCTYPE.match(text)
            anchor = doctype.end() if doctype else (3 if text.startswith("\xef\xbb\xbf") else 0)
        rest = text[anchor:]
        following = re.match(r"[ \t]*\r?\n([ \t]*)", rest)
        if following:  # the anchor ends its line: ours gets a line, indented like the next one
            insert_at, own_line, indent = anchor + following.end() - len(following.group(1)), True, following.group(1)
        elif anchor == 0 or text[:anchor].endswith("\n"):
            insert_at, own_line, indent = anchor, True, ""
        else:
            insert_at, own_line = anchor, False
    if own_line:
        return text[:insert_at] + indent + element + newline + text[insert_at:]
    return text[:insert_at] + element + text[insert_at:]


def _anchor(scan: _Scan) -> int | None:
    """Offset just after ``<meta charset>`` / its http-equiv form, else ``<head>``, else ``<html>``."""
    for tag, attrs, _start, end in scan.tags:
        if tag == "meta" and ("charset" in attrs or attrs.get("http-equiv", "").casefold() == "content-type"):
            return end
    for wanted in ("head", "html"):
        for tag, _attrs, _start, end in scan.tags:
            if tag == wanted:
                return end
    return None
