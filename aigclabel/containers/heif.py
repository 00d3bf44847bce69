"""HEIF/HEIC and AVIF (ISO/IEC 23008-12 on ISO-BMFF): the label as XMP ``TC260:AIGC`` in an XMP item.

ISO/IEC 23008-12 Annex A stores XMP as a metadata *item*: an ``infe`` of type ``mime`` with
content type ``application/rdf+xml``, whose bytes ``iloc`` locates in the file (``mdat``) or in the
``meta`` box's ``idat``; a ``cdsc`` reference in ``iref`` ties it to the image it describes. This is
what libheif (and so pillow-heif), exiftool and exempi read and write. TC260-PG-20259A only says
"as ISO/IEC 23008-12 specifies" [UNCONFIRMED beyond that]; this is that layout.

Writing is lossless: coded image data is never decoded or moved within the file's order. The new
or edited XMP packet goes into a new ``mdat`` appended at the end of the file; the ``meta`` box is
rebuilt with the item's ``infe`` (hidden, as libheif writes it), its ``iloc`` entry and a ``cdsc``
reference to the primary item. Because ``meta`` usually precedes the image ``mdat``, every
``iloc`` file offset past the ``meta`` box is shifted by its growth (field sizes widen if needed).
Stripping removes the item, its references and property associations, and zeroes its old bytes
when no other item shares them. Files with a ``moov`` box (image sequences) stay read-only, since
their sample tables hold offsets too.

Only the top-level ``meta`` box is loaded (bounded); coded image data is only streamed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, ClassVar

from .._io import MAX_METADATA_BYTES, copy_rest, file_size, read_exact
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError, WriteNotSupportedError
from ..label import AIGCLabel
from ..xmp import find_aigc, remove_aigc, set_aigc
from . import Container, FoundLabel, MediaKind, register
from ._stream import copy_range, hash_range, open_output

XMP_CONTENT_TYPE = b"application/rdf+xml"
#: ``ftyp`` major brands of HEIF files (HEIC, AVIF, the generic MIAF/HEIF brands and their image
#: sequences): the same set the MP4 container declines, so every ``ftyp`` file has one owner.
BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"mif2", b"msf1", b"avif"}
    | {b"avis", b"avio", b"heif", b"miaf"}
)
_MAX_ITEMS = 100_000


@dataclass(frozen=True)
class _Box:
    type: bytes
    start: int  # offset of the size field
    header: int  # header length (8 or 16)
    end: int

    @property
    def payload(self) -> int:
        return self.start + self.header


def _boxes(buf: bytes | BinaryIO, start: int, end: int) -> Iterator[_Box]:
    """Boxes laid out between ``start`` and ``end`` of a buffer or a seekable file."""
    offset = start
    while offset < end:
        if end - offset < 8:
            raise MalformedFileError(f"{end - offset} stray bytes where an ISO-BMFF box header should be")
        if isinstance(buf, bytes):
            head = buf[offset : offset + 16]
        else:
            buf.seek(offset)
            head = buf.read(16)
        size, btype = struct.unpack(">I4s", head[:8])
        header = 8
        if size == 1:
            if len(head) < 16:
                raise TruncatedFileError("ISO-BMFF large box header is truncated")
            (size,) = struct.unpack(">Q", head[8:16])
            header = 16
        elif size == 0:
            if isinstance(buf, bytes):  # "to the end of the file" is only for the last top-level box
                raise MalformedFileError(f"ISO-BMFF box {btype!r} at byte {offset} has size 0 inside another box")
            size = end - offset
        if size < header or offset + size > end:
            raise MalformedFileError(f"ISO-BMFF box {btype!r} at byte {offset} has an invalid size {size}")
        yield _Box(btype, offset, header, offset + size)
        offset += size


class _Reader:
    """Big-endian cursor over one box's bytes, raising typed errors on overrun."""

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def take(self, size: int) -> bytes:
        if self.pos + size > self.end:
            raise MalformedFileError("ISO-BMFF box is shorter than its fields")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big") if size else 0

    def cstring(self) -> bytes:
        stop = self.data.find(b"\0", self.pos, self.end)
        if stop < 0:
            stop = self.end  # some writers omit the final NUL
        text = self.data[self.pos : stop]
        self.pos = min(stop + 1, self.end)
        return text


