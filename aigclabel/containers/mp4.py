"""ISO base media files (MP4, MOV, M4A, M4V, 3GP): the label as an ``mdta`` key in ``moov/udta/meta``.

Primary placement (TC260-PG-20257A §6.1.1, and the audio guide's M4A appendix): a ``meta`` box in
``moov/udta`` whose ``hdlr`` is ``mdta``, with a ``keys`` entry ``mdta`` + ``AIGC`` and the matching
``ilst`` item (the item's box type is the 1-based key index) holding a ``data`` atom of well-known
type 1 (UTF-8) with the bare seven-field JSON. That is byte-for-byte the layout
``ffmpeg -movflags use_metadata_tags -metadata AIGC=...`` writes, so ffprobe, exiftool and every
ffmpeg-based player read it.

If the file already has an ``mdta`` meta (Apple devices write one directly in ``moov``), the key
joins the first such table instead: ffmpeg honours only one ``keys`` table per file.

Readers also scan the variants seen in the wild (digest §5.4, Doubao iOS exports): an ``mdta``
``meta`` directly under ``moov``, an iTunes ``mdir`` ``ilst`` freeform ``----`` item whose name
contains ``AIGC`` (what mutagen writes), and XMP packets carrying ``TC260:AIGC`` in ``moov/udta/XMP_``
or in ``uuid`` boxes (top level or in ``moov``). Every placement is reported; writing and stripping
leave at most one, the primary. A key "contains AIGC" in the sense of Annex E a) (case-sensitive).

The writer is lossless and streaming: only ``moov`` (bounded by :data:`MAX_MOOV_BYTES`), the XMP
``uuid`` boxes and, for fragmented files, ``moof``/``mfra`` boxes are held in memory; ``mdat`` is
copied with ``copy_file_range``. When ``moov`` changes size and media data follows it (a faststart
file), every ``stco``/``co64`` chunk offset is moved by the shift of the box it points into
(``stco`` is upgraded to ``co64`` if an offset would no longer fit 32 bits), and absolute offsets in
fragmented files (``tfhd`` base-data-offset, ``tfra`` moof offsets) are patched the same way. A
``free``/``skip`` box right after ``moov`` absorbs the size change when it can, so nothing moves.
A faststart recording cut short inside its last ``mdat`` is labelled the same way (that ``mdat``
is copied as it is, its header still declaring the full size); one cut before its ``moov`` has no
sample index, so nothing can play it and it is refused.

HEIF/AVIF images share the box syntax but belong to the image module; they are told apart by their
``ftyp`` brands.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .. import xmp
from .._io import MAX_METADATA_BYTES, file_size
from .._journal import EditPlan
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError, WriteNotSupportedError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._stream import copy_range, hash_range, open_output

if TYPE_CHECKING:  # numpy costs 0.1 s to import: only rewriting chunk offset tables needs it
    import numpy as np

#: Largest ``moov`` we load. Hours of video have moov boxes of tens of MB; beyond this it is hostile.
MAX_MOOV_BYTES = 256 << 20
#: Deepest box nesting we follow inside ``moov`` (real files use 8 or so).
MAX_DEPTH = 16
#: Most boxes we accept inside one ``moov`` and at the top level.
MAX_BOXES = 2_000_000

KEY_NAME = "AIGC"
MDTA = b"mdta"
XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
#: ``ftyp`` major brands of HEIF/AVIF still images and image sequences (handled by the image module).
HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"mif2", b"msf1", b"avif"}
    | {b"avis", b"avio", b"heif", b"miaf"}
)
_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf"})
_FREE = frozenset({b"free", b"skip"})
_SAMPLE_TABLES = (b"stsd", b"stts", b"ctts", b"stss", b"stsc", b"stsz", b"stz2")


# ---------------------------------------------------------------------------- box tree
class Box:
    """One box of the in-memory ``moov`` tree. Unchanged leaves keep their exact original bytes."""

    __slots__ = ("children", "large", "payload", "prefix", "trailer", "type")

    def __init__(
        self,
        box_type: bytes,
        payload: bytes | memoryview = b"",
        *,
        children: list[Box] | None = None,
        prefix: bytes | memoryview = b"",
        trailer: bytes | memoryview = b"",
        large: bool = False,
    ) -> None:
        self.type = box_type
        self.payload = payload
        self.children = children
        self.prefix = prefix
        self.trailer = trailer
        self.large = large

    def body_size(self) -> int:
        if self.children is None:
            return len(self.payload)
        return len(self.prefix) + sum(c.size() for c in self.children) + len(self.trailer)

    def size(self) -> int:
        body = self.body_size()
        return body + (16 if self.large or body + 8 > 0xFFFFFFFF else 8)

    def emit(self, out: list[bytes | memoryview]) -> None:
        body = self.body_size()
        if self.large or body + 8 > 0xFFFFFFFF:
            out.append(struct.pack(">I4sQ", 1, self.type, body + 16))
        else:
            out.append(struct.pack(">I4s", body + 8, self.type))
        if self.children is None:
            out.append(self.payload)
            return
        out.append(self.prefix)
        for child in self.children:
            child.emit(out)
        out.append(self.trailer)

    def to_bytes(self) -> bytes:
        out: list[bytes | memoryview] = []
        self.emit(out)
        return b"".join(out)

    def find(self, box_type: bytes) -> Box | None:
        return next((c for c in self.children or () if c.type == box_type), None)

    def walk(self, path: str = "") -> Iterator[tuple[str, Box, Box | None]]:
        """(path, box, parent) for this box and every descendant, depth first."""
        here = f"{path}/{_name(self.type)}" if path else _name(self.type)
        yield here, self, None
        for child in self.children or ():
            for sub_path, box, parent in child.walk(here):
                yield sub_path, box, parent if parent is not None else self


def _name(box_type: bytes) -> str:
    return box_type.decode("ascii") if all(0x20 < c < 0x7F for c in box_type) else box_type.hex()


class _Parser:
    def __init__(self) -> None:
        self.count = 0

    def boxes(self, mv: memoryview, start: int, end: int, depth: int, parent: bytes) -> tuple[list[Box], memoryview]:
        if depth > MAX_DEPTH:
            raise MalformedFileError(f"boxes nest deeper than {MAX_DEPTH} levels")
        out: list[Box] = []
        pos = start
        while pos < end:
            if end - pos < 8:
                return out, mv[pos:end]  # QuickTime's 32-bit zero terminator, or padding
            size, box_type = struct.unpack_from(">I4s", mv, pos)
            header, large = 8, False
            if size == 1:
                if end - pos < 16:
                    raise MalformedFileError(f"64-bit size of {_name(box_type)} box is cut off")
                (size,) = struct.unpack_from(">Q", mv, pos + 8)
                header, large = 16, True
            elif size == 0:
                if parent == b"udta" and not any(mv[pos:end]):
                    return out, mv[pos:end]
                size = end - pos
            if size < header or size > end - pos:
                raise MalformedFileError(
                    f"{_name(box_type)} box inside {_name(parent)} declares {size} bytes, "
                    f"but only {end - pos} are left in its parent"
                )
            self.count += 1
            if self.count > MAX_BOXES:
                raise LimitExceededError(f"more than {MAX_BOXES} boxes in moov")
            out.append(self.box(mv, pos + header, pos + size, box_type, large, depth, parent))
            pos += size
        return out, mv[end:end]

    def box(self, mv: memoryview, start: int, end: int, box_type: bytes, large: bool, depth: int, parent: bytes) -> Box:
        if box_type in _CONTAINERS:
            children, trailer = self.boxes(mv, start, end, depth + 1, box_type)
            return Box(box_type, children=children, trailer=trailer, large=large)
        if box_type == b"meta":
            prefix_len = 0 if bytes(mv[start + 4 : start + 8]) == b"hdlr" else 4
            if end - start < prefix_len:
                raise MalformedFileError("meta box is shorter than its version and flags")
            children, trailer = self.boxes(mv, start + prefix_len, end, depth + 1, box_type)
            return Box(box_type, children=children, prefix=mv[start : start + prefix_len], trailer=trailer, large=large)
        if box_type == b"ilst" or parent == b"ilst":
            try:
                saved = self.count
                children, trailer = self.boxes(mv, start, end, depth + 1, box_type)
                return Box(box_type, children=children, trailer=trailer, large=large)
            except MalformedFileError:
                if box_type == b"ilst":
                    raise
                self.count = saved  # an item we cannot parse is kept byte for byte
        return Box(box_type, mv[start:end], large=large)


def parse_moov(data: bytes) -> Box:
    """Parse the payload tree of a ``moov`` box given as its full bytes (header included)."""
    mv = memoryview(data)
    parser = _Parser()
    boxes, _ = parser.boxes(mv, 0, len(mv), 0, b"")
    if len(boxes) != 1 or boxes[0].type != b"moov":
        raise MalformedFileError("moov box is not self-consistent")
    return boxes[0]


# ---------------------------------------------------------------------------- top level
@dataclass
class TopBox:
    """A top-level box: where it is and how big, never its (possibly huge) payload."""

    type: bytes
    offset: int
    header: int
    size: int
    missing: int = 0  # bytes of a cut-short last ``mdat`` that the file lacks

    @property
    def end(self) -> int:
        return self.offset + self.size


def scan_top(handle: BinaryIO) -> list[TopBox]:
    """Every top-level box of the file, reading only headers.

    A last ``mdat`` running past the end of the file (a faststart recording cut short; players play
    the samples that are there) is shortened to what is there, its header kept as it is.
    """
    total = file_size(handle)
    out: list[TopBox] = []
    pos = 0
    while pos < total:
        handle.seek(pos)
        head = handle.read(16)
        if len(head) < 8:
            if any(head):
                raise TruncatedFileError(f"file ends inside a box header at byte {pos}")
            out.append(TopBox(b"", pos, 0, len(head)))  # zero padding after the last box
            break
        size, box_type = struct.unpack_from(">I4s", head)
        header = 8
        if size == 1:
            if len(head) < 16:
                raise TruncatedFileError(f"file ends inside the 64-bit size of {_name(box_type)} at byte {pos}")
            (size,) = struct.unpack_from(">Q", head, 8)
            header = 16
        elif size == 0:
            size = total - pos
        if size < header:
            raise MalformedFileError(f"{_name(box_type)} box at byte {pos} declares an impossible size {size}")
        if pos + size > total and box_type == b"mdat" and pos + header <= total:
            out.append(TopBox(box_type, pos, header, total - pos, missing=pos + size - total))
            break
        if pos + size > total:
            raise TruncatedFileError(
                f"{_name(box_type)} box at byte {pos} declares {size} bytes but the file ends after {total - pos}"
            )
        out.append(TopBox(box_type, pos, header, size))
        if len(out) > MAX_BOXES:
            raise LimitExceededError(f"more than {MAX_BOXES} top-level boxes")
        pos += size
    return out


def _read_box(handle: BinaryIO, box: TopBox, limit: int) -> bytes:
    if box.size > limit:
        raise LimitExceededError(f"{_name(box.type)} box is {box.size} bytes, over the {limit} byte limit")
    handle.seek(box.offset)
    data = handle.read(box.size)
    if len(data) != box.size:
        raise TruncatedFileError(f"file ends inside {_name(box.type)}")
    return data


def _moov_of(tops: list[TopBox]) -> int:
    found = [i for i, b in enumerate(tops) if b.type == b"moov"]
    if not found:
        raise MalformedFileError("no moov box: not a playable ISO media file (or a truncated recording)")
    if len(found) > 1:
        raise MalformedFileError(f"{len(found)} moov boxes; a valid file has one")
    return found[0]


# ---------------------------------------------------------------------------- metadata atoms
def _handler(meta: Box) -> bytes:
    hdlr = meta.find(b"hdlr")
    if hdlr is None or hdlr.children is not None or len(hdlr.payload) < 12:
        return b""
    return bytes(hdlr.payload[8:12])


def _keys(meta: Box) -> list[bytes] | None:
    """The raw ``keys`` entries (namespace + name) of an mdta meta, or None if it has no keys box."""
    box = meta.find(b"keys")
    if box is None:
        return None
    data = bytes(box.payload)
    if len(data) < 8:
        raise MalformedFileError("keys box is shorter than its header")
    (count,) = struct.unpack_from(">I", data, 4)
    if count > (len(data) - 8) // 8:
        raise MalformedFileError(f"keys box claims {count} entries, more than fit in it")
    entries: list[bytes] = []
    pos = 8
    for _ in range(count):
        if pos + 8 > len(data):
            raise MalformedFileError("keys box ends inside an entry")
        (size,) = struct.unpack_from(">I", data, pos)
        if size < 8 or pos + size > len(data):
            raise MalformedFileError(f"keys entry of size {size} does not fit the keys box")
        entries.append(data[pos + 4 : pos + size])
        pos += size
    return entries


def _keys_box(entries: list[bytes], old: Box | None) -> Box:
    version_flags = bytes(old.payload[:4]) if old is not None and len(old.payload) >= 4 else b"\0\0\0\0"
    body = [version_flags, struct.pack(">I", len(entries))]
    body += [struct.pack(">I", len(e) + 4) + e for e in entries]
    return Box(b"keys", b"".join(body))


def _key_name(entry: bytes) -> str:
    return entry[4:].decode("utf-8", "replace")


def _is_label_key(entry: bytes) -> bool:
    return KEY_NAME in _key_name(entry)


def _data_value(item: Box) -> str | None:
    """The text of an ilst item's first ``data`` atom."""
    for child in item.children or ():
        if child.type == b"data" and child.children is None and len(child.payload) >= 8:
            kind = int.from_bytes(child.payload[1:4], "big")
            value = bytes(child.payload[8:])
            if kind == 2:
                return value.decode("utf-16-be", "replace")
            return value.decode("utf-8", "replace")
    return None


