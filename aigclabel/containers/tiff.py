"""TIFF (classic, both byte orders, and BigTIFF): the label as XMP ``TC260:AIGC`` in IFD0 tag 700.

TC260-PG-20259A puts the XMP packet in IFD0 tag 0x02BC with field type 7 (UNDEFINED); type 1
(BYTE, what Pillow and several libraries write) and type 2 (ASCII, seen in the wild) are read
too. A type-1 entry keeps its type; anything else is written as 7, which the XMP specification
(part 3) allows beside BYTE, although ``exiftool -validate`` calls it "non-standard".

Lossless by construction: nothing already in the file moves. The file is copied as it is, the new
XMP value is appended at its end, and then either

* the existing IFD0 tag-700 entry is patched in place to point at the new value, or
* (no tag 700 yet, or the entry has to go on strip) a new copy of IFD0 with the entry inserted in
  tag order, or removed, is appended and the header's IFD0 offset repointed.

All strip, tile, EXIF-IFD and other offsets therefore stay valid, and other pages (IFD1...) are
untouched because the new IFD0 keeps the same next-IFD pointer. The superseded packet and the old
IFD0 table stay behind as unreferenced bytes (so a file grows a little with each relabel); the old
packet's bytes are zeroed when they overlap nothing else that the file references, so a stale label
does not survive as text in the file.

Files whose tag values or strips point past their end are refused: appending would give such a
dangling reference a new, wrong meaning.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

from .._io import MAX_METADATA_BYTES, copy_rest, file_size, read_exact
from .._journal import EditPlan
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError
from ..label import AIGCLabel
from ..xmp import find_aigc, remove_aigc, set_aigc
from . import Container, FoundLabel, MediaKind, register
from ._stream import open_output

XMP_TAG = 700


class _Edits:
    """Records the writes of an edit as ``(offset, bytes)``, through the seek/write calls of a file."""

    def __init__(self, position: int) -> None:
        self.position = position
        self.edits: list[tuple[int, bytes]] = []

    def seek(self, position: int) -> None:
        self.position = position

    def write(self, data: bytes) -> None:
        self.edits.append((self.position, bytes(data)))
        self.position += len(data)


#: Byte size of one value of each TIFF 6.0 / BigTIFF field type.
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_INT_FORMATS = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}
#: Tags that decide how strip/tile bytes become pixels (TIFF 6.0 baseline and extensions).
STRUCTURE_TAGS = frozenset(
    {
        254,  # NewSubfileType
        256,  # ImageWidth
        257,  # ImageLength
        258,  # BitsPerSample
        259,  # Compression
        262,  # PhotometricInterpretation
        266,  # FillOrder
        274,  # Orientation
        277,  # SamplesPerPixel
        278,  # RowsPerStrip
        284,  # PlanarConfiguration
        317,  # Predictor
        320,  # ColorMap
        322,  # TileWidth
        323,  # TileLength
        338,  # ExtraSamples
        339,  # SampleFormat
        347,  # JPEGTables
        529,  # YCbCrCoefficients
        530,  # YCbCrSubSampling
        531,  # YCbCrPositioning
        532,  # ReferenceBlackWhite
    }
)
_DATA_TAGS = ((273, 279), (324, 325))  # (offsets, byte counts): strips, tiles
_MAX_PAGES = 65536
#: Tags whose value is the offset of another IFD (SubIFDs, Exif, GPS, Interoperability).
_IFD_POINTERS = frozenset({330, 34665, 34853, 40965})
_MAX_ENTRIES = 65535


@dataclass(frozen=True)
class _Layout:
    order: str  # "<" or ">"
    big: bool

    @property
    def head_size(self) -> int:
        return 16 if self.big else 8

    @property
    def count_size(self) -> int:
        return 8 if self.big else 2

    @property
    def entry_size(self) -> int:
        return 20 if self.big else 12

    @property
    def value_size(self) -> int:
        return 8 if self.big else 4

    @property
    def max_offset(self) -> int:
        return (1 << 64) - 1 if self.big else 0xFFFFFFFF

    def offset(self, raw: bytes) -> int:
        return int(struct.unpack(self.order + ("Q" if self.big else "I"), raw)[0])

    def pack_offset(self, value: int) -> bytes:
        if value > self.max_offset:
            raise LimitExceededError("TIFF would grow past the 4 GiB offset limit of classic TIFF")
        return struct.pack(self.order + ("Q" if self.big else "I"), value)

    def pack_count(self, value: int) -> bytes:
        return struct.pack(self.order + ("Q" if self.big else "H"), value)


@dataclass(frozen=True)
class _Entry:
    tag: int
    type: int
    count: int
    value: bytes  # the raw value/offset field
    raw: bytes  # the whole entry as stored

    def nbytes(self) -> int | None:
        size = TYPE_SIZES.get(self.type)
        return None if size is None else size * self.count


@dataclass(frozen=True)
class _Ifd:
    offset: int
    entries: tuple[_Entry, ...]
    next_offset: int

    def find(self, tag: int) -> _Entry | None:
        return next((e for e in self.entries if e.tag == tag), None)


def _header(handle: BinaryIO) -> tuple[_Layout, int]:
    handle.seek(0)
    head = handle.read(16)
    if head[:2] == b"II":
        order = "<"
    elif head[:2] == b"MM":
        order = ">"
    else:
        raise MalformedFileError("not a TIFF file (bad byte-order mark)")
    if len(head) < 8:
        raise TruncatedFileError("TIFF header is truncated")
    (magic,) = struct.unpack(order + "H", head[2:4])
    if magic == 42:
        layout = _Layout(order, big=False)
        return layout, layout.offset(head[4:8])
    if magic == 43:
        if len(head) < 16:
            raise TruncatedFileError("BigTIFF header is truncated")
        bytesize, zero = struct.unpack(order + "HH", head[4:8])
        if bytesize != 8 or zero != 0:
            raise MalformedFileError("BigTIFF header has an unsupported offset size")
        layout = _Layout(order, big=True)
        return layout, layout.offset(head[8:16])
    raise MalformedFileError(f"not a TIFF file (magic number {magic})")


def _read_ifd(handle: BinaryIO, layout: _Layout, offset: int, size: int) -> _Ifd:
    if offset < layout.head_size or offset + layout.count_size > size:
        raise MalformedFileError(f"TIFF IFD offset {offset} is outside the file")
    handle.seek(offset)
    (count,) = struct.unpack(layout.order + ("Q" if layout.big else "H"), handle.read(layout.count_size))
    if count == 0 or count > _MAX_ENTRIES:
        raise MalformedFileError(f"TIFF IFD at byte {offset} declares {count} entries")
    table = read_exact(handle, count * layout.entry_size + layout.value_size, f"TIFF IFD at byte {offset}")
    entries = []
    head_fmt = layout.order + ("HHQ" if layout.big else "HHI")
    for index in range(count):
        raw = table[index * layout.entry_size : (index + 1) * layout.entry_size]
        tag, ftype, fcount = struct.unpack(head_fmt, raw[: layout.entry_size - layout.value_size])
        entries.append(_Entry(tag, ftype, fcount, raw[-layout.value_size :], raw))
    return _Ifd(offset, tuple(entries), layout.offset(table[-layout.value_size :]))


def _value(handle: BinaryIO, layout: _Layout, entry: _Entry, size: int) -> bytes:
    nbytes = entry.nbytes()
    if nbytes is None:
        raise MalformedFileError(f"TIFF tag {entry.tag} has unknown field type {entry.type}")
    if nbytes <= layout.value_size:
        return entry.value[:nbytes]
    if nbytes > MAX_METADATA_BYTES:
        raise LimitExceededError(f"TIFF tag {entry.tag} declares {nbytes} bytes")
    offset = layout.offset(entry.value)
    if offset + nbytes > size:
        raise TruncatedFileError(f"TIFF tag {entry.tag} value runs past the end of the file")
    handle.seek(offset)
    return read_exact(handle, nbytes, f"TIFF tag {entry.tag}")


def _ints(handle: BinaryIO, layout: _Layout, entry: _Entry, size: int) -> list[int]:
    fmt = _INT_FORMATS.get(entry.type)
    if fmt is None:
        raise MalformedFileError(f"TIFF tag {entry.tag} has non-integer type {entry.type}")
    return list(struct.unpack(f"{layout.order}{entry.count}{fmt}", _value(handle, layout, entry, size)))


def _pages(handle: BinaryIO, layout: _Layout, first: int, size: int) -> Iterator[_Ifd]:
    """IFD0, IFD1... following next-IFD pointers, stopping where the chain loops back (as libtiff
    and Pillow do); the last page's ``next_offset`` is then not 0."""
    seen: set[int] = set()
    offset = first
    while offset:
        if offset in seen:
            return
        if len(seen) >= _MAX_PAGES:
            raise LimitExceededError(f"TIFF has more than {_MAX_PAGES} pages")
        seen.add(offset)
        ifd = _read_ifd(handle, layout, offset, size)
        yield ifd
        offset = ifd.next_offset