@dataclass
class _Extent:
    index: int
    offset: int
    length: int


@dataclass
class _Location:
    item_id: int
    method: int
    dref: int
    base: int
    extents: list[_Extent] = field(default_factory=list)


@dataclass
class _Iloc:
    version: int
    offset_size: int
    length_size: int
    base_size: int
    index_size: int
    items: list[_Location]


@dataclass
class _ItemInfo:
    item_id: int
    item_type: bytes
    content_type: bytes
    box: _Box


@dataclass
class _Meta:
    box: _Box  # the top-level meta box, in file coordinates
    data: bytes  # the whole meta box
    children: list[_Box]  # in ``data`` coordinates
    items: list[_ItemInfo]
    iloc: _Iloc | None
    primary: int | None

    def child(self, btype: bytes) -> _Box | None:
        return next((c for c in self.children if c.type == btype), None)


def _parse_iloc(data: bytes, box: _Box) -> _Iloc:
    r = _Reader(data, box.payload, box.end)
    version = r.uint(1)
    r.take(3)
    if version > 2:
        raise MalformedFileError(f"iloc version {version} is unknown")
    sizes = r.uint(2)
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version else 0
    for size in (offset_size, length_size, base_size, index_size):
        if size not in (0, 4, 8):
            raise MalformedFileError(f"iloc field size {size} is invalid")
    count = r.uint(2 if version < 2 else 4)
    if count > _MAX_ITEMS:
        raise LimitExceededError(f"iloc lists {count} items")
    items = []
    for _ in range(count):
        item_id = r.uint(2 if version < 2 else 4)
        method = r.uint(2) & 15 if version else 0
        dref = r.uint(2)
        base = r.uint(base_size)
        extents = [_Extent(r.uint(index_size), r.uint(offset_size), r.uint(length_size)) for _ in range(r.uint(2))]
        items.append(_Location(item_id, method, dref, base, extents))
    return _Iloc(version, offset_size, length_size, base_size, index_size, items)


def _parse_iinf(data: bytes, box: _Box) -> list[_ItemInfo]:
    r = _Reader(data, box.payload, box.end)
    version = r.uint(1)
    r.take(3)
    r.uint(2 if version == 0 else 4)  # entry count: the boxes themselves are authoritative
    items = []
    for child in _boxes(data, r.pos, box.end):
        if child.type != b"infe":
            continue
        c = _Reader(data, child.payload, child.end)
        infe_version = c.uint(1)
        c.take(3)
        if infe_version < 2:  # predates item types: never XMP, but its ID is taken
            items.append(_ItemInfo(c.uint(2), b"", b"", child))
            continue
        item_id = c.uint(2 if infe_version == 2 else 4)
        c.uint(2)  # protection index
        item_type = c.take(4)
        c.cstring()  # name
        content_type = c.cstring() if item_type == b"mime" else b""
        items.append(_ItemInfo(item_id, item_type, content_type, child))
        if len(items) > _MAX_ITEMS:
            raise LimitExceededError(f"iinf lists more than {_MAX_ITEMS} items")
    return items


def _top_boxes(handle: BinaryIO) -> list[_Box]:
    size = file_size(handle)
    boxes = list(_boxes(handle, 0, size))
    if not boxes or boxes[0].type != b"ftyp":
        raise MalformedFileError("ISO-BMFF file does not start with an ftyp box")
    return boxes