def _freeform_name(item: Box) -> str | None:
    if item.type != b"----":
        return None
    for child in item.children or ():
        if child.type == b"name" and child.children is None:
            return bytes(child.payload[4:]).decode("utf-8", "replace")
    return None


def _data_item(index: int, text: str) -> Box:
    data = Box(b"data", struct.pack(">II", 1, 0) + text.encode("utf-8"))
    return Box(struct.pack(">I", index), children=[data])


def _new_mdta_meta() -> Box:
    hdlr = Box(b"hdlr", b"\0" * 8 + MDTA + b"\0" * 12 + b"\0")
    return Box(b"meta", children=[hdlr, _keys_box([], None), Box(b"ilst", children=[])], prefix=b"\0\0\0\0")


def _meta_labels(meta: Box, location: str) -> list[FoundLabel]:
    found: list[FoundLabel] = []
    ilst = meta.find(b"ilst")
    if ilst is None:
        return found
    keys = _keys(meta) or []
    handler = _handler(meta)
    for item in ilst.children or ():
        freeform = _freeform_name(item)
        if freeform is not None and KEY_NAME in freeform:
            value = _data_value(item)
            if value is not None:
                found.append(FoundLabel.from_text(f"{location}({_name(handler)})/ilst/----:{freeform}", value))
            continue
        if not keys:
            continue
        index = int.from_bytes(item.type, "big")
        if 1 <= index <= len(keys) and _is_label_key(keys[index - 1]):
            value = _data_value(item)
            if value is not None:
                name = _key_name(keys[index - 1])
                found.append(FoundLabel.from_text(f"{location}({_name(handler)}) keys:{name}", value))
    return found


