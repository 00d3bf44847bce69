"""JPEG (JFIF/EXIF): the label as XMP ``TC260:AIGC`` in an APP1 segment, read from every placement.

Placements read, in file order (TC260-PG-20259A and XMP Specification Part 3 §1.1.3):

* the standard XMP packet, APP1 ``http://ns.adobe.com/xap/1.0/\\0`` — the primary slot;
* Extended XMP, APP1 ``http://ns.adobe.com/xmp/extension/\\0`` + 32-byte GUID + 4-byte full length
  + 4-byte offset. Chunks are reassembled per GUID and checked (same full length, no gaps or
  overlaps, bounded size). The set named by ``xmpNote:HasExtendedXMP`` in the main packet is the
  real one; a complete set under another GUID is still searched and reported as *unreferenced*,
  because a hidden second label is exactly what an auditor must see. An incomplete set that
  mentions the TC260 namespace is reported as an unreadable placement;
* EXIF ``UserComment`` (tag 0x9286) holding the wrapped ``{"AIGC":{...}}`` JSON after its 8-byte
  character-code prefix (the guide's Annex B alternative). The guide says IFD0; EXIF puts the tag
  in the Exif SubIFD. Both are read.

:meth:`JpegContainer.rewrite` walks marker segments up to SOS and streams everything after it
(entropy-coded data, later scans, EOI and any trailer) untouched, with kernel-side copies. Only the
segments that carry a label change: the standard XMP packet is edited with :mod:`aigclabel.xmp`
(other properties stay), a new APP1 XMP segment is inserted after the leading APP0/EXIF segments
when there is none, the label is removed from Extended XMP (re-chunked, GUID recomputed as the
uppercase hex MD5 of the new extended packet and updated in ``xmpNote:HasExtendedXMP``), and an
EXIF UserComment label is blanked in place with a value of the same length so no EXIF offset
moves. EXIF, ICC (APP2), Adobe APP14, COM and every other segment are copied byte for byte.

The standard packet must fit one APP1 segment (65,502 bytes, XMP Part 3). If the edited packet
does not, its trailing ``xpacket`` padding is dropped; if it still does not fit, its largest
properties move to a new Extended XMP (``TC260:AIGC`` always stays in the standard packet, the one
every reader sees). A packet that already has Extended XMP and still does not fit is refused with
:class:`~aigclabel.errors.LimitExceededError`.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .._io import COPY_CHUNK, MAX_METADATA_BYTES, file_size, read_at
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError
from ..label import AIGCLabel, looks_like_label_json
from ..xmp import TC260_NS, XMP_NOTE_NS, etree, find_aigc, has_properties, remove_aigc, set_aigc
from . import SIGNATURE_PRIORITY, Container, FoundLabel, MediaKind, register
from ._stream import copy_range, open_output

# ElementTree (xmp.etree) and hashlib load where a packet is split or a digest taken: reading or writing a
# label needs neither.
if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\x00"
EXT_SIG = b"http://ns.adobe.com/xmp/extension/\x00"
EXIF_SIG = b"Exif\x00\x00"
#: Largest standard XMP packet in one APP1 segment (XMP Specification Part 3 §1.1.3.1).
MAX_STD_PACKET = 65502
#: Largest Extended XMP portion per APP1 segment (XMP Specification Part 3 §1.1.3.1).
MAX_EXT_PORTION = 65458

_SOI, _EOI, _SOS, _APP0, _APP1, _COM = 0xD8, 0xD9, 0xDA, 0xE0, 0xE1, 0xFE
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0-7 carry no length
#: In entropy-coded data: an FF that is neither byte stuffing (FF 00) nor a restart marker (FF D0-D7).
_SCAN_MARKER = re.compile(rb"\xff(?![\x00\xd0-\xd7])")
_EXT_HEADER = len(EXT_SIG) + 32 + 8
_MAX_SEGMENTS = 1 << 16
_APP11_MARKER = b"\xff\xeb"
_WINDOW = 1 << 13  # covers a typical header (JFIF, XMP, tables); bigger segments are read on their own
_MAX_FILL = 1 << 16  # 0xFF fill bytes allowed before one marker (B.1.1.2); more is hostile
#: Stray bytes skipped before a header marker. libjpeg (and so Pillow) skips them with a "Corrupt JPEG
#: data: extraneous bytes before marker" warning and decodes the image; we do the same, within bounds.
_MAX_JUNK = 1 << 16
_RESYNC = re.compile(rb"\xff[^\x00\xff]")
_TC260 = TC260_NS.encode()
_GUID_VALUE = r"[0-9A-Fa-f]{32}"
# Neither pattern starts with a whitespace run: ``\s+`` there retries the whole run from each of its
# characters, so a packet padded with 64 K spaces took minutes (quadratic); one ``\s`` is linear.
_HAS_EXT_ATTR = re.compile(r"""(\s[\w.-]+:HasExtendedXMP\s*=\s*)(["'])(""" + _GUID_VALUE + r""")\2""")
_HAS_EXT_ELEM = re.compile(
    r"""(<([\w.-]+):HasExtendedXMP\s*>\s*)(""" + _GUID_VALUE + r""")(\s*</\2:HasExtendedXMP\s*>)"""
)
_USERCOMMENT, _EXIF_IFD = 0x9286, 0x8769
_ASCII_PREFIX = b"ASCII\x00\x00\x00"


def _is_app(marker: int) -> bool:
    return 0xE0 <= marker <= 0xEF


@dataclass(slots=True)
class _Segment:
    marker: int
    start: int  # first byte, fill bytes included
    at: int  # the 0xFF of the marker itself
    end: int
    payload: bytes | None = None  # loaded for APP1 segments we interpret only
    kind: str = ""  # "xmp", "ext" or "exif" for those APP1 segments


def _kind(payload: bytes) -> str:
    if payload.startswith(XMP_SIG):
        return "xmp"
    if payload.startswith(EXT_SIG):
        return "ext"
    return "exif" if payload.startswith(EXIF_SIG) else ""


@dataclass
class _Header:
    segments: list[_Segment]
    sos: int  # offset of the SOS segment (fill bytes included)
    size: int  # of the file
    head: bytes = b""  # the file's first bytes as the walk read them (the whole header, usually)


class _Window:
    """The part of the file being walked, held in memory and refilled on demand: walking a header of
    a dozen segments costs one read instead of several per segment."""

    def __init__(self, handle: BinaryIO, head: bytes = b"") -> None:
        self.handle = handle
        self.fd = handle.fileno() if hasattr(os, "pread") else -1
        self.base = 0
        self.data = head  # the file's first bytes, when the caller has them already

    def take(self, pos: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``pos`` (fewer only at the end of the file)."""
        offset = pos - self.base
        if offset < 0 or offset + size > len(self.data):
            self.data = self._read(pos, max(size, _WINDOW))
            self.base, offset = pos, 0
        return self.data[offset : offset + size]

    def _read(self, pos: int, size: int) -> bytes:
        if self.fd < 0:
            self.handle.seek(pos)
            return self.handle.read(size)
        return read_at(self.fd, pos, size)  # one syscall, the handle's position untouched


def _read_header(handle: BinaryIO, head: bytes = b"", size: int | None = None) -> _Header:
    """Walk the marker segments from SOI to the first SOS; load only the APP1 payloads we read.
    ``head`` (the file's first bytes) and ``size``, when given, are not read again."""
    size = file_size(handle) if size is None else size
    window = _Window(handle, head)
    if window.take(0, 2) != b"\xff\xd8":
        raise MalformedFileError("not a JPEG file: it does not start with the SOI marker (FF D8)")
    segments: list[_Segment] = [_Segment(_SOI, 0, 0, 2)]
    loaded = 0
    pos = 2
    take = window.take
    while True:
        start = at = pos
        quad = take(at, 4)  # marker and, for all but standalone markers, the segment length
        if len(quad) < 2:
            raise TruncatedFileError(f"JPEG ends at offset {pos} before any scan (no SOS marker)")
        if quad[0] != 0xFF or quad[1] == 0x00:
            # Stray bytes (or a stuffed FF 00) where a marker belongs: skip to the next marker as
            # decoders do. They stay in the file, copied with the segment that follows them.
            found = _RESYNC.search(take(pos + 1, _MAX_JUNK))
            if found is None:
                raise MalformedFileError(f"JPEG: expected a marker at offset {pos}, found byte 0x{quad[0]:02X}")
            at = pos + 1 + found.start()
            quad = take(at, 4)
        while quad[1] == 0xFF:  # fill bytes before the marker
            at += 1
            if at - start > _MAX_FILL:
                raise LimitExceededError(f"JPEG: more than {_MAX_FILL} fill bytes before a marker at {start}")
            quad = take(at, 4)
            if len(quad) < 2:
                raise TruncatedFileError("JPEG ends inside marker fill bytes (no SOS marker)")
        marker = quad[1]
        pos = at + 2
        if marker == 0x00 or marker == _SOI:
            raise MalformedFileError(f"JPEG: invalid marker FF {marker:02X} at offset {at}")
        if marker == _EOI:
            raise MalformedFileError("JPEG has no image data: EOI comes before any SOS marker")
        if len(segments) >= _MAX_SEGMENTS:
            raise LimitExceededError(f"JPEG has more than {_MAX_SEGMENTS} marker segments before its first scan")
        if marker in _STANDALONE:
            segments.append(_Segment(marker, start, at, pos))
            continue
        if len(quad) < 4:
            raise TruncatedFileError(f"JPEG ends inside the length of marker FF {marker:02X} at offset {at}")
        length = quad[2] << 8 | quad[3]
        if length < 2:
            raise MalformedFileError(f"JPEG: marker FF {marker:02X} at offset {at} has invalid length {length}")
        end = at + 2 + length
        if end > size:
            raise TruncatedFileError(
                f"JPEG ends inside segment FF {marker:02X} at offset {at} ({end - size} bytes missing)"
            )
        segment = _Segment(marker, start, at, end)
        if marker == _SOS:
            return _Header(segments, start, size, window.data if window.base == 0 else b"")
        body = length - 2
        if marker == _APP1:
            peek = take(at + 4, min(body, len(EXT_SIG)))
            if peek.startswith((XMP_SIG, EXIF_SIG)) or peek == EXT_SIG:
                loaded += body
                if loaded > MAX_METADATA_BYTES:
                    raise LimitExceededError(f"JPEG metadata segments exceed {MAX_METADATA_BYTES} bytes")
                segment.payload = take(at + 4, body)
                if len(segment.payload) != body:
                    raise TruncatedFileError(f"JPEG ends inside APP1 at offset {at}")
                segment.kind = _kind(segment.payload)
        pos = end
        segments.append(segment)


def _segment_bytes(marker: int, payload: bytes) -> bytes:
    if len(payload) > 0xFFFF - 2:
        raise LimitExceededError(f"JPEG segment payload of {len(payload)} bytes does not fit in one segment")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _xmp_findings(packet: bytes, location: str) -> list[FoundLabel]:
    try:
        values = find_aigc(packet)
    except MalformedFileError as exc:
        if _TC260 in packet:
            return [FoundLabel(location, packet.decode("utf-8", "replace")[:2000], error=str(exc))]
        return []
    return [FoundLabel.from_text(location, value) for value in values]


# ---------------------------------------------------------------------------- Extended XMP


@dataclass
class _ExtGroup:
    """The Extended XMP chunks sharing one GUID, in file order."""

    guid: bytes
    indexes: list[int] = field(default_factory=list)
    chunks: list[tuple[int, int, bytes]] = field(default_factory=list)  # full length, offset, data

    def assemble(self) -> bytes | None:
        """The full extended packet, or ``None`` when the chunks do not tile it exactly."""
        lengths = {full for full, _, _ in self.chunks}
        if len(lengths) != 1:
            return None
        full = lengths.pop()  # never allocated from: only compared with what was actually loaded
        expected = 0
        parts: list[bytes] = []
        for _, offset, data in sorted(self.chunks, key=lambda c: c[1]):
            if offset != expected:
                return None
            parts.append(data)
            expected += len(data)
        return b"".join(parts) if expected == full else None


def _ext_groups(segments: list[_Segment]) -> dict[bytes, _ExtGroup]:
    groups: dict[bytes, _ExtGroup] = {}
    for index, segment in enumerate(segments):
        if segment.kind != "ext":
            continue
        assert segment.payload is not None
        payload = segment.payload
        if len(payload) < _EXT_HEADER:
            guid = b"?" * 32  # too short to carry a GUID: an incomplete set of its own
            group = groups.setdefault(guid, _ExtGroup(guid))
            group.indexes.append(index)
            group.chunks.append((-1, -1, payload[len(EXT_SIG) :]))
            continue
        guid = payload[len(EXT_SIG) : len(EXT_SIG) + 32]
        full, offset = struct.unpack(">II", payload[len(EXT_SIG) + 32 : _EXT_HEADER])
        group = groups.setdefault(guid, _ExtGroup(guid))
        group.indexes.append(index)
        group.chunks.append((full, offset, payload[_EXT_HEADER:]))
    return groups


def _referenced_guid(packet: bytes | None) -> bytes | None:
    if not packet or b"HasExtendedXMP" not in packet:
        return None
    text = packet.decode("utf-8", "replace")
    match = _HAS_EXT_ATTR.search(text) or _HAS_EXT_ELEM.search(text)
    return match.group(3).encode() if match else None


def _ext_segments(packet: bytes) -> tuple[bytes, list[bytes]]:
    """GUID and APP1 segments carrying ``packet`` as Extended XMP."""
    import hashlib

    guid = hashlib.md5(packet).hexdigest().upper().encode()  # XMP Part 3 mandates MD5
    out = []
    for offset in range(0, len(packet), MAX_EXT_PORTION):
        head = EXT_SIG + guid + struct.pack(">II", len(packet), offset)
        out.append(_segment_bytes(_APP1, head + packet[offset : offset + MAX_EXT_PORTION]))
    return guid, out


def _retarget_extension(packet: bytes, old: bytes, new: bytes | None) -> bytes:
    """Point ``xmpNote:HasExtendedXMP`` at GUID ``new`` (``None``: remove the property)."""
    text = packet.decode("utf-8")
    old_text = old.decode("ascii", "replace")

    def attr(match: re.Match[str]) -> str:
        if match.group(3) != old_text:
            return match.group(0)
        return "" if new is None else f"{match.group(1)}{match.group(2)}{new.decode()}{match.group(2)}"

    def elem(match: re.Match[str]) -> str:
        if match.group(3) != old_text:
            return match.group(0)
        return "" if new is None else f"{match.group(1)}{new.decode()}{match.group(4)}"

    return _HAS_EXT_ELEM.sub(elem, _HAS_EXT_ATTR.sub(attr, text)).encode()


# ---------------------------------------------------------------------------- EXIF UserComment


@dataclass(frozen=True)
class _Comment:
    ifd: str
    offset: int  # of the value inside the APP1 payload
    size: int
    text: str


def _user_comments(payload: bytes) -> list[_Comment]:
    """Every UserComment in IFD0 and the Exif SubIFD. Corrupt EXIF is not ours to judge: skipped."""
    base = len(EXIF_SIG)
    tiff = payload[base:]
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        return []
    order = "<" if tiff[:2] == b"II" else ">"
    found: list[_Comment] = []
    visited: set[int] = set()

    def walk(ifd_offset: int, name: str, follow_exif: bool) -> None:
        if ifd_offset in visited or ifd_offset + 2 > len(tiff):
            return
        visited.add(ifd_offset)
        (count,) = struct.unpack_from(order + "H", tiff, ifd_offset)
        for index in range(min(count, (len(tiff) - ifd_offset - 2) // 12)):
            entry = ifd_offset + 2 + 12 * index
            tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
            if tag == _EXIF_IFD and follow_exif:
                (sub,) = struct.unpack_from(order + "I", tiff, entry + 8)
                walk(sub, "Exif SubIFD", False)
            elif tag == _USERCOMMENT and kind in (1, 2, 7):  # UNDEFINED per EXIF; BYTE/ASCII seen too
                size = n  # BYTE, ASCII and UNDEFINED values are one byte per count
                at = entry + 8 if size <= 4 else struct.unpack_from(order + "I", tiff, entry + 8)[0]
                if at + size <= len(tiff):
                    text = _decode_comment(tiff[at : at + size], order)
                    if text is not None and looks_like_label_json(text):
                        found.append(_Comment(name, base + at, size, text))

    (first,) = struct.unpack_from(order + "I", tiff, 4)
    walk(first, "IFD0", True)
    return found


def _decode_comment(value: bytes, order: str) -> str | None:
    prefix, body = value[:8], value[8:]
    if prefix == b"UNICODE\x00":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return body.decode("utf-16", "replace")
        # EXIF says the TIFF byte order; writers that ignore it are common, so try both.
        first, second = ("utf-16-le", "utf-16-be") if order == "<" else ("utf-16-be", "utf-16-le")
        text = body.decode(first, "replace")
        return text if looks_like_label_json(text) else body.decode(second, "replace")
    if prefix in (_ASCII_PREFIX, b"\x00" * 8):
        return body.decode("utf-8", "replace")
    if value.lstrip()[:1] == b"{":  # no character-code prefix at all: seen from careless writers
        return value.decode("utf-8", "replace")
    return None


def _blank_comments(payload: bytes, comments: list[_Comment]) -> bytes:
    out = bytearray(payload)
    for comment in comments:
        blank = (_ASCII_PREFIX + b"\x00" * comment.size)[: comment.size]
        out[comment.offset : comment.offset + comment.size] = blank
    return bytes(out)


# ---------------------------------------------------------------------------- scan data


def _hash_from_sos(handle: BinaryIO, update: Callable[[bytes], object]) -> None:
    """Feed every scan from the first SOS to EOI to ``update``, leaving out APPn/COM and fill bytes."""
    buf = b""
    i = 0

    def fill(need: int) -> None:
        nonlocal buf, i
        while len(buf) - i < need:
            chunk = handle.read(COPY_CHUNK)
            if not chunk:
                raise TruncatedFileError("JPEG ends before its EOI marker")
            buf = buf[i:] + chunk
            i = 0

    in_scan = False
    while True:
        if in_scan:
            # Jump straight to the first FF that is not stuffing (FF 00) or a restart marker: the
            # entropy-coded bytes before it are hashed in one call instead of pair by pair.
            found = _SCAN_MARKER.search(buf, i)
            end = len(buf) if found is None else found.start()
            update(buf[i:end])
            i = end
            if found is None:
                fill(1)
                continue
            if end == len(buf) - 1:  # an FF at the end of the buffer: its next byte decides
                fill(2)
                continue
            in_scan = False
        fill(2)
        if buf[i] != 0xFF:
            raise MalformedFileError(f"JPEG: expected a marker between scans, found byte 0x{buf[i]:02X}")
        if buf[i + 1] == 0xFF:  # fill byte
            i += 1
            continue
        marker = buf[i + 1]
        if marker == _EOI:
            update(b"\xff\xd9")
            return
        if marker in _STANDALONE:
            update(buf[i : i + 2])
            i += 2
            in_scan = True
            continue
        if marker in (0x00, _SOI):
            raise MalformedFileError(f"JPEG: invalid marker FF {marker:02X} after the first scan")
        fill(4)
        (length,) = struct.unpack_from(">H", buf, i + 2)
        if length < 2:
            raise MalformedFileError(f"JPEG: marker FF {marker:02X} has invalid length {length}")
        fill(2 + length)
        if not (_is_app(marker) or marker == _COM):
            update(buf[i : i + 2 + length])
        i += 2 + length
        in_scan = marker == _SOS


# ---------------------------------------------------------------------------- the container


def _labels(header: _Header) -> list[FoundLabel]:
    """The label placements in a walked header, in file order."""
    segments = header.segments
    found: list[tuple[int, FoundLabel]] = []
    main: bytes | None = None
    std_count = [s.kind for s in segments].count("xmp")
    std_seen = 0
    for index, segment in enumerate(segments):
        kind = segment.kind
        if kind == "xmp":
            assert segment.payload is not None
            packet = segment.payload[len(XMP_SIG) :]
            std_seen += 1
            main = packet if main is None else main
            where = "APP1 XMP TC260:AIGC" + (f" (XMP segment {std_seen} of {std_count})" if std_count > 1 else "")
            found.extend((index, f) for f in _xmp_findings(packet, where))
        elif kind == "exif":
            assert segment.payload is not None
            for comment in _user_comments(segment.payload):
                found.append((index, FoundLabel.from_text(f"APP1 EXIF {comment.ifd} UserComment", comment.text)))
    referenced = _referenced_guid(main)
    for guid, group in _ext_groups(segments).items():
        name = guid.decode("ascii", "replace")
        where = "APP1 Extended XMP TC260:AIGC" + ("" if guid == referenced else f" (unreferenced GUID {name})")
        extended = group.assemble()
        if extended is not None:
            found.extend((group.indexes[0], f) for f in _xmp_findings(extended, where))
        elif any(_TC260 in data for _, _, data in group.chunks):
            error = f"Extended XMP chunks for GUID {name} are incomplete or inconsistent; cannot read the label"
            found.append((group.indexes[0], FoundLabel(where, "", error=error)))
    found.sort(key=lambda item: item[0])
    return [f for _, f in found]


@register
class JpegContainer(Container):
    """JPEG/JFIF/EXIF images: XMP ``TC260:AIGC`` in APP1, other placements read and cleaned."""

    name = "jpeg"
    description = "JPEG image"
    extensions = (".jpg", ".jpeg", ".jpe", ".jfif")
    mime_type = "image/jpeg"
    media = MediaKind.IMAGE
    primary_location = "APP1 XMP TC260:AIGC"
    #: FF D8 FF starts no other format: checked before the costlier sniffers (a third of a JPEG open),
    #: and its module before the others are imported (a JPEG named ``.html`` is a JPEG).
    priority = SIGNATURE_PRIORITY

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """JPEG starts with SOI followed by another marker."""
        return head[:3] == b"\xff\xd8\xff"

    def read(self, path: Path) -> list[FoundLabel]:
        """Labels in standard XMP, Extended XMP and EXIF UserComment, in file order."""
        with open(path, "rb", buffering=0) as handle:  # the header is read with pread: no buffer to fill
            return _labels(_read_header(handle))

    def read_opened(self, path: Path, fd: int, head: bytes, size: int) -> list[FoundLabel]:
        with open(fd, "rb", buffering=0, closefd=False) as handle:
            return _labels(_read_header(handle, head, size))

    def may_carry_c2pa(self, path: Path) -> bool:
        """Whether an APP11 marker (FF EB: C2PA's JUMBF segments) occurs anywhere in the file. Entropy-coded data
        never holds FF EB (a coded FF is followed by 00, or by D0-D7 for a restart), so a file without those two
        bytes has no APP11 segment before, between or after its scans: ~0.3 ms for a 1 MB JPEG against ~1 ms
        for the C2PA reader to find no manifest store in it."""
        with open(path, "rb", buffering=0) as handle:
            last = 0
            while chunk := handle.read(COPY_CHUNK):
                if _APP11_MARKER in chunk or (last == 0xFF and chunk[0] == 0xEB):
                    return True
                last = chunk[-1]
        return False

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Copy ``src`` to ``dst`` with ``label`` as the only label; see the module docstring."""
        self._copy(src, dst, label, check=False)

    def _rewrite_checked(self, src: Path, tmp: Path, label: AIGCLabel | None) -> None:
        self._copy(src, tmp, label, check=True)

    def _copy(self, src: Path, dst: Path, label: AIGCLabel | None, *, check: bool) -> None:
        """:meth:`rewrite`; with ``check``, then :meth:`check_written`'s read-back of the new header
        through the descriptor that wrote it (``pread`` of the same file, no second open)."""
        with open(src, "rb", buffering=0) as fin:  # segments are read with pread, the rest is copied in the kernel
            header = _read_header(fin)
            segments = header.segments
            replaced: dict[int, list[bytes | _Segment]] = {}  # index -> what to emit instead (segment: copy)

            std = [i for i, s in enumerate(segments) if s.kind == "xmp"]
            packets = {i: (segments[i].payload or b"")[len(XMP_SIG) :] for i in std}
            main_index = std[0] if std else None
            main = packets[main_index] if main_index is not None else None
            new_main: bytes | None = main
            if label is not None:
                new_main = set_aigc(main, label.to_json())
            elif main is not None:
                new_main = remove_aigc(main)
            for i in std[1:]:  # a second standard packet is invalid; keep it, minus any label
                try:
                    cleaned = remove_aigc(packets[i])
                except MalformedFileError:
                    cleaned = None if _TC260 in packets[i] else packets[i]
                if cleaned != packets[i]:
                    replaced[i] = [] if cleaned is None else [_segment_bytes(_APP1, XMP_SIG + cleaned)]

            referenced = _referenced_guid(main)
            for guid, group in _ext_groups(segments).items():
                packet = group.assemble()
                if packet is None:
                    if any(_TC260 in data for _, _, data in group.chunks):
                        replaced.update({i: [] for i in group.indexes})  # unreadable label: dropped
                    continue
                try:
                    if not find_aigc(packet):
                        continue
                    cleaned = remove_aigc(packet)
                except MalformedFileError:
                    if _TC260 not in packet:
                        continue
                    cleaned = None  # a label we cannot parse cannot be kept
                replaced.update({i: [] for i in group.indexes})
                new_guid = None
                if cleaned is not None:
                    new_guid, chunks = _ext_segments(cleaned)
                    replaced[group.indexes[0]] = list(chunks)
                if guid == referenced and new_main is not None:
                    new_main = _retarget_extension(new_main, guid, new_guid)
                    if new_guid is None and label is None and not has_properties(new_main):
                        new_main = None

            for i, segment in enumerate(segments):
                if segment.kind == "exif":
                    assert segment.payload is not None
                    comments = _user_comments(segment.payload)
                    if comments:
                        replaced[i] = [_segment_bytes(_APP1, _blank_comments(segment.payload, comments))]

            if new_main != main:
                new_segment: list[bytes | _Segment] = []
                if new_main is not None:
                    standard, spilled = _fit_standard(new_main)
                    new_segment = [_segment_bytes(_APP1, XMP_SIG + standard), *spilled]
                if main_index is not None:
                    replaced[main_index] = list(new_segment)
                else:
                    at = 0  # after SOI and the leading APP0 (JFIF/JFXX) and EXIF segments
                    while at + 1 < len(segments) and (
                        segments[at + 1].marker == _APP0 or segments[at + 1].kind == "exif"
                    ):
                        at += 1
                    replaced[at] = [*replaced.get(at, [segments[at]]), *new_segment]

            _keep_mpf_offsets(fin, segments, replaced)

            # Untouched neighbours are merged into one source range, and the last range runs on to
            # the end of the file: a label write is a few kernel copies, whatever the segment count.
            pieces: list[bytes | list[int]] = []
            for i, segment in enumerate(segments):
                for part in replaced.get(i, [segment]):
                    if isinstance(part, bytes):
                        pieces.append(part)
                    elif pieces and isinstance(pieces[-1], list) and pieces[-1][1] == part.start:
                        pieces[-1][1] = part.end
                    else:
                        pieces.append([part.start, part.end])
            if pieces and isinstance(pieces[-1], list) and pieces[-1][1] == header.sos:
                rest_from = pieces.pop()[0]
            else:
                rest_from = header.sos
            size = header.size
            with open_output(dst, readable=check) as fout:
                # Ranges the walk already holds in memory are written from there (one write for the
                # new header's start instead of a kernel copy of a few bytes, and its seeks, per range).
                for piece in _from_memory(pieces, header.head):
                    if isinstance(piece, bytes):
                        fout.write(piece)
                    else:
                        copy_range(fin, fout, piece[0], piece[1] - piece[0], "a JPEG segment")
                shift = fout.tell() - rest_from
                copy_range(fin, fout, rest_from, size - rest_from, "the JPEG scan data")
                if shift:
                    _shift_afcp(fin, fout, header.sos, shift, size)
                if check:
                    fout.flush()
                    self._check_found(_labels(_read_header(fout)), label)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of what a decoder renders: every marker segment except APPn (FF E0-EF) and COM
        (FF FE), in file order, plus all scans (entropy-coded data, inter-scan tables, RSTn) up to
        and including EOI. Fill bytes and anything after EOI (trailers, MPF secondary images) are
        left out, so metadata edits never change it."""
        import hashlib

        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            header = _read_header(handle)
            for segment in header.segments:
                if not (_is_app(segment.marker) or segment.marker == _COM):
                    handle.seek(segment.at)
                    digest.update(handle.read(segment.end - segment.at))
            handle.seek(header.sos)
            _hash_from_sos(handle, digest.update)
        return digest.digest()


def _from_memory(pieces: list[bytes | list[int]], head: bytes) -> list[bytes | list[int]]:
    """``pieces`` with each source range that lies in ``head`` (the file's first bytes) replaced by its
    bytes, and neighbouring bytes joined into one."""
    out: list[bytes | list[int]] = []
    for piece in pieces:
        if isinstance(piece, list) and piece[1] <= len(head):
            piece = head[piece[0] : piece[1]]
        if isinstance(piece, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += piece
        else:
            out.append(piece)
    return out


_APP2 = 0xE2
_MP_ENTRY = 0xB002


def _keep_mpf_offsets(fin: BinaryIO, segments: list[_Segment], replaced: dict[int, list[bytes | _Segment]]) -> None:
    """Keep a Multi-Picture Format index (CIPA DC-007, APP2 ``MPF``: MPO, Ultra HDR) pointing at its
    images. Their offsets count from the MPF header, so only growth *after* that segment (an XMP
    packet stored behind it) moves them; the index entries are then moved by as much."""
    mpf = next((i for i, seg in enumerate(segments) if seg.marker == _APP2 and _peek(fin, seg, 4) == b"MPF\0"), None)
    if mpf is None:
        return

    def size(part: bytes | _Segment) -> int:
        return len(part) if isinstance(part, bytes) else part.end - part.start

    shift = sum(sum(map(size, parts)) - size(segments[i]) for i, parts in replaced.items() if i >= mpf)
    if not shift:
        return
    segment = segments[mpf]
    fin.seek(segment.at + 4)
    payload = bytearray(fin.read(segment.end - segment.at - 4))
    tiff = 4
    order = {b"II": "<", b"MM": ">"}.get(bytes(payload[tiff : tiff + 2]))
    if order is None or len(payload) < tiff + 8:
        return  # not an index we can read: it was unusable before the edit too
    (ifd,) = struct.unpack_from(order + "I", payload, tiff + 4)
    if tiff + ifd + 2 > len(payload):
        return
    (count,) = struct.unpack_from(order + "H", payload, tiff + ifd)
    for n in range(count):
        at = tiff + ifd + 2 + 12 * n
        if at + 12 > len(payload):
            return
        tag, _type, length, value = struct.unpack_from(order + "HHII", payload, at)
        if tag != _MP_ENTRY or length % 16 or tiff + value + length > len(payload):
            continue
        for entry in range(length // 16):
            field_at = tiff + value + 16 * entry + 8
            (offset,) = struct.unpack_from(order + "I", payload, field_at)
            if offset:  # 0 is the first image, the one this header belongs to
                struct.pack_into(order + "I", payload, field_at, offset + shift)
    new = _segment_bytes(_APP2, bytes(payload))
    replaced[mpf] = [new if part is segment else part for part in replaced.get(mpf, [segment])]


def _peek(fin: BinaryIO, segment: _Segment, size: int) -> bytes:
    fin.seek(segment.at + 4)
    return fin.read(min(size, segment.end - segment.at - 4))


def _shift_afcp(fin: BinaryIO, fout: BinaryIO, sos: int, shift: int, size: int) -> None:
    """Move the absolute offsets of an AFCP trailer (AXS File Concatenation Protocol: IPTC, text and
    previews appended after EOI) by ``shift``, the bytes the header grew or shrank, so readers do not
    have to guess them (exiftool otherwise reports "Adjusted AFCP offsets"). A trailer whose offsets
    were already wrong is left as it was: there is nothing sure to move. ``size`` is ``fin``'s."""
    if size - sos < 24:
        return
    footer = read_at(fin.fileno(), size - 12, 12)  # one pread: every label write that moves the scan asks
    if footer[:3] != b"AXS" or footer[3:4] not in (b"!", b"*"):
        return
    order = ">" if footer[3:4] == b"!" else "<"
    (start,) = struct.unpack(order + "I", footer[4:8])
    if not sos <= start <= size - 24:
        return
    fin.seek(start)
    head = fin.read(12)
    if head[:4] != footer[:4]:
        return
    (count,) = struct.unpack(order + "H", head[6:8])
    directory = fin.read(12 * count)
    if len(directory) != 12 * count:
        return
    entries = [struct.unpack(order + "4sII", directory[12 * i : 12 * i + 12]) for i in range(count)]
    if not all(start + 12 <= offset and offset + length <= size - 12 for _tag, length, offset in entries):
        return
    for index, (_tag, _length, offset) in enumerate(entries):
        fout.seek(start + shift + 12 + 12 * index + 8)
        fout.write(struct.pack(order + "I", offset + shift))
    fout.seek(size + shift - 8)
    fout.write(struct.pack(order + "I", start + shift))
    fout.seek(0, 2)


_PACKET_END = b"<?xpacket end="
_XMLNS = re.compile(r"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']([^"']+)["']""")
_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_NOTE_HAS_EXT = f"{{{XMP_NOTE_NS}}}HasExtendedXMP"
_STAY = frozenset({f"{{{TC260_NS}}}AIGC", _NOTE_HAS_EXT, f"{_RDF}about"})


def _trim_padding(packet: bytes) -> bytes:
    """``packet`` with the whitespace before each ``<?xpacket end=`` cut to one newline (linear time)."""
    parts = packet.split(_PACKET_END)
    return _PACKET_END.join([p.rstrip() + b"\n" if p[-1:].isspace() else p for p in parts[:-1]] + parts[-1:])


def _fit_standard(packet: bytes) -> tuple[bytes, list[bytes]]:
    """``packet`` as a standard packet within :data:`MAX_STD_PACKET`, plus Extended XMP segments.

    Padding goes first; then, if the packet has no Extended XMP yet, the largest properties move
    to a new one (XMP Part 3 §1.1.3.1) and ``xmpNote:HasExtendedXMP`` names it. ``TC260:AIGC``
    always stays in the standard packet, where every XMP reader finds it.
    """
    if len(packet) <= MAX_STD_PACKET:
        return packet, []
    trimmed = _trim_padding(packet)
    if len(trimmed) <= MAX_STD_PACKET:
        return trimmed, []
    if _referenced_guid(trimmed) is not None:
        raise LimitExceededError(
            f"the XMP packet would be {len(trimmed)} bytes, over the {MAX_STD_PACKET} bytes one JPEG APP1 segment "
            "holds, and it already has Extended XMP"
        )
    standard, extended = _split_extended(trimmed)
    return standard, _ext_segments(extended)[1]


def _serialise(root: ET.Element) -> bytes:
    body = etree().tostring(root, encoding="unicode")
    return f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n{body}\n<?xpacket end="w"?>'.encode()


def _split_extended(packet: bytes) -> tuple[bytes, bytes]:
    """Move the largest top-level properties of ``packet`` into an extended packet until it fits.

    Returns the standard packet (naming the extension's GUID) and the extended packet.
    """
    import hashlib

    import defusedxml.ElementTree as safe_tree
    from defusedxml import DefusedXmlException

    tree = etree()
    text = packet.decode("utf-8")
    for prefix, uri in _XMLNS.findall(text):  # keep the packet's own prefixes where ElementTree allows
        with contextlib.suppress(ValueError):
            tree.register_namespace(prefix, uri)
    try:
        root: ET.Element = safe_tree.fromstring(text.strip("\x00 \t\r\n\ufeff"))
    except (tree.ParseError, DefusedXmlException) as exc:
        raise MalformedFileError(f"XMP packet cannot be parsed: {exc}") from None
    rdf = root if root.tag == f"{_RDF}RDF" else root.find(f".//{_RDF}RDF")
    first = rdf.find(f"{_RDF}Description") if rdf is not None else None
    if rdf is None or first is None:
        raise LimitExceededError("oversized XMP packet has no rdf:Description to split")
    first.set(_NOTE_HAS_EXT, "0" * 32)
    moves: list[tuple[int, ET.Element, str | ET.Element]] = []
    for description in rdf.findall(f"{_RDF}Description"):
        moves.extend((len(k) + len(v), description, k) for k, v in description.attrib.items() if k not in _STAY)
        moves.extend((len(tree.tostring(c)), description, c) for c in description if c.tag not in _STAY)
    moves.sort(key=lambda move: -move[0])
    target = tree.Element(f"{_RDF}Description", {f"{_RDF}about": ""})
    size = len(_serialise(root))
    for weight, description, item in moves:
        if size <= MAX_STD_PACKET:
            break
        if isinstance(item, str):
            target.set(item, description.attrib.pop(item))
        else:
            description.remove(item)
            target.append(item)
        size -= weight
        if size <= MAX_STD_PACKET:
            size = len(_serialise(root))  # the estimate says it fits: measure
    meta = tree.Element("{adobe:ns:meta/}xmpmeta")
    tree.SubElement(meta, f"{_RDF}RDF").append(target)
    extended = tree.tostring(meta, encoding="unicode").encode()
    first.set(_NOTE_HAS_EXT, hashlib.md5(extended).hexdigest().upper())  # same length as the placeholder
    standard = _serialise(root)
    if len(standard) > MAX_STD_PACKET:
        raise LimitExceededError(f"the XMP packet cannot be split to fit {MAX_STD_PACKET} bytes")
    return standard, extended