def _load_meta(handle: BinaryIO, boxes: list[_Box]) -> _Meta:
    found = [b for b in boxes if b.type == b"meta"]
    if not found:
        raise MalformedFileError("HEIF file has no top-level meta box")
    box = found[0]
    if box.end - box.start > MAX_METADATA_BYTES:
        raise LimitExceededError(f"HEIF meta box is {box.end - box.start} bytes")
    handle.seek(box.start)
    data = read_exact(handle, box.end - box.start, "HEIF meta box")
    local = _Box(box.type, 0, box.header, len(data))
    children = list(_boxes(data, local.payload + 4, local.end))
    meta = _Meta(box, data, children, [], None, None)
    iinf, iloc, pitm = meta.child(b"iinf"), meta.child(b"iloc"), meta.child(b"pitm")
    if iinf is not None:
        meta.items = _parse_iinf(data, iinf)
    if iloc is not None:
        meta.iloc = _parse_iloc(data, iloc)
    if pitm is not None:
        r = _Reader(data, pitm.payload, pitm.end)
        version = r.uint(1)
        r.take(3)
        meta.primary = r.uint(2 if version == 0 else 4)
    return meta


def _xmp_items(meta: _Meta) -> list[_ItemInfo]:
    return [i for i in meta.items if i.item_type == b"mime" and i.content_type.strip() == XMP_CONTENT_TYPE]


def _item_ranges(handle: BinaryIO, meta: _Meta, item_id: int) -> tuple[int, list[tuple[int, int]]]:
    """Construction method and (start, length) extents of one item.

    Method 0 extents are file offsets; method 1 extents are offsets into ``meta.data`` (the idat).
    """
    if meta.iloc is None:
        raise MalformedFileError("HEIF meta box has no iloc box")
    location = next((loc for loc in meta.iloc.items if loc.item_id == item_id), None)
    if location is None:
        raise MalformedFileError(f"HEIF item {item_id} has no iloc entry")
    if location.dref != 0:
        raise MalformedFileError(f"HEIF item {item_id} lives in an external file")
    if location.method == 1:
        idat = meta.child(b"idat")
        if idat is None:
            raise MalformedFileError(f"HEIF item {item_id} points into a missing idat box")
        source_start, source_end = idat.payload, idat.end
    elif location.method == 0:
        source_start, source_end = 0, file_size(handle)
    else:
        raise MalformedFileError(f"HEIF item {item_id} uses unsupported construction method {location.method}")
    ranges = []
    for extent in location.extents:
        start = source_start + location.base + extent.offset
        length = extent.length or source_end - start
        if start + length > source_end or length < 0:
            raise TruncatedFileError(f"HEIF item {item_id} extends past its data")
        ranges.append((start, length))
    return location.method, ranges


def _item_bytes(handle: BinaryIO, meta: _Meta, item_id: int) -> bytes:
    """The bytes of one (metadata-sized) item, from the file or the meta box's idat."""
    method, ranges = _item_ranges(handle, meta, item_id)
    if sum(length for _, length in ranges) > MAX_METADATA_BYTES:
        raise LimitExceededError(f"HEIF item {item_id} is over {MAX_METADATA_BYTES} bytes")
    parts = []
    for start, length in ranges:
        if method == 1:
            parts.append(meta.data[start : start + length])
        else:
            handle.seek(start)
            parts.append(read_exact(handle, length, f"HEIF item {item_id}"))
    return b"".join(parts)


def _box(btype: bytes, payload: bytes) -> bytes:
    if len(payload) + 8 > 0xFFFFFFFF:
        raise LimitExceededError(f"ISO-BMFF box {btype!r} would exceed 4 GiB")
    return struct.pack(">I4s", len(payload) + 8, btype) + payload


def _field_size(values: list[int], current: int) -> int:
    """The smallest iloc field size (0, 4 or 8, never below ``current``) that holds every value."""
    top = max(values, default=0)
    if top == 0:
        return current
    if top <= 0xFFFFFFFF:
        return max(current, 4)
    return 8