def _strip_meta(meta: Box) -> bool:
    """Remove every AIGC key/item from ``meta``; True when that left it with nothing of value.

    A meta box that was empty before is kept: it is not ours to tidy up.
    """
    ilst = meta.find(b"ilst")
    keys = _keys(meta)
    items = list(ilst.children or ()) if ilst is not None else []
    before = len(items) + len(keys or ())
    if keys is not None:
        keep = [i for i, entry in enumerate(keys) if not _is_label_key(entry)]
        if len(keep) != len(keys):
            renumber = {old + 1: new + 1 for new, old in enumerate(keep)}
            kept_items: list[Box] = []
            for item in items:
                index = int.from_bytes(item.type, "big")
                if _freeform_name(item) is None and index in renumber:
                    item.type = struct.pack(">I", renumber[index])
                    kept_items.append(item)
                elif _freeform_name(item) is not None or not 1 <= index <= len(keys):
                    kept_items.append(item)  # iTunes atoms and items no key names are not ours to drop
            items = kept_items
            assert meta.children is not None
            meta.children = [_keys_box([keys[i] for i in keep], c) if c.type == b"keys" else c for c in meta.children]
    items = [i for i in items if KEY_NAME not in (_freeform_name(i) or "")]
    if ilst is not None:
        ilst.children = items
    remaining_keys = _keys(meta) or []
    others = [c for c in meta.children or () if c.type not in (b"hdlr", b"keys", b"ilst") and c.type not in _FREE]
    removed = before != len(items) + len(remaining_keys)
    return removed and not remaining_keys and not items and not others