def _data_extents(handle: BinaryIO, layout: _Layout, ifd: _Ifd, size: int) -> list[tuple[int, int]]:
    """(offset, length) of every strip or tile of one page."""
    for offsets_tag, counts_tag in _DATA_TAGS:
        offsets_entry, counts_entry = ifd.find(offsets_tag), ifd.find(counts_tag)
        if offsets_entry is None:
            continue
        if counts_entry is None:
            raise MalformedFileError(f"TIFF has tag {offsets_tag} without byte counts")
        offsets = _ints(handle, layout, offsets_entry, size)
        counts = _ints(handle, layout, counts_entry, size)
        if len(offsets) != len(counts):
            raise MalformedFileError("TIFF strip/tile offsets and byte counts differ in number")
        return list(zip(offsets, counts, strict=True))
    return []


def _referenced(
    handle: BinaryIO, layout: _Layout, ifd: _Ifd, size: int, skip: _Entry, depth: int
) -> list[tuple[int, int]]:
    """Byte ranges one IFD references: its table, out-of-line values, image data and sub-IFDs."""
    ranges = [(ifd.offset, layout.count_size + len(ifd.entries) * layout.entry_size + layout.value_size)]
    for other in ifd.entries:
        other_size = other.nbytes()
        if other is skip or other_size is None:
            continue
        if other_size > layout.value_size:
            ranges.append((layout.offset(other.value), other_size))
        if other.tag in _IFD_POINTERS and depth < 3:
            for offset in _ints(handle, layout, other, size):
                sub = _read_ifd(handle, layout, offset, size)
                ranges.extend(_referenced(handle, layout, sub, size, skip, depth + 1))
    ranges.extend(_data_extents(handle, layout, ifd, size))
    return ranges


