"""Markdown documents: an ``AIGC:`` mapping in the YAML front matter at the head of the file.

TC260-PG-20258A §6.5 puts the label in YAML front matter as a mapping of the seven keys, values in
single quotes as in the guide's example::

    ---
    title: keeps its bytes
    AIGC:
        Label: '1'
        ContentProducer: '001191110000MA00DEMQ0B1DEMO'
        ...
    ---

Single quotes make every value a YAML *string* (a bare ``1`` would be an integer) and need no
escaping for our charset (a ``'`` is doubled). The four-space indent follows real producer files.
An existing front matter is edited textually: other keys, comments and line endings keep their
bytes; a missing one is created. Only the front matter is read into memory; the body is streamed.

Reading accepts the mapping form (quoted or plain values), a JSON string (``AIGC: '{"Label":...}'``)
and a JSON flow mapping (``AIGC: {"Label": "1", ...}``), plus, for files written by tools that append
the block instead, a trailing column-0 ``AIGC:`` block at the very end of the file (seen in real
files; only when nothing but label mappings follows it, so prose that mentions AIGC is never
taken). Writing and stripping remove every such placement, so one label remains. A front matter left
empty by stripping is dropped with its fences (it is the one our writer created), so write-then-strip
gives the original bytes back; the one exception is a file that began with an empty front matter.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import BinaryIO

from .._io import MAX_METADATA_BYTES, file_size
from ..errors import LimitExceededError, MalformedFileError
from ..label import FIELD_NAMES, AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._stream import copy_range, hash_range, open_output

_BOM = b"\xef\xbb\xbf"
_KEY_LINE = re.compile(r"""^(?P<q>['"]?)(?P<key>[^\s#'":][^:]*?)(?P=q)[ \t]*:(?:[ \t]+(?P<value>.*?))?[ \t]*$""")
_ITEM_LINE = re.compile(r"""^[ \t]+(?P<q>['"]?)(?P<key>[A-Za-z0-9_]+)(?P=q)[ \t]*:(?:[ \t]+(?P<value>.*?))?[ \t]*$""")
_FLOW_PAIR = re.compile(r"""['"]?(\w+)['"]?\s*:\s*('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^,}]*)""")
#: How much of the end of the file is searched for an appended ``AIGC:`` block.
_TAIL = 64 * 1024
INDENT = "    "


def _scalar(text: str) -> str:
    """A YAML flow scalar (single-, double-quoted or plain) as a string."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text[1:-1]
        return value if isinstance(value, str) else text[1:-1]
    plain = re.sub(r"\s+#.*$", "", text)
    return "" if plain in ("~", "null", "Null", "NULL") else plain


def _block_value(lines: list[str]) -> str:
    """The label JSON held by an ``AIGC:`` key line and its indented continuation lines."""
    match = _KEY_LINE.match(lines[0].rstrip("\r\n"))
    inline = (match.group("value") or "").strip() if match else ""
    inline = re.sub(r"^#.*$", "", inline)
    if inline.startswith("{"):
        flow = " ".join([inline] + [line.strip() for line in lines[1:]])
        try:
            json.loads(flow)
        except (json.JSONDecodeError, RecursionError):  # a YAML flow mapping that is not JSON
            return json.dumps({key: _scalar(value) for key, value in _FLOW_PAIR.findall(flow)}, ensure_ascii=False)
        return flow
    if inline[:1] in ("|", ">"):
        return "".join(line.strip() for line in lines[1:])
    if inline:
        return _scalar(" ".join([inline] + [line.strip() for line in lines[1:]]))
    data: dict[str, str] = {}
    for line in lines[1:]:
        item = _ITEM_LINE.match(line.rstrip("\r\n"))
        if item:
            data[item.group("key")] = _scalar(item.group("value") or "")
    return json.dumps(data, ensure_ascii=False)


def _blocks(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first line, end line, key) of every top-level key whose name contains AIGC."""
    found = []
    index = 0
    while index < len(lines):
        match = _KEY_LINE.match(lines[index].rstrip("\r\n"))
        if match and not lines[index][:1].isspace() and "aigc" in match.group("key").casefold():
            end = index + 1
            while end < len(lines) and (lines[end][:1] in (" ", "\t") or not lines[end].strip()):
                end += 1
            while end > index + 1 and not lines[end - 1].strip():
                end -= 1  # trailing blank lines belong to whatever follows
            found.append((index, end, match.group("key")))
            index = end
        else:
            index += 1
    return found


def _only_label_blocks(lines: list[str]) -> bool:
    """True when ``lines`` are bare ``AIGC:`` keys, indented Annex E fields and blank lines only."""
    fields = 0
    for line in lines:
        bare = line.rstrip("\r\n")
        if not bare.strip() or re.fullmatch(r"AIGC[ \t]*:[ \t]*", bare):
            continue
        item = _ITEM_LINE.match(bare)
        if item is None or item.group("key") not in FIELD_NAMES:
            return False
        fields += 1
    return fields > 0


def _front_matter_at(handle: BinaryIO, limit: int) -> tuple[str, list[str], str, int] | None:
    """From the current position: (open fence, lines, close fence, bytes consumed) of a YAML front
    matter, or ``None`` when there is none (no opening ``---`` line, or no closing fence)."""
    first = handle.readline(1024)
    if first.rstrip(b"\r\n") != b"---" or not first.endswith(b"\n"):
        return None
    consumed = len(first)
    lines: list[str] = []
    while True:
        line = handle.readline(limit)
        if not line:
            return None  # no closing fence: a thematic break, not front matter
        consumed += len(line)
        if consumed > limit:
            raise LimitExceededError(f"Markdown front matter is over {limit} bytes")
        if line.rstrip(b" \t\r\n") in (b"---", b"..."):
            return first.decode("ascii"), lines, line.decode("utf-8"), consumed
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise MalformedFileError("Markdown front matter is not UTF-8") from None


class _Layout:
    """Where the front matter and a trailing block sit in the file."""

    def __init__(self, handle: BinaryIO) -> None:
        self.size = file_size(handle)
        head = handle.read(4)
        self.bom = _BOM if head.startswith(_BOM) else b""
        handle.seek(len(self.bom))
        self.lines: list[str] = []  # front-matter lines between the fences, with line endings
        self.body_start = len(self.bom)  # where the text after the front matter starts
        self.has_front_matter = False
        self.open_fence = self.close_fence = "---\n"
        # True when the text after the front matter would itself parse as front matter.
        self.body_is_front_matter = False
        found = _front_matter_at(handle, MAX_METADATA_BYTES)
        if found is not None:
            self.open_fence, self.lines, self.close_fence, consumed = found
            self.has_front_matter = True
            self.body_start = len(self.bom) + consumed
            if handle.read(3) != _BOM:  # once ours is dropped, a BOM there would be the file's BOM
                handle.seek(self.body_start)
            self.body_is_front_matter = _front_matter_at(handle, MAX_METADATA_BYTES) is not None
        self.newline = "\r\n" if self.open_fence.endswith("\r\n") else "\n"
        # An appended block at the end of the file (outside any front matter).
        self.tail_start = self.size
        self.tail_lines: list[str] = []
        tail_from = max(self.body_start, self.size - _TAIL)
        handle.seek(tail_from)
        tail = handle.read().decode("utf-8", "replace")
        # Earliest bare "AIGC:" line after which the file holds nothing but label mappings: prose that
        # merely mentions AIGC is never taken for a label.
        for match in re.finditer(r"(?m)^AIGC[ \t]*:[ \t]*\r?$", tail):
            lines = tail[match.start() :].splitlines(keepends=True)
            if _only_label_blocks(lines):
                self.tail_lines = lines
                self.tail_start = tail_from + len(tail[: match.start()].encode("utf-8"))
                break


@register
class MarkdownContainer(Container):
    """Markdown documents (by suffix: Markdown has no magic bytes)."""

    name = "markdown"
    description = "Markdown document"
    extensions = (".md", ".markdown", ".mdown", ".mkd", ".mdx")
    mime_type = "text/markdown"
    media = MediaKind.TEXT
    primary_location = "YAML front matter AIGC:"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        return path.suffix.lower() in cls.extensions and b"\0" not in head

    def read(self, path: Path) -> list[FoundLabel]:
        with open(path, "rb") as handle:
            layout = _Layout(handle)
        found = []
        for start, end, key in _blocks(layout.lines):
            found.append(FoundLabel.from_text(f"YAML front matter {key}:", _block_value(layout.lines[start:end])))
        for start, end, _key in _blocks(layout.tail_lines):
            value = _block_value(layout.tail_lines[start:end])
            found.append(FoundLabel.from_text("AIGC: block at the end of the file", value))
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        with open(src, "rb") as handle, open_output(dst) as out:
            for piece in _pieces(handle, label):
                if isinstance(piece, bytes):
                    out.write(piece)
                else:
                    copy_range(handle, out, piece[0], piece[1], "Markdown text")

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of the document as :meth:`strip` would leave it: every AIGC block removed, other
        front-matter keys and the body kept, so labelling never changes it."""
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for piece in _pieces(handle, None):
                if isinstance(piece, bytes):
                    digest.update(piece)
                else:
                    hash_range(handle, piece[0], piece[1], digest.update, "Markdown text")
        return digest.digest()


def _pieces(handle: BinaryIO, label: AIGCLabel | None) -> list[bytes | tuple[int, int]]:
    """The output as new bytes and ``(offset, size)`` ranges of the input to copy."""
    layout = _Layout(handle)
    head = _front_matter(layout, label)
    head_end = layout.body_start if layout.has_front_matter else len(layout.bom)
    pieces: list[bytes | tuple[int, int]] = []
    pieces.append((0, head_end) if head is None else layout.bom + head.encode("utf-8"))
    end = layout.tail_start if layout.tail_lines else layout.size
    pieces.append((head_end, end - head_end))
    return pieces


def label_block(label: AIGCLabel, newline: str = "\n") -> str:
    """The ``AIGC:`` mapping as the guide writes it: one key per line, values single-quoted."""
    lines = ["AIGC:"]
    for key, value in label.to_dict().items():
        quoted = "'" + value.replace("'", "''") + "'"
        lines.append(f"{INDENT}{key}: {quoted}")
    return newline.join(lines) + newline


def _front_matter(layout: _Layout, label: AIGCLabel | None) -> str | None:
    """The new front matter (fences included), or ``None`` when the head stays as it is."""
    lines = list(layout.lines)
    blocks = _blocks(lines)
    if label is None and not blocks:
        return None
    newline = layout.newline
    if not layout.has_front_matter:
        if label is None:
            return None
        return "---" + newline + label_block(label, newline) + "---" + newline
    at = blocks[0][0] if blocks else len(lines)
    for start, end, _key in reversed(blocks):
        del lines[start:end]
    if label is not None:
        if at == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += newline
        lines[at:at] = [label_block(label, newline)]
    if label is None and not lines and not layout.body_is_front_matter:
        # The front matter held only the label (we created it): drop it with its fences, unless the
        # body would then start with a fence and turn into front matter itself.
        return ""
    return layout.open_fence + "".join(lines) + layout.close_fence