def _xmp_packet(box_type: bytes, payload: bytes) -> bytes | None:
    if box_type == b"XMP_":
        return payload
    if box_type == b"uuid" and payload[:16] == XMP_UUID:
        return payload[16:]
    return None


def _with_packet(box_type: bytes, packet: bytes) -> bytes:
    return packet if box_type == b"XMP_" else XMP_UUID + packet


# ---------------------------------------------------------------------------- moov edits
def moov_labels(moov: Box) -> list[FoundLabel]:
    """Every label placement inside ``moov`` in tree order."""
    found: list[FoundLabel] = []
    for child in moov.children or ():
        if child.type == b"meta":
            found += _meta_labels(child, "moov/meta")
        elif child.type == b"udta":
            for sub in child.children or ():
                if sub.type == b"meta":
                    found += _meta_labels(sub, "moov/udta/meta")
                else:
                    found += _xmp_labels(sub, "moov/udta")
        else:
            found += _xmp_labels(child, "moov")
    return found


def _xmp_labels(box: Box, where: str) -> list[FoundLabel]:
    if box.children is not None:
        return []
    packet = _xmp_packet(box.type, bytes(box.payload))
    if packet is None:
        return []
    location = f"{where}/{_name(box.type)} XMP TC260:AIGC" if where else f"{_name(box.type)} (top level) XMP TC260:AIGC"
    return [FoundLabel.from_text(location, value) for value in xmp.find_aigc(packet)]