def _serialize_iloc(iloc: _Iloc) -> bytes:
    locs = iloc.items
    offset_size = _field_size([e.offset for loc in locs for e in loc.extents], iloc.offset_size)
    length_size = _field_size([e.length for loc in locs for e in loc.extents], iloc.length_size)
    base_size = _field_size([loc.base for loc in locs], iloc.base_size)
    version = iloc.version
    if version < 2 and any(loc.item_id > 0xFFFF for loc in locs):
        version = 2
    index_size = iloc.index_size if version else 0
    out = bytearray([version, 0, 0, 0])
    out += struct.pack(">H", offset_size << 12 | length_size << 8 | base_size << 4 | index_size)
    id_size = 4 if version == 2 else 2
    out += len(locs).to_bytes(id_size, "big")
    for loc in locs:
        out += loc.item_id.to_bytes(id_size, "big")
        if version:
            out += struct.pack(">H", loc.method)
        out += struct.pack(">H", loc.dref) + loc.base.to_bytes(base_size, "big")
        out += struct.pack(">H", len(loc.extents))
        for extent in loc.extents:
            if version and index_size:
                out += extent.index.to_bytes(index_size, "big")
            out += extent.offset.to_bytes(offset_size, "big") + extent.length.to_bytes(length_size, "big")
    return _box(b"iloc", bytes(out))


def _rebuild_iinf(meta: _Meta, box: _Box, drop: set[int], add: bytes | None) -> bytes:
    version = meta.data[box.payload]
    first = box.payload + 4 + (2 if version == 0 else 4)
    kept = [c for c in _boxes(meta.data, first, box.end) if not (c.type == b"infe" and _infe_id(meta, c) in drop)]
    entries = [meta.data[c.start : c.end] for c in kept] + ([add] if add else [])
    if version == 0 and len(entries) > 0xFFFF:
        version = 1
    count = len(entries).to_bytes(2 if version == 0 else 4, "big")
    return _box(b"iinf", bytes([version]) + meta.data[box.payload + 1 : box.payload + 4] + count + b"".join(entries))


def _infe_id(meta: _Meta, box: _Box) -> int | None:
    item = next((i for i in meta.items if i.box == box), None)
    return None if item is None else item.item_id


def _new_infe(item_id: int) -> bytes:
    # Flags 1 = hidden: a metadata item is never shown as an image (what libheif writes too).
    if item_id <= 0xFFFF:
        head = bytes([2, 0, 0, 1]) + struct.pack(">HH", item_id, 0)
    else:
        head = bytes([3, 0, 0, 1]) + struct.pack(">IH", item_id, 0)
    return _box(b"infe", head + b"mime" + b"\0" + XMP_CONTENT_TYPE + b"\0\0")


def _rebuild_iref(meta: _Meta, box: _Box | None, drop: set[int], add: tuple[int, int] | None) -> bytes:
    """iref without references from or to ``drop``, plus a ``cdsc`` from add[0] to add[1]."""
    version = meta.data[box.payload] if box is not None else 0
    if add is not None and max(add) > 0xFFFF:
        version = 1
    id_size = 2 if version == 0 else 4
    refs: list[tuple[bytes, int, list[int]]] = []
    if box is not None:
        old_size = 2 if meta.data[box.payload] == 0 else 4
        for child in _boxes(meta.data, box.payload + 4, box.end):
            r = _Reader(meta.data, child.payload, child.end)
            source = r.uint(old_size)
            targets = [r.uint(old_size) for _ in range(r.uint(2))]
            refs.append((child.type, source, targets))
    out = bytearray([version, 0, 0, 0])
    for ref_type, source, targets in refs:
        kept = [t for t in targets if t not in drop]
        if source in drop or not kept:
            continue
        out += _box(
            ref_type,
            source.to_bytes(id_size, "big")
            + struct.pack(">H", len(kept))
            + b"".join(t.to_bytes(id_size, "big") for t in kept),
        )
    if add is not None:
        out += _box(b"cdsc", add[0].to_bytes(id_size, "big") + b"\0\1" + add[1].to_bytes(id_size, "big"))
    return _box(b"iref", bytes(out))


