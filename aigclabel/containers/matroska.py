"""Matroska and WebM: the label as a global ``SimpleTag`` ``AIGC`` in ``Segment/Tags``.

Placement (TC260-PG-20257A): ``Segment/Tags/Tag/SimpleTag`` with ``TagName=AIGC`` and
``TagString`` = the bare seven-field JSON, in a ``Tag`` whose ``Targets`` name no track, edition,
chapter or attachment (a global tag). That is what ``ffmpeg -metadata AIGC=...`` writes, so ffprobe,
mkvinfo and mkvextract read it. Readers report every ``SimpleTag`` whose name contains ``AIGC``, in
any ``Tag`` (also track-targeted ones, also nested ``SimpleTag``s), so a conflicting second label
is visible; writing and stripping remove them all and leave one global tag.

Editing is EBML surgery. exiftool (without ``-ee``) and other readers that stop at the first
Cluster only see ``Tags`` placed before it, so that is tried first:

1. a run of ``Void`` elements before the first Cluster (together with the old ``Tags`` if it is
   there) big enough for the new ``Tags``, which end where the run ends; a ``SeekHead`` directly
   before the run may grow into it. Clusters do not move. An old ``Tags`` elsewhere becomes a
   ``Void`` (or is cut off when it was the Segment's last element);
2. a file with no ``SeekHead`` and no ``Cues`` (what browsers' MediaRecorder writes: every browser
   recording) records no offsets at all, so the ``Tags`` (plus a 256-byte reserve ``Void``, so later
   relabels fit in place) are inserted before the first Cluster: the Clusters shift, byte for byte
   unchanged. Refused if a Cluster stores its own ``Position``;
3. otherwise the old ``Tags`` becomes a ``Void`` of the same size and the new one is appended at the
   end of the Segment, the ``SeekHead`` entry for ``Tags`` is updated (using the ``Void`` that
   muxers reserve after it; a full SeekHead is chained to a second one appended at the end) and,
   for a Segment of known size, the size field is rewritten in its original width. A ``Tags`` that
   is already the last element of such a Segment is resized where it is. ffprobe and mkvinfo follow
   the SeekHead; exiftool needs ``-ee`` there.

Because nothing with a recorded offset moves, ``Cues`` and every ``SeekHead`` position (all relative
to the Segment data start) stay valid. ``CRC-32`` children of rewritten elements are recomputed.

A file cut short inside a Cluster (a recording that stopped; players play what is there) is read
and labelled when the label fits before the Clusters (cases 1 and 2); appending after a cut
Cluster would land inside it, so case 3 is refused with a remux hint.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .._io import MAX_METADATA_BYTES, file_size
from .._journal import EditPlan
from ..errors import (
    LimitExceededError,
    MalformedFileError,
    NeedsRepairError,
    TruncatedFileError,
    WriteNotSupportedError,
)
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._stream import apply_patches, hash_range, open_output, plan_from_patches, repair_by_remux

EBML_ID = 0x1A45DFA3
SEGMENT = 0x18538067
SEEKHEAD = 0x114D9B74
SEEK = 0x4DBB
SEEK_ID = 0x53AB
SEEK_POSITION = 0x53AC
CLUSTER = 0x1F43B675
TAGS = 0x1254C367
TAG = 0x7373
TARGETS = 0x63C0
TARGET_TYPE_VALUE = 0x68CA
SIMPLE_TAG = 0x67C8
TAG_NAME = 0x45A3
TAG_STRING = 0x4487
TAG_BINARY = 0x4485
VOID = 0xEC
CRC32 = 0xBF
DOC_TYPE = 0x4282
CUES = 0x1C53BB6B
CLUSTER_POSITION = 0xA7
SIMPLE_BLOCK = 0xA3
BLOCK_GROUP = 0xA0
#: Void left after Tags inserted before the Clusters, so a later relabel fits where they are.
TAGS_RESERVE = 256
_LEVEL1 = frozenset({SEEKHEAD, 0x1549A966, 0x1654AE6B, CLUSTER, CUES, TAGS, 0x1941A469, 0x1043A770, SEGMENT, EBML_ID})
_MASTERS = frozenset({TAGS, TAG, TARGETS, SIMPLE_TAG, SEEKHEAD, SEEK})
_TARGET_UIDS = {0x63C5: "TrackUID", 0x63C9: "EditionUID", 0x63C4: "ChapterUID", 0x63C6: "AttachmentUID"}

KEY_NAME = "AIGC"
_CUT_SHORT = (
    "the file is cut short inside a Cluster and has no room for the label before the Clusters; "
    "use `aigclabel label --repair` (in Python `write_label(..., repair=True)`) to remux it (ffmpeg -c copy: "
    "the same packets, indexes rebuilt) and label that"
)
MAX_DEPTH = 16
MAX_ELEMENTS = 5_000_000
#: Longest EBML DocType accepted ("matroska" and "webm" are the ones we handle).
_MAX_DOCTYPE = 64


# ---------------------------------------------------------------------------- EBML primitives
def encode_size(value: int, width: int | None = None) -> bytes:
    """EBML variable-size integer; smallest width unless ``width`` is given. Never the 'unknown' value."""
    if width is None:
        width = 1
        while value >= (1 << (7 * width)) - 1:
            width += 1
    if width > 8 or value >= (1 << (7 * width)) - 1:
        raise WriteNotSupportedError(f"EBML size {value} does not fit in {width} bytes")
    return ((1 << (7 * width)) | value).to_bytes(width, "big")


def encode_id(element_id: int) -> bytes:
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")


def element(element_id: int, content: bytes, width: int | None = None) -> bytes:
    return encode_id(element_id) + encode_size(len(content), width) + content


def void(total: int) -> bytes:
    """A Void element of exactly ``total`` bytes (at least 2)."""
    if total < 2:
        raise ValueError("a Void element needs at least 2 bytes")
    if total - 2 <= 126:
        return element(VOID, bytes(total - 2), 1)
    return element(VOID, bytes(total - 9), 8)


def _vint(data: bytes | bytearray, pos: int, what: str) -> tuple[int, int, bool]:
    """(value, length, unknown) of the size vint at ``pos``."""
    if pos >= len(data):
        raise TruncatedFileError(f"EBML data ends inside the size of {what}")
    first = data[pos]
    if first == 0:
        raise MalformedFileError(f"invalid EBML size (more than 8 bytes) for {what}")
    length = 9 - first.bit_length()
    if pos + length > len(data):
        raise TruncatedFileError(f"EBML data ends inside the size of {what}")
    value = int.from_bytes(data[pos : pos + length], "big") & ((1 << (7 * length)) - 1)
    return value, length, value == (1 << (7 * length)) - 1


def _id(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TruncatedFileError("EBML data ends inside an element ID")
    first = data[pos]
    if first < 0x10:
        raise MalformedFileError(f"invalid EBML element ID byte 0x{first:02x}")
    length = 9 - first.bit_length()
    if pos + length > len(data):
        raise TruncatedFileError("EBML data ends inside an element ID")
    return int.from_bytes(data[pos : pos + length], "big"), length


# ---------------------------------------------------------------------------- in-memory trees
@dataclass
class Node:
    """An EBML element held in memory; masters have ``children``, leaves keep ``data``."""

    id: int
    data: bytes = b""
    children: list[Node] | None = None

    def content(self) -> bytes:
        if self.children is None:
            return self.data
        parts = [c.to_bytes() for c in self.children if c.id != CRC32]
        body = b"".join(parts)
        if self.children and self.children[0].id == CRC32:
            body = element(CRC32, struct.pack("<I", zlib.crc32(body))) + body
        return body

    def to_bytes(self, width: int | None = None) -> bytes:
        return element(self.id, self.content(), width)

    def first(self, element_id: int) -> Node | None:
        return next((c for c in self.children or () if c.id == element_id), None)


def parse_nodes(data: bytes, start: int, end: int, depth: int = 0, counter: list[int] | None = None) -> list[Node]:
    """Parse the EBML elements in ``data[start:end]``; known masters are parsed recursively."""
    if depth > MAX_DEPTH:
        raise MalformedFileError(f"EBML elements nest deeper than {MAX_DEPTH} levels")
    counter = counter if counter is not None else [0]
    out: list[Node] = []
    pos = start
    while pos < end:
        element_id, id_len = _id(data, pos)
        size, size_len, unknown = _vint(data, pos + id_len, f"element 0x{element_id:X}")
        begin = pos + id_len + size_len
        if unknown or begin + size > end:
            raise MalformedFileError(f"element 0x{element_id:X} overruns its parent")
        counter[0] += 1
        if counter[0] > MAX_ELEMENTS:
            raise LimitExceededError(f"more than {MAX_ELEMENTS} EBML elements")
        if element_id in _MASTERS:
            out.append(Node(element_id, children=parse_nodes(data, begin, begin + size, depth + 1, counter)))
        else:
            out.append(Node(element_id, data[begin : begin + size]))
        pos = begin + size
    return out


def _uint(node: Node | None) -> int | None:
    return int.from_bytes(node.data, "big") if node is not None and node.data else (0 if node else None)


def _simple_tag(name: str, value: str) -> Node:
    return Node(SIMPLE_TAG, children=[Node(TAG_NAME, name.encode()), Node(TAG_STRING, value.encode())])


def _is_global(tag: Node) -> bool:
    targets = tag.first(TARGETS)
    if targets is None:
        return True
    if any(c.id in _TARGET_UIDS and _uint(c) for c in targets.children or ()):
        return False
    value = _uint(targets.first(TARGET_TYPE_VALUE))
    return value in (None, 50)


def _target_text(tag: Node) -> str:
    targets = tag.first(TARGETS)
    parts = []
    for child in targets.children or () if targets else ():
        if child.id in _TARGET_UIDS:
            parts.append(f"{_TARGET_UIDS[child.id]}={_uint(child)}")
    return ",".join(parts) or "global"


def _name_of(simple: Node) -> str:
    name = simple.first(TAG_NAME)
    return name.data.decode("utf-8", "replace") if name else ""


def _value_of(simple: Node) -> bytes | None:
    for child_id in (TAG_STRING, TAG_BINARY):
        node = simple.first(child_id)
        if node is not None:
            return node.data
    return None


def tags_labels(tags: Node, location: str) -> list[FoundLabel]:
    """Every SimpleTag named like AIGC in a Tags element."""
    found: list[FoundLabel] = []

    def visit(simple: Node, where: str) -> None:
        name = _name_of(simple)
        if KEY_NAME in name:
            value = _value_of(simple)
            if value is not None:
                found.append(FoundLabel.from_text(f"{where}/SimpleTag({name})", value.rstrip(b"\0")))
        for child in simple.children or ():
            if child.id == SIMPLE_TAG:
                visit(child, f"{where}/SimpleTag({name})")

    for tag in tags.children or ():
        if tag.id == TAG:
            for child in tag.children or ():
                if child.id == SIMPLE_TAG:
                    visit(child, f"{location}/Tag({_target_text(tag)})")
    return found


def strip_tags(tags: Node) -> bool:
    """Remove every AIGC SimpleTag; True if something was removed."""
    changed = False

    def prune(node: Node) -> None:
        nonlocal changed
        kept: list[Node] = []
        for child in node.children or ():
            if child.id == SIMPLE_TAG and KEY_NAME in _name_of(child):
                changed = True
                continue
            if child.id == SIMPLE_TAG:
                prune(child)
            kept.append(child)
        node.children = kept

    for tag in tags.children or ():
        if tag.id == TAG:
            prune(tag)
    kept_tags = []
    for tag in tags.children or ():
        if tag.id == TAG and not any(c.id == SIMPLE_TAG for c in tag.children or ()):
            changed = True
            continue
        kept_tags.append(tag)
    tags.children = kept_tags
    return changed


def add_label(tags: Node, label: AIGCLabel) -> None:
    """Put the label into the first global Tag (a new one at the front if there is none)."""
    assert tags.children is not None
    simple = _simple_tag(KEY_NAME, label.to_json())
    for tag in tags.children:
        if tag.id == TAG and _is_global(tag):
            assert tag.children is not None
            tag.children.append(simple)
            return
    new = Node(TAG, children=[Node(TARGETS, children=[]), simple])
    at = 1 if tags.children and tags.children[0].id == CRC32 else 0
    tags.children.insert(at, new)


def _has_tags(tags: Node) -> bool:
    return any(c.id == TAG for c in tags.children or ())


# ---------------------------------------------------------------------------- file layout
@dataclass
class Elem:
    """A level-1 element of the Segment (position and size only)."""

    id: int
    offset: int
    header: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.header + self.size


@dataclass
class Layout:
    """Where the Segment is and what it holds at level 1."""

    segment_offset: int
    size_offset: int
    size_width: int
    size_unknown: bool
    data_start: int
    data_end: int
    children: list[Elem] = field(default_factory=list)
    #: The file ends before the Segment does (a recording cut short); ``data_end`` is the file end.
    truncated: bool = False
    #: Where the Segment's size field says it ends (``data_end`` unless truncated or unknown).
    declared_end: int = 0


def _header_at(handle: BinaryIO, pos: int, limit: int) -> tuple[int, int, int, bool]:
    """(id, size, header length, unknown) of the element at ``pos``."""
    handle.seek(pos)
    head = handle.read(min(12, max(limit - pos, 0)))
    element_id, id_len = _id(head, 0)
    size, size_len, unknown = _vint(head, id_len, f"element 0x{element_id:X} at byte {pos}")
    return element_id, size, id_len + size_len, unknown


def _unknown_end(handle: BinaryIO, start: int, limit: int) -> tuple[int, bool]:
    """End of an unknown-size Cluster: the first level-1 ID among its children (or ``limit``),
    and whether the file ends inside it."""
    pos = start
    while pos < limit:
        try:
            element_id, size, header, unknown = _header_at(handle, pos, limit)
        except TruncatedFileError:
            return limit, True
        if element_id in _LEVEL1:
            return pos, False
        if unknown:
            raise MalformedFileError(f"unknown-size element 0x{element_id:X} inside an unknown-size Cluster")
        pos += header + size
    return limit, pos > limit


def scan(handle: BinaryIO) -> Layout:
    """Find the first Segment and list its level-1 elements, reading only element headers.

    A file cut short inside a Cluster (a recording that stopped, which players still play) is
    listed up to its end with ``truncated`` set; the last Cluster then holds what is there.
    """
    total = file_size(handle)
    element_id, size, header, unknown = _header_at(handle, 0, total)
    if element_id != EBML_ID or unknown:
        raise MalformedFileError("not an EBML file (no EBML header)")
    pos = header + size
    while True:
        if pos >= total:
            raise MalformedFileError("no Segment element in the Matroska file")
        element_id, size, header, unknown = _header_at(handle, pos, total)
        if element_id == SEGMENT:
            break
        if unknown:
            raise MalformedFileError("unknown-size element before the Segment")
        pos += header + size
    id_len = len(encode_id(SEGMENT))
    data_start = pos + header
    declared_end = total if unknown else data_start + size
    data_end = min(total, declared_end)
    layout = Layout(pos, pos + id_len, header - id_len, unknown, data_start, data_end, declared_end=declared_end)
    layout.truncated = declared_end > total
    pos = data_start
    while pos < data_end:
        if data_end - pos < 2:
            if layout.children and layout.children[-1].id == CLUSTER:
                layout.truncated = True
                break
            raise TruncatedFileError("file ends inside a level-1 element header")
        element_id, size, header, unknown = _header_at(handle, pos, data_end)
        if element_id in (SEGMENT, EBML_ID):
            break  # a second Segment (chained file): we only edit the first
        if unknown:
            if element_id != CLUSTER:
                raise MalformedFileError(f"unknown-size level-1 element 0x{element_id:X}")
            end, cut = _unknown_end(handle, pos + header, data_end)
            size = end - pos - header
            layout.truncated |= cut
        if pos + header + size > data_end:
            if element_id != CLUSTER or pos + header > data_end:
                raise TruncatedFileError(
                    f"element 0x{element_id:X} at byte {pos} declares {size} bytes, beyond the end of the Segment"
                )
            size = data_end - pos - header
            layout.truncated = True
        layout.children.append(Elem(element_id, pos, header, size))
        if len(layout.children) > MAX_ELEMENTS:
            raise LimitExceededError(f"more than {MAX_ELEMENTS} level-1 elements")
        pos += header + size
    return layout


def _load(handle: BinaryIO, elem: Elem) -> Node:
    if elem.size > MAX_METADATA_BYTES:
        raise LimitExceededError(f"element 0x{elem.id:X} is {elem.size} bytes, over the {MAX_METADATA_BYTES} limit")
    handle.seek(elem.offset + elem.header)
    data = handle.read(elem.size)
    if len(data) != elem.size:
        raise TruncatedFileError(f"file ends inside element 0x{elem.id:X}")
    return Node(elem.id, children=parse_nodes(data, 0, len(data)))


def _seek_entries(seekhead: Node) -> list[tuple[bytes, int]]:
    entries: list[tuple[bytes, int]] = []
    for seek in seekhead.children or ():
        if seek.id != SEEK:
            continue
        seek_id, position = seek.first(SEEK_ID), seek.first(SEEK_POSITION)
        if seek_id is not None and position is not None:
            entries.append((seek_id.data, int.from_bytes(position.data, "big")))
    return entries


def _seekhead(entries: list[tuple[bytes, int]], crc: bool) -> Node:
    children = [Node(CRC32, b"\0\0\0\0")] if crc else []
    for seek_id, position in entries:
        pos_bytes = position.to_bytes(max(1, (position.bit_length() + 7) // 8), "big")
        children.append(Node(SEEK, children=[Node(SEEK_ID, seek_id), Node(SEEK_POSITION, pos_bytes)]))
    return Node(SEEKHEAD, children=children)


def _fill(data: bytes, slot: int, rebuild: Node | None = None) -> bytes | None:
    """``data`` padded with a Void to exactly ``slot`` bytes, or None if it does not fit."""
    if len(data) == slot:
        return data
    if len(data) + 2 <= slot:
        return data + void(slot - len(data))
    if len(data) + 1 == slot and rebuild is not None:
        widened = rebuild.to_bytes(width=len(encode_size(len(rebuild.content()))) + 1)
        if len(widened) == slot:
            return widened
    return None


def _fill_end(data: bytes, slot: int) -> bytes | None:
    """A Void then ``data``, exactly ``slot`` bytes (so ``data`` ends where the slot ends), or None."""
    gap = slot - len(data)
    if gap == 0:
        return data
    return void(gap) + data if gap >= 2 else None


def _live_tags(layout: Layout, removed: set[int], extra: int | None) -> set[int]:
    """Segment-relative positions of the Tags elements that remain (plus ``extra``, a new one)."""
    live = {e.offset - layout.data_start for i, e in enumerate(layout.children) if e.id == TAGS and i not in removed}
    return live | ({extra} if extra is not None else set())


def _head_update(handle: BinaryIO, elem: Elem, live: set[int], tags_position: int | None) -> tuple[Node, bool]:
    """The SeekHead at ``elem`` with Tags entries only for ``live`` positions and one for
    ``tags_position`` (if given); True if that changed its entries."""
    head = _load(handle, elem)
    tags_id = encode_id(TAGS)
    entries = _seek_entries(head)
    kept = [(sid, pos) for sid, pos in entries if sid != tags_id or pos in live]
    if tags_position is not None and (tags_id, tags_position) not in kept:
        kept.append((tags_id, tags_position))
    if kept == entries:
        return head, False
    crc = bool(head.children) and head.children[0].id == CRC32  # type: ignore[index]
    return _seekhead(kept, crc), True


def _position_in_cluster(handle: BinaryIO, elem: Elem) -> bool:
    """True if the Cluster at ``elem`` records its own offset (a ``Position`` child before its blocks)."""
    pos, end = elem.offset + elem.header, elem.end
    for _ in range(4):  # Timestamp, Position and PrevSize come first when present
        if pos >= end:
            return False
        element_id, size, header, _unknown = _header_at(handle, pos, end)
        if element_id == CLUSTER_POSITION:
            return True
        if element_id in (SIMPLE_BLOCK, BLOCK_GROUP):
            return False
        pos += header + size
    return False


@dataclass
class _Edit:
    """A plan under construction: byte patches, level-1 indexes they consume, Tags indexes removed."""

    patches: list[tuple[int, int, bytes]]
    used: set[int]
    removed: set[int]


# ---------------------------------------------------------------------------- the container
@register
class MatroskaContainer(Container):
    """Matroska (MKV, MKA) and WebM."""

    name = "matroska"
    description = "Matroska/WebM"
    extensions = (".mkv", ".mka", ".mk3d", ".webm")
    mime_type = "video/x-matroska"
    media = MediaKind.VIDEO
    primary_location = "Segment/Tags/Tag(global)/SimpleTag(AIGC) TagString"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """EBML header whose DocType is ``matroska`` or ``webm``."""
        if not head.startswith(b"\x1a\x45\xdf\xa3"):
            return False
        at = head.find(b"\x42\x82", 4, 64)
        if at < 0 or at + 3 > len(head):
            return False
        width = 9 - head[at + 2].bit_length()  # EBML vint: leading zero bits + 1
        if width > 8 or at + 2 + width > len(head):
            return False
        length = int.from_bytes(head[at + 2 : at + 2 + width], "big") & ((1 << (7 * width)) - 1)
        if length > _MAX_DOCTYPE:
            raise LimitExceededError(f"EBML DocType declares {length} bytes (a DocType is a short word)")
        start = at + 2 + width
        return head[start : start + length].rstrip(b"\0") in (b"matroska", b"webm")

    def read(self, path: Path) -> list[FoundLabel]:
        """AIGC SimpleTags in every Tags element of the first Segment."""
        found: list[FoundLabel] = []
        with open(path, "rb") as handle:
            layout = scan(handle)
            for index, elem in enumerate(e for e in layout.children if e.id == TAGS):
                found += tags_labels(_load(handle, elem), f"Segment/Tags#{index}")
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Rewrite Tags in place or at the Segment end; fix SeekHead and Segment size; stream the rest."""
        with open(src, "rb") as handle:
            layout = scan(handle)
            patches = self._plan(handle, layout, label)
            with open_output(dst) as out:
                apply_patches(handle, out, patches, file_size(handle), "Matroska data")

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """The patches :meth:`rewrite` applies, in place, when none moves what follows it (the label
        fits the room it takes, or is appended at the end of the file)."""
        with open(path, "rb") as handle:
            layout = scan(handle)
            return plan_from_patches(self._plan(handle, layout, label), file_size(handle))

    def _plan(self, handle: BinaryIO, layout: Layout, label: AIGCLabel | None) -> list[tuple[int, int, bytes]]:
        """Byte patches (offset, replaced length, new bytes); length 0 inserts."""
        kids = layout.children
        patches: list[tuple[int, int, bytes]] = []
        used: set[int] = set()  # indexes of level-1 elements consumed by a patch
        tags_indexes = [i for i, e in enumerate(kids) if e.id == TAGS]
        removed: set[int] = set()  # Tags elements turned into Void
        primary: tuple[int, Node] | None = None
        for i in tags_indexes:
            tags = _load(handle, kids[i])
            changed = strip_tags(tags)
            if primary is None and label is not None:
                primary = (i, tags)
                continue
            if changed:
                used.add(i)
                content = tags.to_bytes() if _has_tags(tags) else b""
                slot = kids[i].header + kids[i].size
                data = _fill(content, slot, tags) if content else void(slot)
                assert data is not None  # stripping never grows an element
                patches.append((kids[i].offset, slot, data))
                if not content:
                    removed.add(i)
        if label is None:
            return self._with_seekhead(handle, layout, patches, used, removed, None, bool(removed))
        if primary is None:
            primary = (-1, Node(TAGS, children=[]))
        index, tags = primary
        add_label(tags, label)
        before = self._before_clusters(handle, layout, index, tags, _Edit(patches, used, removed))
        if before is not None:
            return before
        new = tags.to_bytes()
        if index >= 0:
            slot = kids[index].header + kids[index].size
            if index + 1 < len(kids) and kids[index + 1].id == VOID:
                slot += kids[index + 1].header + kids[index + 1].size
            data = _fill(new, slot, tags)
            if data is not None:
                used.update({index, index + 1})
                patches.append((kids[index].offset, slot, data))
                return self._with_seekhead(handle, layout, patches, used, removed, None, bool(removed), required=False)
            start = kids[index].offset
            if layout.truncated:
                raise NeedsRepairError(_CUT_SHORT)
            if all(e.id == VOID for e in kids[index + 1 :]) and not layout.size_unknown:
                # Already the Segment's last element (as after an earlier move): resize it where it is.
                patches.append((start, layout.data_end - start, new))
                size = start - layout.data_start + len(new)
                patches.append((layout.size_offset, layout.size_width, encode_size(size, layout.size_width)))
                return self._with_seekhead(handle, layout, patches, used, removed, None, bool(removed), required=False)
            used.add(index)
            removed.add(index)
            slot = kids[index].header + kids[index].size
            patches.append((kids[index].offset, slot, void(slot)))
        if layout.truncated:
            raise NeedsRepairError(_CUT_SHORT)
        position = layout.data_end - layout.data_start
        appended = bytearray(new)
        patches = self._with_seekhead(handle, layout, patches, used, removed, position, True, tail=appended)
        patches.append((layout.data_end, 0, bytes(appended)))
        if not layout.size_unknown:
            size = layout.data_end - layout.data_start + len(appended)
            patches.append((layout.size_offset, layout.size_width, encode_size(size, layout.size_width)))
        return patches

    def _before_clusters(
        self, handle: BinaryIO, layout: Layout, index: int, tags: Node, edit: _Edit
    ) -> list[tuple[int, int, bytes]] | None:
        """Patches placing ``tags`` before the first Cluster, or None if that is not possible.

        exiftool (without ``-ee``) and every reader that stops at the first Cluster only see Tags
        placed there. First choice: a run of Voids (and the old Tags) big enough, Clusters staying
        where they are. Second: a file with no SeekHead and no Cues (what browsers' MediaRecorder
        writes) records no offsets, so the Tags are inserted there and the Clusters shift unchanged.
        """
        kids = layout.children
        first = next((i for i, e in enumerate(kids) if e.id == CLUSTER), len(kids))
        runs: list[tuple[int, int]] = []
        i = 0
        while i < first:
            j = i
            while j < first and j not in edit.used and (kids[j].id == VOID or j == index):
                j += 1
            if j > i:
                runs.append((i, j))
            i = j + 1
        runs.sort(key=lambda run: not run[0] <= index < run[1])  # where the Tags are now, first
        for start, stop in runs:
            try:
                plan = self._into_run(handle, layout, (start, stop), index, tags, edit)
            except (WriteNotSupportedError, NeedsRepairError):
                continue
            if plan is not None:
                return plan
        if any(e.id in (SEEKHEAD, CUES) for e in kids):
            return None
        if first < len(kids) and _position_in_cluster(handle, kids[first]):
            return None
        return self._insert(layout, first, index, tags, edit.patches)

    def _into_run(
        self, handle: BinaryIO, layout: Layout, run: tuple[int, int], index: int, tags: Node, edit: _Edit
    ) -> list[tuple[int, int, bytes]] | None:
        """Patches putting ``tags`` at the end of the free ``run`` of level-1 elements, or None.

        A SeekHead directly before the run may grow into it.
        """
        kids = layout.children
        patches, used, removed = list(edit.patches), set(edit.used), set(edit.removed)
        new = tags.to_bytes()
        start, end = kids[run[0]].offset, kids[run[1] - 1].end
        head = run[0] - 1 if run[0] and kids[run[0] - 1].id == SEEKHEAD else None
        if end - len(new) < (kids[head].offset if head is not None else start):
            return None
        position = end - len(new) - layout.data_start
        if index >= 0:
            removed.add(index)
            if not run[0] <= index < run[1]:
                self._drop(layout, index, patches, used)
        used.update(range(*run))
        front = b""
        if head is not None:
            node, changed = _head_update(handle, kids[head], _live_tags(layout, removed, position), position)
            front = node.to_bytes() if changed else b""
            if changed:
                start = kids[head].offset
                used.add(head)
        data = _fill_end(new, end - start - len(front))
        if data is None:
            return None
        patches.append((start, end - start, front + data))
        return self._with_seekhead(handle, layout, patches, used, removed, position, True, placed=bool(front))

    def _drop(self, layout: Layout, index: int, patches: list[tuple[int, int, bytes]], used: set[int]) -> None:
        """Remove the Tags at ``index``: cut off when only Voids follow it, else turned into a Void."""
        kids = layout.children
        elem = kids[index]
        used.add(index)
        if not layout.size_unknown and not layout.truncated and all(e.id == VOID for e in kids[index + 1 :]):
            used.update(range(index + 1, len(kids)))
            patches.append((elem.offset, layout.data_end - elem.offset, b""))
            size = elem.offset - layout.data_start
            patches.append((layout.size_offset, layout.size_width, encode_size(size, layout.size_width)))
        else:
            patches.append((elem.offset, elem.header + elem.size, void(elem.header + elem.size)))

    def _insert(
        self, layout: Layout, first: int, index: int, tags: Node, patches: list[tuple[int, int, bytes]]
    ) -> list[tuple[int, int, bytes]]:
        """Insert ``tags`` (and a reserve Void) before the first Cluster of a file that records no offsets."""
        kids = layout.children
        new = tags.to_bytes() + void(TAGS_RESERVE)
        grown = len(new)
        if 0 <= index < first:
            slot = kids[index].header + kids[index].size
            patches.append((kids[index].offset, slot, new))
            grown -= slot
        else:
            if index >= 0:
                slot = kids[index].header + kids[index].size
                patches.append((kids[index].offset, slot, void(slot)))
            at = kids[first].offset if first < len(kids) else layout.data_end
            patches.append((at, 0, new))
        if not layout.size_unknown:
            size = layout.declared_end - layout.data_start + grown
            patches.append((layout.size_offset, layout.size_width, encode_size(size, layout.size_width)))
        return patches

    def _with_seekhead(
        self,
        handle: BinaryIO,
        layout: Layout,
        patches: list[tuple[int, int, bytes]],
        used: set[int],
        removed: set[int],
        tags_position: int | None,
        changed: bool,
        *,
        required: bool = True,
        tail: bytearray | None = None,
        placed: bool = False,
    ) -> list[tuple[int, int, bytes]]:
        """Point the SeekHead's Tags entry at ``tags_position`` (None: drop entries to removed Tags).

        SeekHeads in ``used`` were rewritten by the caller; ``placed`` says one of them already
        holds the ``tags_position`` entry.

        ``tail`` holds what will be appended at the Segment end. When a SeekHead has no room for the
        new entry, its full entry list is appended there as a second SeekHead and the first one
        shrinks to a single entry pointing at it (a chained SeekHead, which ffmpeg and mkvtoolnix
        follow).
        """
        if not changed:
            return patches
        kids = layout.children
        heads = [i for i, e in enumerate(kids) if e.id == SEEKHEAD]
        live = _live_tags(layout, removed, tags_position)
        for i in heads:
            if i in used:
                continue
            node, changed_here = _head_update(handle, kids[i], live, None if placed else tags_position)
            placed = placed or tags_position is not None
            if not changed_here:
                continue
            crc = bool(node.children) and node.children[0].id == CRC32  # type: ignore[index]
            slot = kids[i].header + kids[i].size
            if i + 1 < len(kids) and kids[i + 1].id == VOID and i + 1 not in used:
                slot += kids[i + 1].header + kids[i + 1].size
                used.add(i + 1)
            data = _fill(node.to_bytes(), slot, node)
            if data is None and tail is not None:
                pointer = _seekhead([(encode_id(SEEKHEAD), layout.data_end - layout.data_start + len(tail))], crc)
                data = _fill(pointer.to_bytes(), slot, pointer)
                if data is not None:
                    tail += node.to_bytes()
                    tail = None  # one chained SeekHead is enough
            if data is None:
                if required:
                    raise NeedsRepairError(
                        "the SeekHead has no room for a Tags entry and Tags cannot be placed before the "
                        "Clusters; `aigclabel label --repair` remuxes it (ffmpeg -c copy) to make room"
                    )
                continue
            patches.append((kids[i].offset, slot, data))
        if tags_position is not None and not placed and required:
            first_cluster = next((e.offset for e in kids if e.id == CLUSTER), None)
            if first_cluster is not None and tags_position + layout.data_start > first_cluster:
                raise NeedsRepairError(
                    "the file has no SeekHead, so Tags after the Clusters would be invisible; "
                    "`aigclabel label --repair` remuxes it (ffmpeg -c copy) with one"
                )
        return patches

    def repair(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Remux ``src`` with PyAV (``-c copy``: same packets, Cues and SeekHead rebuilt, Tags before
        the Clusters) and label that; for files :meth:`write` refuses (cut short, no room)."""
        with open(src, "rb") as handle:
            handle.seek(0)
            fmt = "webm" if b"webm" in handle.read(64) else "matroska"
        repair_by_remux(self, src, dst, label, fmt)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over every Cluster element of the first Segment (headers and content), in order.

        Clusters hold all coded frames and their timestamps; Tags, SeekHead, Cues, Voids and the
        Segment header are left out, so relabelling never changes the digest.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for elem in scan(handle).children:
                if elem.id == CLUSTER:
                    hash_range(handle, elem.offset, elem.header + elem.size, digest.update, "Cluster")
        return digest.digest()