def _strip_xmp_in(parent: Box) -> None:
    kept: list[Box] = []
    for child in parent.children or ():
        packet = _xmp_packet(child.type, bytes(child.payload)) if child.children is None else None
        if packet is not None and xmp.find_aigc(packet):
            stripped = xmp.remove_aigc(packet)
            if stripped is None:
                continue
            child.payload = _with_packet(child.type, stripped)
        kept.append(child)
    parent.children = kept


def _first_mdta_meta(moov: Box) -> Box | None:
    """The first ``mdta`` meta in file order, directly in ``moov`` or in ``moov/udta``.

    ffmpeg's demuxer keeps only the first ``keys`` table it meets and resolves every later ``ilst``
    index against it, so a second ``mdta`` meta would make ffprobe show our label under another
    key's name. Apple files carry ``moov/meta``; the label joins that table rather than starting one.
    """
    for child in moov.children or ():
        if child.type == b"meta" and _handler(child) == MDTA:
            return child
        if child.type == b"udta":
            for sub in child.children or ():
                if sub.type == b"meta" and _handler(sub) == MDTA:
                    return sub
    return None


def edit_moov(moov: Box, label: AIGCLabel | None) -> None:
    """Remove every label from ``moov``; then, if ``label`` is given, add it at the primary placement."""
    assert moov.children is not None
    _strip_xmp_in(moov)
    kept: list[Box] = []
    for child in moov.children:
        if child.type == b"meta" and _strip_meta(child):
            continue
        if child.type == b"udta":
            assert child.children is not None
            had = len(child.children)
            _strip_xmp_in(child)
            child.children = [c for c in child.children if not (c.type == b"meta" and _strip_meta(c))]
            if had and not child.children and not any(child.trailer):
                continue  # we emptied it: drop it rather than leave an empty udta behind
        kept.append(child)
    moov.children = kept
    if label is None:
        return
    meta = _first_mdta_meta(moov)
    if meta is None:
        udta = moov.find(b"udta")
        if udta is None:
            udta = Box(b"udta", children=[])
            moov.children.append(udta)
        assert udta.children is not None
        meta = _new_mdta_meta()
        udta.children.append(meta)
    assert meta.children is not None
    if meta.find(b"keys") is None:
        at = next((i for i, c in enumerate(meta.children) if c.type == b"ilst"), len(meta.children))
        meta.children.insert(at, _keys_box([], None))
    if meta.find(b"ilst") is None:
        meta.children.append(Box(b"ilst", children=[]))
    keys = _keys(meta) or []
    keys.append(MDTA + KEY_NAME.encode())
    meta.children = [_keys_box(keys, c) if c.type == b"keys" else c for c in meta.children]
    ilst = meta.find(b"ilst")
    assert ilst is not None and ilst.children is not None
    index = struct.pack(">I", len(keys))
    ilst.children = [c for c in ilst.children if c.type != index]  # an orphan item would alias our key
    ilst.children.append(_data_item(len(keys), label.to_json()))


# ---------------------------------------------------------------------------- offsets
@dataclass
class _ChunkTable:
    box: Box
    version_flags: bytes
    offsets: np.ndarray  # original absolute offsets, uint64


def _chunk_table_boxes(moov: Box) -> Iterator[tuple[Box, int, int]]:
    """Every ``stco``/``co64`` box with its entry count and width, checked to fit in the box."""
    for _path, box, _parent in moov.walk():
        if box.type not in (b"stco", b"co64") or box.children is not None:
            continue
        if len(box.payload) < 8:
            raise MalformedFileError(f"{_name(box.type)} box is shorter than its header")
        (count,) = struct.unpack_from(">I", box.payload, 4)
        width = 4 if box.type == b"stco" else 8
        if count * width > len(box.payload) - 8:
            raise MalformedFileError(f"{_name(box.type)} claims {count} chunk offsets, more than fit in it")
        yield box, count, width