def _check_bounds(handle: BinaryIO, layout: _Layout, pages: list[_Ifd], size: int) -> None:
    """Refuse values and image data that lie past the end of the file.

    Appending makes the file longer, so such a dangling reference would start to point at the
    appended bytes and change meaning; readers that skip it today would misread it afterwards.
    """
    for page in pages:
        for entry in page.entries:
            nbytes = entry.nbytes()
            if nbytes is not None and nbytes > layout.value_size and layout.offset(entry.value) + nbytes > size:
                raise TruncatedFileError(f"TIFF tag {entry.tag} points past the end of the file")
        for offset, count in _data_extents(handle, layout, page, size):
            if offset + count > size:
                raise TruncatedFileError(
                    "TIFF strip or tile runs past the end of the file (truncated, or wrong StripByteCounts): "
                    "appending the label would make it read the appended bytes. Re-save the image (e.g. "
                    "`tiffcp in.tif out.tif`, or Pillow) and label the copy"
                )


def _ifd_bytes(layout: _Layout, entries: list[bytes], next_offset: int) -> bytes:
    return layout.pack_count(len(entries)) + b"".join(entries) + layout.pack_offset(next_offset)


def _entry_bytes(layout: _Layout, ftype: int, count: int, offset: int) -> bytes:
    head = struct.pack(layout.order + ("HHQ" if layout.big else "HHI"), XMP_TAG, ftype, count)
    return head + layout.pack_offset(offset)