def _rebuild_iprp(meta: _Meta, box: _Box, drop: set[int]) -> bytes:
    """iprp whose ipma no longer associates properties with dropped items."""
    parts = []
    for child in _boxes(meta.data, box.payload, box.end):
        raw = meta.data[child.start : child.end]
        if child.type == b"ipma":
            r = _Reader(meta.data, child.payload, child.end)
            version = r.uint(1)
            flags = r.uint(3)
            entries = []
            for _ in range(r.uint(4)):
                start = r.pos
                item_id = r.uint(2 if version < 1 else 4)
                r.take(r.uint(1) * (2 if flags & 1 else 1))
                if item_id not in drop:
                    entries.append(meta.data[start : r.pos])
            head = meta.data[child.payload : child.payload + 4]
            raw = _box(b"ipma", head + struct.pack(">I", len(entries)) + b"".join(entries))
        parts.append(raw)
    return _box(b"iprp", b"".join(parts))


@register
class HeifContainer(Container):
    """HEIF/HEIC and AVIF still images (image sequences are read-only)."""

    name: ClassVar[str] = "heif"
    description: ClassVar[str] = "HEIF/AVIF image"
    extensions: ClassVar[tuple[str, ...]] = (".heic", ".heif", ".avif", ".hif")
    mime_type: ClassVar[str] = "image/heif"
    media: ClassVar[MediaKind] = MediaKind.IMAGE
    primary_location: ClassVar[str] = "XMP TC260:AIGC in HEIF item application/rdf+xml"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        return len(head) >= 16 and head[4:8] == b"ftyp" and head[8:12] in BRANDS

    def read(self, path: Path) -> list[FoundLabel]:
        found: list[FoundLabel] = []
        with open(path, "rb") as handle:
            meta = _load_meta(handle, _top_boxes(handle))
            for item in _xmp_items(meta):
                packet = _item_bytes(handle, meta, item.item_id)
                location = f"{self.primary_location} (item {item.item_id})"
                found.extend(FoundLabel.from_text(location, value) for value in find_aigc(packet))
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        with open(src, "rb") as handle:
            size = file_size(handle)
            boxes = _top_boxes(handle)
            meta = _load_meta(handle, boxes)
            if any(b.type == b"moov" for b in boxes):
                raise WriteNotSupportedError(
                    "HEIF image sequences (with a moov box) are read-only: their sample tables would need patching"
                )
            iinf_box, iloc_box = meta.child(b"iinf"), meta.child(b"iloc")
            if iinf_box is None or iloc_box is None or meta.iloc is None:
                raise MalformedFileError("HEIF meta box lacks its iinf or iloc box")
            if any(loc.dref for loc in meta.iloc.items):
                # Offsets into another file must not shift, offsets into this one must: we cannot tell.
                raise WriteNotSupportedError("HEIF items with data_reference_index != 0 cannot be relocated safely")
            xmp = _xmp_items(meta)
            updates: dict[int, bytes | None] = {}
            for number, item in enumerate(xmp):
                packet = _item_bytes(handle, meta, item.item_id)
                if label is not None and number == 0:
                    updates[item.item_id] = set_aigc(packet, label.to_json())
                elif find_aigc(packet):
                    updates[item.item_id] = remove_aigc(packet)
            new_id: int | None = None
            if label is not None and not xmp:
                if meta.primary is None:
                    raise MalformedFileError("HEIF file has no primary item (pitm box)")
                known = [i.item_id for i in meta.items] + [loc.item_id for loc in meta.iloc.items]
                new_id = max(known, default=0) + 1
                updates[new_id] = set_aigc(None, label.to_json())
            if not updates:
                handle.seek(0)
                with open_output(dst) as out:
                    copy_rest(handle, out)  # nothing to strip: byte-identical copy
                return
            drop = {item_id for item_id, data in updates.items() if data is None}
            appended = [(loc.item_id, updates[loc.item_id]) for loc in meta.iloc.items if updates.get(loc.item_id)]
            if new_id is not None:
                appended.append((new_id, updates[new_id]))
            stale_file, stale_idat = self._stale_ranges(handle, meta, set(updates) - {new_id})

            idat = bytearray(meta.data)
            for start, length in stale_idat:
                idat[start : start + length] = bytes(length)
            meta.data = bytes(idat)
            old_meta_size = meta.box.end - meta.box.start
            delta = 0
            for _ in range(4):
                new_meta = self._build_meta(meta, drop, appended, new_id, size, delta)
                if len(new_meta) - old_meta_size == delta:
                    break
                delta = len(new_meta) - old_meta_size
            else:  # pragma: no cover - field sizes only ever grow, so this converges in two rounds
                raise MalformedFileError("could not lay out the new HEIF meta box")

            last = boxes[-1]
            handle.seek(last.start)
            open_ended = handle.read(4) == b"\0\0\0\0"
            if open_ended and last is not meta.box and last.start < meta.box.start:
                raise WriteNotSupportedError("HEIF box before meta runs to the end of the file")
            with open_output(dst) as out:
                copy_range(handle, out, 0, meta.box.start, "HEIF boxes")
                out.write(new_meta)
                if open_ended and last is not meta.box:
                    # A last box "to the end of file" would swallow the appended mdat: give it a size.
                    copy_range(handle, out, meta.box.end, last.start - meta.box.end, "HEIF boxes")
                    if last.end - last.start > 0xFFFFFFFF:
                        raise LimitExceededError("HEIF last box is too large to be given an explicit size")
                    out.write(struct.pack(">I", last.end - last.start))
                    copy_range(handle, out, last.start + 4, size - last.start - 4, "HEIF boxes")
                else:
                    copy_range(handle, out, meta.box.end, size - meta.box.end, "HEIF boxes")
                if appended:
                    out.write(_box(b"mdat", b"".join(data for _, data in appended if data)))
                for start, length in stale_file:
                    out.seek(start + (delta if start >= meta.box.end else 0))
                    out.write(bytes(length))

    def _stale_ranges(
        self, handle: BinaryIO, meta: _Meta, replaced: set[int]
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Extents of replaced XMP items (file, idat) that no other item shares: they get zeroed."""
        assert meta.iloc is not None
        used: dict[int, list[tuple[int, int]]] = {0: [], 1: []}
        stale: dict[int, list[tuple[int, int]]] = {0: [], 1: []}
        for loc in meta.iloc.items:
            if loc.method not in (0, 1) or loc.dref:
                continue
            method, ranges = _item_ranges(handle, meta, loc.item_id)
            (stale if loc.item_id in replaced else used)[method].extend(ranges)
        for method in (0, 1):
            stale[method] = [
                (s, n) for s, n in stale[method] if not any(s < o + m and o < s + n for o, m in used[method])
            ]
            if method == 0:  # never zero structure: only bytes inside an mdat
                stale[0] = [(s, n) for s, n in stale[0] if s >= meta.box.end or s + n <= meta.box.start]
        return stale[0], stale[1]

    def _build_meta(
        self,
        meta: _Meta,
        drop: set[int],
        appended: list[tuple[int, bytes | None]],
        new_id: int | None,
        size: int,
        delta: int,
    ) -> bytes:
        """The new meta box for a given growth ``delta`` of the meta box itself."""
        assert meta.iloc is not None
        position = size + delta + 8  # the appended mdat's payload
        moved: dict[int, _Location] = {}
        for item_id, data in appended:
            length = len(data or b"")
            moved[item_id] = _Location(item_id, 0, 0, 0, [_Extent(0, position, length)])
            position += length
        locations = []
        for loc in meta.iloc.items:
            if loc.item_id in drop:
                continue
            if loc.item_id in moved:
                locations.append(moved.pop(loc.item_id))
            elif loc.method == 0:
                locations.append(self._shifted(loc, meta.box, delta))
            else:
                locations.append(loc)
        locations.extend(moved.values())
        iloc = replace(meta.iloc, items=locations)
        if any(loc.method for loc in locations) and iloc.version == 0:
            raise MalformedFileError("iloc version 0 cannot hold construction methods")
        has_iref = meta.child(b"iref") is not None
        cdsc = (new_id, meta.primary) if new_id is not None and meta.primary is not None else None
        children = []
        for child in meta.children:
            raw = meta.data[child.start : child.end]
            if child.type == b"iinf":
                raw = _rebuild_iinf(meta, child, drop, _new_infe(new_id) if new_id is not None else None)
            elif child.type == b"iloc":
                raw = _serialize_iloc(iloc)
            elif child.type == b"iref":
                raw = _rebuild_iref(meta, child, drop, cdsc)
            elif child.type == b"iprp" and drop:
                raw = _rebuild_iprp(meta, child, drop)
            children.append(raw)
            if child.type == b"iinf" and not has_iref and cdsc is not None:
                children.append(_rebuild_iref(meta, None, drop, cdsc))
        head = meta.box.header
        return _box(b"meta", meta.data[head : head + 4] + b"".join(children))

    @staticmethod
    def _shifted(loc: _Location, meta_box: _Box, delta: int) -> _Location:
        """``loc`` with its file offsets moved by ``delta`` where they point past the meta box."""
        if not loc.extents or delta == 0:
            return loc
        if any(e.length == 0 for e in loc.extents):
            raise WriteNotSupportedError("HEIF item extends 'to the end of the file'; appending would change it")
        starts = [loc.base + e.offset for e in loc.extents]
        if all(s + e.length <= meta_box.start for s, e in zip(starts, loc.extents, strict=True)):
            return loc
        if not all(s >= meta_box.end for s in starts):
            raise WriteNotSupportedError("HEIF item data lies inside the meta box by file offset")
        if loc.base >= meta_box.end:
            return replace(loc, base=loc.base + delta)
        return replace(loc, extents=[replace(e, offset=e.offset + delta) for e in loc.extents])

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over the primary item ID, the item properties (``ipco``: decoder configuration,
        size, colour, rotation...) and, per item in ID order, its type and bytes, metadata items
        (``mime``, ``Exif``, ``uri ``) excepted: the coded image data, never where it lies."""
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            meta = _load_meta(handle, _top_boxes(handle))
            if meta.iloc is None:
                raise MalformedFileError("HEIF meta box has no iloc box")
            digest.update(struct.pack(">Q", meta.primary or 0))
            iprp = meta.child(b"iprp")
            if iprp is not None:
                for child in _boxes(meta.data, iprp.payload, iprp.end):
                    if child.type == b"ipco":
                        digest.update(meta.data[child.start : child.end])
            for item in sorted(meta.items, key=lambda i: i.item_id):
                if item.item_type in (b"mime", b"Exif", b"uri "):
                    continue
                digest.update(struct.pack(">Q4s", item.item_id, item.item_type))
                location = next((loc for loc in meta.iloc.items if loc.item_id == item.item_id), None)
                if location is None:
                    continue  # derived items (grid, iovl) without data of their own
                if location.method == 2:  # data made of other items' data: the references are the content
                    digest.update(repr([(e.index, e.offset, e.length) for e in location.extents]).encode())
                    continue
                method, ranges = _item_ranges(handle, meta, item.item_id)
                for start, length in ranges:
                    if method == 1:
                        digest.update(meta.data[start : start + length])
                        continue
                    hash_range(handle, start, length, digest.update, "HEIF item data")
        return digest.digest()