def _chunk_tables(moov: Box) -> list[_ChunkTable]:
    import numpy as np

    tables: list[_ChunkTable] = []
    for box, count, width in _chunk_table_boxes(moov):
        dtype = ">u4" if width == 4 else ">u8"
        offsets = np.frombuffer(box.payload, dtype=dtype, count=count, offset=8).astype(np.uint64)
        tables.append(_ChunkTable(box, bytes(box.payload[:4]), offsets))
    return tables


class _OffsetMap:
    """Maps an absolute offset in the source file to the new file: each top-level box moves as a block."""

    def __init__(self, starts: list[int], shifts: list[int]) -> None:
        self.starts = starts
        self.shifts = shifts
        self.identity = not any(shifts)

    def one(self, offset: int) -> int:
        index = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        return offset + self.shifts[index]

    def many(self, offsets: np.ndarray) -> np.ndarray:
        if self.identity or not len(offsets):
            return offsets
        import numpy as np

        index = np.searchsorted(np.asarray(self.starts, dtype=np.uint64), offsets, side="right").astype(np.int64) - 1
        index[index < 0] = 0
        shifts = np.asarray(self.shifts, dtype=np.int64)[index]
        moved = offsets.astype(np.int64) + shifts
        if (moved < 0).any():
            raise MalformedFileError("a chunk offset would become negative")
        return moved.astype(np.uint64)


def _patch_tables(tables: list[_ChunkTable], mapping: _OffsetMap) -> None:
    for table in tables:
        moved = mapping.many(table.offsets)
        count = struct.pack(">I", len(moved))
        if table.box.type == b"stco" and (not len(moved) or int(moved.max()) <= 0xFFFFFFFF):
            table.box.payload = table.version_flags + count + moved.astype(">u4").tobytes()
        else:
            table.box.type = b"co64"
            table.box.payload = table.version_flags + count + moved.astype(">u8").tobytes()


def _header_len(data: bytes | bytearray) -> int:
    return 16 if data[:4] == b"\0\0\0\1" else 8


def _patch_moof(data: bytearray, mapping: _OffsetMap) -> None:
    """Move absolute ``tfhd`` base-data-offsets in one ``moof`` (given with its header)."""
    for _pos, box_type, start, end in _iter_children(data, _header_len(data), len(data)):
        if box_type != b"traf":
            continue
        for _sub_pos, sub_type, sub_start, sub_end in _iter_children(data, start, end):
            if sub_type != b"tfhd" or sub_end - sub_start < 16:
                continue
            flags = int.from_bytes(data[sub_start + 1 : sub_start + 4], "big")
            if flags & 0x1:  # base-data-offset-present: an absolute file offset
                (base,) = struct.unpack_from(">Q", data, sub_start + 8)
                struct.pack_into(">Q", data, sub_start + 8, mapping.one(base))


def _patch_mfra(data: bytearray, mapping: _OffsetMap) -> None:
    """Move the absolute moof offsets of every ``tfra`` in an ``mfra`` box."""
    for _pos, box_type, start, end in _iter_children(data, _header_len(data), len(data)):
        if box_type != b"tfra" or end - start < 16:
            continue
        version = data[start]
        lengths = int.from_bytes(data[start + 8 : start + 12], "big")
        (count,) = struct.unpack_from(">I", data, start + 12)
        word = 8 if version == 1 else 4
        entry = 2 * word + ((lengths >> 4) & 3) + 1 + ((lengths >> 2) & 3) + 1 + (lengths & 3) + 1
        if 16 + count * entry > end - start:
            raise MalformedFileError(f"tfra claims {count} entries, more than fit in it")
        for i in range(count):
            at = start + 16 + i * entry + word
            old = int.from_bytes(data[at : at + word], "big")
            new = mapping.one(old)
            if new >= 1 << (8 * word):
                raise WriteNotSupportedError("a tfra moof offset would overflow its 32-bit field")
            data[at : at + word] = new.to_bytes(word, "big")


def _iter_children(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[int, bytes, int, int]]:
    pos = start
    while pos + 8 <= end:
        size, box_type = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise MalformedFileError("64-bit box size is cut off")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise MalformedFileError(f"{_name(box_type)} box does not fit its parent")
        yield pos, box_type, pos + header, pos + size
        pos += size