@register
class TiffContainer(Container):
    """TIFF images: classic little- and big-endian, BigTIFF, single and multi-page."""

    name: ClassVar[str] = "tiff"
    description: ClassVar[str] = "TIFF image"
    extensions: ClassVar[tuple[str, ...]] = (".tif", ".tiff")
    mime_type: ClassVar[str] = "image/tiff"
    media: ClassVar[MediaKind] = MediaKind.IMAGE
    primary_location: ClassVar[str] = "XMP TC260:AIGC in IFD0 tag 700"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        return head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")

    def read(self, path: Path) -> list[FoundLabel]:
        with open(path, "rb") as handle:
            size = file_size(handle)
            layout, first = _header(handle)
            ifd0 = _read_ifd(handle, layout, first, size)
            entry = ifd0.find(XMP_TAG)
            if entry is None:
                return []
            packet = _value(handle, layout, entry, size)
        return [FoundLabel.from_text(self.primary_location, value) for value in find_aigc(packet)]

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """The file copied as it is, then :meth:`_edits` applied to the copy."""
        edits = self._edits(src, label)
        with open(src, "rb") as handle, open_output(dst) as out:
            copy_rest(handle, out)
            for offset, data in edits:
                out.seek(offset)
                out.write(data)

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """:meth:`_edits` applied to the file itself: nothing in it moves, so every edit is in place."""
        edits = self._edits(path, label)
        size = os.stat(path).st_size
        return EditPlan(tuple(edits), max([size, *(offset + len(data) for offset, data in edits)]))

    def _edits(self, src: Path, label: AIGCLabel | None) -> list[tuple[int, bytes]]:
        """``(offset, bytes)`` writes that give ``src`` ``label``: the new packet (and IFD0) appended
        past its end, the entry or header offset repointed, the old packet blanked; ``[]`` when
        there is nothing to strip."""
        with open(src, "rb") as handle:
            size = file_size(handle)
            layout, first = _header(handle)
            pages = list(_pages(handle, layout, first, size))
            _check_bounds(handle, layout, pages, size)
            ifd0 = pages[0]
            entry = ifd0.find(XMP_TAG)
            old = _value(handle, layout, entry, size) if entry is not None else None
            if label is not None:
                new: bytes | None = set_aigc(old, label.to_json())
            elif old is not None and find_aigc(old):
                new = remove_aigc(old)
            else:
                return []  # nothing to strip: byte-identical
            blank = self._blank_range(handle, layout, pages, entry, size)

            out = _Edits(size)
            end = size
            if end & 1:  # TIFF 6.0: values and IFDs start on word boundaries
                out.write(b"\0")
                end += 1
            new_entry: bytes | None = None
            if new is not None:
                ftype = entry.type if entry is not None and entry.type in (1, 7) else 7
                new_entry = _entry_bytes(layout, ftype, len(new), end)
                out.write(new + (b"\0" if len(new) & 1 else b""))
                end += len(new) + (len(new) & 1)
            # A chain that loops back is cut where it loops (readers stop there anyway), so the
            # output is a valid TIFF and a superseded IFD0 can never come back into the chain.
            last = pages[-1]
            if last.next_offset:
                out.seek(last.offset + layout.count_size + len(last.entries) * layout.entry_size)
                out.write(layout.pack_offset(0))
                out.seek(end)
            next_of_ifd0 = 0 if ifd0 is last else ifd0.next_offset
            if entry is not None and new_entry is not None:
                index = ifd0.entries.index(entry)
                out.seek(ifd0.offset + layout.count_size + index * layout.entry_size)
                out.write(new_entry)
            else:
                raws = [e.raw for e in ifd0.entries if e.tag != XMP_TAG]
                if new_entry is not None:
                    at = sum(1 for e in ifd0.entries if e.tag < XMP_TAG)
                    raws.insert(at, new_entry)
                if not raws:
                    raise MalformedFileError("TIFF IFD0 holds nothing but XMP")
                out.write(_ifd_bytes(layout, raws, next_of_ifd0))
                out.seek(layout.head_size - layout.value_size)
                out.write(layout.pack_offset(end))
            if blank is not None:
                out.seek(blank[0])
                out.write(b"\0" * blank[1])
            return out.edits

    def _blank_range(
        self, handle: BinaryIO, layout: _Layout, pages: list[_Ifd], entry: _Entry | None, size: int
    ) -> tuple[int, int] | None:
        """Where the superseded packet lies, if it shares no byte with anything else referenced."""
        if entry is None:
            return None
        nbytes = entry.nbytes() or 0
        if nbytes <= layout.value_size:
            return None
        start = layout.offset(entry.value)
        used: list[tuple[int, int]] = [(0, layout.head_size)]
        try:
            for page in pages:
                used.extend(_referenced(handle, layout, page, size, entry, depth=0))
        except MalformedFileError:
            return None  # a sub-IFD we cannot follow might share the bytes: leave them alone
        if any(start < o + n and o < start + nbytes for o, n in used):
            return None
        return start, nbytes

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over every page's image-structure tag values (size, bit depth, compression,
        photometric, colour map, tiling, JPEG tables...) and its strip or tile bytes.

        XMP, EXIF, ICC and descriptive tags are left out, and so are offsets: where the data lies
        is layout, not content.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            size = file_size(handle)
            layout, first = _header(handle)
            for page in _pages(handle, layout, first, size):
                digest.update(b"IFD")
                for entry in page.entries:
                    if entry.tag in STRUCTURE_TAGS:
                        digest.update(struct.pack(">HHQ", entry.tag, entry.type, entry.count))
                        digest.update(_value(handle, layout, entry, size))
                for offset, declared in _data_extents(handle, layout, page, size):
                    if offset > size:
                        raise TruncatedFileError("TIFF strip or tile starts past the end of the file")
                    # A strip running past the end (Pillow reads those) counts as what a decoder gets:
                    # its bytes up to the end of the file.
                    count = min(declared, size - offset)
                    handle.seek(offset)
                    remaining = count
                    while remaining:
                        block = handle.read(min(remaining, 1 << 20))
                        digest.update(block)
                        remaining -= len(block)
        return digest.digest()