def _edited(handle: BinaryIO, label: AIGCLabel | None) -> tuple[list[TopBox], int, Box, dict[int, bytes | None]]:
    """The top-level boxes, the index of ``moov``, ``moov`` carrying ``label`` (``None``: none), and
    the XMP ``uuid`` boxes that lose a label, by index (``None``: the box goes)."""
    tops = scan_top(handle)
    moov_index = _moov_of(tops)
    moov = parse_moov(_read_box(handle, tops[moov_index], MAX_MOOV_BYTES))
    if moov.find(b"cmov") is not None:
        raise WriteNotSupportedError("compressed QuickTime movie header (cmov): its offsets cannot be patched")
    edit_moov(moov, label)
    replaced: dict[int, bytes | None] = {}
    for i, box in enumerate(tops):
        if box.type == b"uuid" and box.size >= box.header + 16:
            handle.seek(box.offset + box.header)
            if handle.read(16) != XMP_UUID:
                continue
            packet = _read_box(handle, box, MAX_METADATA_BYTES)[box.header + 16 :]
            if xmp.find_aigc(packet):
                stripped = xmp.remove_aigc(packet)
                replaced[i] = None if stripped is None else Box(b"uuid", XMP_UUID + stripped).to_bytes()
    return tops, moov_index, moov, replaced


def _fill(data: bytes, room: int) -> bytes | None:
    """``data`` followed by one ``free`` box filling ``room`` bytes, or None when it does not fit."""
    spare = room - len(data)
    if spare == 0:
        return data
    if 8 <= spare <= 0xFFFFFFFF:
        return data + struct.pack(">I4s", spare, b"free") + bytes(spare - 8)
    return None


# ---------------------------------------------------------------------------- the container
@register
class MP4Container(Container):
    """ISO base media file format: MP4, MOV, M4A, M4V, 3GP (not HEIF/AVIF images)."""

    name = "mp4"
    description = "ISO base media (MP4/MOV/M4A/3GP)"
    extensions = (".mp4", ".m4v", ".m4a", ".mov", ".3gp", ".3g2", ".m4b", ".f4v")
    mime_type = "video/mp4"
    media = MediaKind.VIDEO
    primary_location = "moov/udta/meta(mdta) keys:AIGC + ilst data (UTF-8)"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """``ftyp`` whose major brand is not a HEIF/AVIF image brand, or a QuickTime file without ftyp."""
        if len(head) < 8:
            return False
        size, box_type = struct.unpack_from(">I4s", head)
        if box_type == b"ftyp":
            return size >= 16 and len(head) >= 12 and head[8:12] not in HEIF_BRANDS
        return box_type in _FIRST_BOXES and (size in (0, 1) or size >= 8)

    def read(self, path: Path) -> list[FoundLabel]:
        """Labels in every ``moov`` metadata variant and every XMP ``uuid`` box, in file order."""
        found: list[FoundLabel] = []
        with open(path, "rb") as handle:
            tops = scan_top(handle)
            _moov_of(tops)
            for top in tops:
                if top.type == b"moov":
                    found += moov_labels(parse_moov(_read_box(handle, top, MAX_MOOV_BYTES)))
                elif top.type == b"uuid" and top.size >= top.header + 16:
                    handle.seek(top.offset + top.header)
                    if handle.read(16) != XMP_UUID:
                        continue
                    data = _read_box(handle, top, MAX_METADATA_BYTES)[top.header :]
                    found += _xmp_labels(Box(b"uuid", data), "")
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Rebuild ``moov`` (and XMP uuid boxes), stream everything else, fix absolute offsets."""
        with open(src, "rb") as handle, open_output(dst) as out:
            tops, moov_index, moov, replaced = _edited(handle, label)
            tables = _chunk_tables(moov)
            mapping = self._layout(tops, moov_index, moov, tables, replaced)
            for i, box in enumerate(tops):
                if i == moov_index:
                    out.write(moov.to_bytes())
                elif i in replaced:
                    data = replaced[i]
                    if data:
                        out.write(data)
                elif box.type in (b"moof", b"mfra") and not mapping.identity:
                    raw = bytearray(_read_box(handle, box, MAX_METADATA_BYTES))
                    (_patch_moof if box.type == b"moof" else _patch_mfra)(raw, mapping)
                    out.write(raw)
                else:
                    copy_range(handle, out, box.offset, box.size, _name(box.type))

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """The new ``moov`` written where the old one is. When ``moov`` (with any ``free`` boxes
        after it) ends the file, the file grows or shrinks to fit it; else it must fit the
        ``free``/``skip`` boxes around it (what is left over becomes one ``free`` box). An XMP
        ``uuid`` box that loses its label is rewritten within its own size. No media data moves, so
        no chunk offset changes. None (write a copy) when that does not fit.
        """
        with open(path, "rb") as handle:
            tops, moov_index, moov, replaced = _edited(handle, label)
            total = file_size(handle)
        if any(box.missing for box in tops):
            return None  # a recording cut short: its mdat header keeps declaring the missing bytes
        for _checked in _chunk_table_boxes(moov):  # tables the edit keeps must be sound, as a copy demands
            pass
        patches: list[tuple[int, bytes]] = []
        for i, data in replaced.items():
            fitted = _fill(data or b"", tops[i].size)
            if fitted is None:
                return None
            patches.append((tops[i].offset, fitted))
        first = last = moov_index
        while first > 0 and tops[first - 1].type in _FREE and first - 1 not in replaced:
            first -= 1
        while last + 1 < len(tops) and (tops[last + 1].type in _FREE or tops[last + 1].type == b""):
            last += 1
        new_moov = moov.to_bytes()
        start = tops[moov_index].offset
        region: bytes | None = new_moov
        if last == len(tops) - 1:  # moov at the end: grow or shrink the file, as a copy would
            total = start + len(new_moov)
        else:
            start = tops[first].offset
            region = _fill(new_moov, tops[last].end - start)
        if region is None:
            return None
        patches.append((start, region))
        return EditPlan(tuple(sorted(patches)), total)

    @staticmethod
    def _layout(
        tops: list[TopBox], moov_index: int, moov: Box, tables: list[_ChunkTable], replaced: dict[int, bytes | None]
    ) -> _OffsetMap:
        """Decide every box's new position; patch chunk offsets until the moov size is stable."""
        old_moov = tops[moov_index].size
        after = moov_index + 1
        free_after = after < len(tops) and tops[after].type in _FREE and after not in replaced
        for _attempt in range(4):
            new_moov = moov.size()
            growth = new_moov - old_moov
            if free_after:
                replaced.pop(after, None)
                spare = tops[after].size - growth
                if growth and (spare == 0 or 8 <= spare <= 0xFFFFFFFF):
                    replaced[after] = struct.pack(">I4s", spare, b"free") + bytes(spare - 8) if spare else None
            starts: list[int] = []
            shifts: list[int] = []
            position = 0
            for i, box in enumerate(tops):
                starts.append(box.offset)
                shifts.append(position - box.offset)
                if i == moov_index:
                    position += new_moov
                elif i in replaced:
                    position += len(replaced[i] or b"")
                else:
                    position += box.size
            mapping = _OffsetMap(starts, shifts)
            _patch_tables(tables, mapping)
            if moov.size() == new_moov:
                return mapping
        raise MalformedFileError("could not lay out the rewritten moov (chunk offsets do not settle)")

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over what is rendered, independent of where metadata sits.

        Counted, in order: for each ``trak`` of ``moov``, its handler type and the raw payloads of
        ``stsd``, ``stts``, ``ctts``, ``stss``, ``stsc``, ``stsz``/``stz2`` (codec setup, timing and
        sample sizes; ``stco``/``co64`` are left out because they move whenever metadata before the
        media changes size); then the payload of every top-level ``mdat`` in file order; for
        fragmented files also each ``moof``'s ``trun`` payloads. Each item is length-prefixed.
        """
        digest = hashlib.sha256()

        def item(tag: bytes, data: bytes | memoryview) -> None:
            digest.update(tag + struct.pack(">Q", len(data)))
            digest.update(data)

        with open(path, "rb") as handle:
            tops = scan_top(handle)
            moov = parse_moov(_read_box(handle, tops[_moov_of(tops)], MAX_MOOV_BYTES))
            for trak in moov.children or ():
                if trak.type != b"trak":
                    continue
                digest.update(b"trak")
                for _p, box, _parent in trak.walk():
                    if box.type == b"hdlr" and box.children is None and _p.endswith("mdia/hdlr"):
                        item(b"hdlr", bytes(box.payload[8:12]))
                    elif box.type in _SAMPLE_TABLES and box.children is None:
                        item(box.type, box.payload)
            for top in tops:
                if top.type == b"mdat":
                    digest.update(b"mdat" + struct.pack(">Q", top.size - top.header))
                    hash_range(handle, top.offset + top.header, top.size - top.header, digest.update, "mdat")
                elif top.type == b"moof":
                    raw = _read_box(handle, top, MAX_METADATA_BYTES)
                    for _pos, traf_type, start, end in _iter_children(raw, top.header, len(raw)):
                        if traf_type != b"traf":
                            continue
                        for _sp, sub_type, sub_start, sub_end in _iter_children(raw, start, end):
                            if sub_type == b"trun":
                                item(b"trun", raw[sub_start:sub_end])
        return digest.digest()
