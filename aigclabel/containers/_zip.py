"""A raw-copy ZIP rewriter shared by the OOXML and EPUB modules (not a plugin: the name starts with ``_``).

Python's :mod:`zipfile` can only copy a member by decompressing and recompressing it, which changes
its compressed bytes (and can break signatures over the package parts). Here every member we do not
edit is copied **verbatim** (local header, compressed data and data descriptor, byte for byte, with
:func:`copy_range`), and only the central directory is rebuilt with the new offsets. The few parts
we edit are small XML files, read with hard bounds on compressed and decompressed size (zip bombs)
and checked against their CRC.

ZIP64 archives (over 4 GiB or 65,535 members) are read but not rewritten: no office document or
e-book comes close, and the extra bookkeeping is not worth its risk here.
"""

from __future__ import annotations

import hashlib
import struct
import time
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .._io import COPY_CHUNK, MAX_METADATA_BYTES, file_size
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError, WriteNotSupportedError
from ._stream import copy_range

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = b"PK\x05\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"

_EOCD = struct.Struct("<4s4H2LH")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_LOCAL = struct.Struct("<4s5H3L2H")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")

#: Most members an archive may declare; real documents have hundreds, not millions.
MAX_MEMBERS = 200_000
#: Largest part (compressed or not) we agree to load for editing.
MAX_PART_BYTES = MAX_METADATA_BYTES
#: Most bytes a payload digest inflates over all members: about ten seconds of inflate + SHA-256.
#: A 4 MB DOCX can declare a 4 GiB member of zeros (the digest took 27-53 s); real documents hold
#: well under a gigabyte of media.
MAX_INFLATED_BYTES = 1 << 30
#: Highest inflate ratio of a member over :data:`INFLATE_RATIO_FLOOR` bytes. Deflate tops out near
#: 1032:1 (all zeros); XML compresses about 10:1 and media hardly at all, so 200:1 is a bomb.
MAX_INFLATE_RATIO = 200
#: Members smaller than this inflated may have any ratio (small XML parts often exceed 200:1).
INFLATE_RATIO_FLOOR = 1 << 20
_U32 = 0xFFFFFFFF


@dataclass
class ZipEntry:
    """One central-directory record, with the raw bytes we copy back."""

    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    offset: int
    central: bytes
    zip64: bool

    @property
    def encrypted(self) -> bool:
        """True when the member data is encrypted (flag bit 0)."""
        return bool(self.flags & 1)


class ZipArchive:
    """The central directory of a ZIP file, parsed with bounds checks (nothing is decompressed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as handle:
            self._parse(handle)

    def _parse(self, handle: BinaryIO) -> None:
        size = file_size(handle)
        if size < _EOCD.size:
            raise TruncatedFileError("ZIP file is shorter than its end-of-central-directory record")
        tail_len = min(size, _EOCD.size + 0xFFFF)
        handle.seek(size - tail_len)
        tail = handle.read(tail_len)
        at = tail.rfind(EOCD_SIG)
        while at >= 0:
            fits = at + _EOCD.size <= len(tail)
            if fits and at + _EOCD.size + struct.unpack_from("<H", tail, at + 20)[0] <= len(tail):
                break
            at = tail.rfind(EOCD_SIG, 0, at)
        if at < 0:
            raise TruncatedFileError("ZIP end-of-central-directory record not found (truncated file?)")
        eocd_pos = size - tail_len + at
        _, disk, cd_disk, _n_here, count, cd_size, cd_offset, comment_len = _EOCD.unpack_from(tail, at)
        self.comment = tail[at + _EOCD.size : at + _EOCD.size + comment_len]
        self.zip64 = False
        if disk or cd_disk:
            raise MalformedFileError("multi-disk ZIP archives are not supported")
        if count == 0xFFFF or cd_size == _U32 or cd_offset == _U32:
            self.zip64 = True
            if eocd_pos < _ZIP64_LOCATOR.size:
                raise MalformedFileError("ZIP64 locator missing")
            handle.seek(eocd_pos - _ZIP64_LOCATOR.size)
            sig, _, z64_pos, _ = _ZIP64_LOCATOR.unpack(handle.read(_ZIP64_LOCATOR.size))
            if sig != ZIP64_LOCATOR_SIG or z64_pos + _ZIP64_EOCD.size > size:
                raise MalformedFileError("ZIP64 end-of-central-directory locator is damaged")
            handle.seek(z64_pos)
            fields = _ZIP64_EOCD.unpack(handle.read(_ZIP64_EOCD.size))
            if fields[0] != ZIP64_EOCD_SIG:
                raise MalformedFileError("ZIP64 end-of-central-directory record is damaged")
            count, cd_size, cd_offset = fields[7], fields[8], fields[9]
            cd_end = z64_pos
        else:
            cd_end = eocd_pos
        if count > MAX_MEMBERS:
            raise LimitExceededError(f"ZIP declares {count} members (limit {MAX_MEMBERS})")
        if cd_offset + cd_size != cd_end:
            raise MalformedFileError("ZIP central directory is not where the end record says (prefixed or damaged)")
        if cd_size > MAX_PART_BYTES:
            raise LimitExceededError(f"ZIP central directory is {cd_size} bytes (limit {MAX_PART_BYTES})")
        handle.seek(cd_offset)
        cd = handle.read(cd_size)
        if len(cd) != cd_size:
            raise TruncatedFileError("file ends inside the ZIP central directory")
        self.cd_offset = cd_offset
        self.entries: list[ZipEntry] = []
        pos = 0
        for _ in range(count):
            if pos + _CENTRAL.size > len(cd):
                raise TruncatedFileError("ZIP central directory ends early")
            f = _CENTRAL.unpack_from(cd, pos)
            if f[0] != CENTRAL_SIG:
                raise MalformedFileError("bad ZIP central directory record signature")
            flags, method, crc, csize, usize, nlen, xlen, clen, offset = (
                f[3],
                f[4],
                f[7],
                f[8],
                f[9],
                f[10],
                f[11],
                f[12],
                f[16],
            )
            end = pos + _CENTRAL.size + nlen + xlen + clen
            if end > len(cd):
                raise TruncatedFileError("ZIP central directory record runs past its end")
            raw_name = cd[pos + _CENTRAL.size : pos + _CENTRAL.size + nlen]
            extra = cd[pos + _CENTRAL.size + nlen : pos + _CENTRAL.size + nlen + xlen]
            is64 = False
            if _U32 in (csize, usize, offset):
                is64 = True
                usize, csize, offset = _zip64_values(extra, usize, csize, offset)
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            if offset >= cd_offset:
                raise MalformedFileError(f"ZIP member {name!r} points into the central directory")
            self.entries.append(ZipEntry(name, flags, method, crc, csize, usize, offset, cd[pos:end], is64))
            pos = end
        offsets = sorted(e.offset for e in self.entries)
        if len(set(offsets)) != len(offsets):
            raise MalformedFileError("two ZIP members share one local header (overlapping entries)")
        self._by_name = {e.name: e for e in self.entries}
        ends = [*offsets[1:], cd_offset] if offsets else []
        self._extent = dict(zip(offsets, ends, strict=True))

    def get(self, name: str) -> ZipEntry | None:
        """The member called ``name`` (exact, case-sensitive), or ``None``."""
        return self._by_name.get(name)

    def find_ci(self, name: str) -> ZipEntry | None:
        """The member called ``name`` ignoring ASCII case (OPC part names are case-insensitive)."""
        found = self._by_name.get(name)
        if found is not None:
            return found
        folded = name.casefold()
        return next((e for e in self.entries if e.name.casefold() == folded), None)

    def find_all_ci(self, name: str) -> list[ZipEntry]:
        """Every member called ``name`` ignoring ASCII case, in central-directory order.

        A hostile package can hold the same part twice (ZIP readers disagree on which one wins),
        so label readers look at all of them.
        """
        folded = name.casefold()
        return [e for e in self.entries if e.name.casefold() == folded]

    def digest(self, skip: Callable[[ZipEntry], bool]) -> bytes:
        """SHA-256 over every member but directories and those ``skip`` names: names and uncompressed
        bytes, in name order (the payload digest of the ZIP-based formats).

        Before inflating anything the declared sizes are checked against :data:`MAX_INFLATED_BYTES`
        and :data:`MAX_INFLATE_RATIO` (inflation then stops at the declared size). Hashing the
        compressed bytes instead would avoid inflating, but a re-zip with another compression level
        would change the digest and break every signature over it.
        """
        members = sorted((e for e in self.entries if not e.name.endswith("/") and not skip(e)), key=lambda e: e.name)
        total = 0
        for entry in members:
            total += entry.size
            if total > MAX_INFLATED_BYTES:
                raise LimitExceededError(f"ZIP members inflate to over {MAX_INFLATED_BYTES} bytes (zip bomb?)")
            if entry.size > INFLATE_RATIO_FLOOR and entry.size > MAX_INFLATE_RATIO * max(entry.compressed_size, 1):
                raise LimitExceededError(
                    f"ZIP member {entry.name!r} inflates {entry.compressed_size} bytes to {entry.size} "
                    f"(over {MAX_INFLATE_RATIO}:1, zip bomb?)"
                )
        digest = hashlib.sha256()
        for entry in members:
            digest.update(entry.name.encode() + b"\0")
            member = hashlib.sha256()
            self.stream(entry, member.update)
            digest.update(member.digest())
        return digest.digest()

    def extent(self, entry: ZipEntry) -> tuple[int, int]:
        """Byte range ``[start, end)`` of the member's local header, data and descriptor."""
        return entry.offset, self._extent[entry.offset]

    def _data_start(self, handle: BinaryIO, entry: ZipEntry) -> int:
        if entry.encrypted:
            raise MalformedFileError(f"ZIP member {entry.name!r} is encrypted")
        if entry.method not in (0, 8):
            raise MalformedFileError(f"ZIP member {entry.name!r} uses unsupported compression method {entry.method}")
        handle.seek(entry.offset)
        header = handle.read(_LOCAL.size)
        if len(header) < _LOCAL.size:
            raise TruncatedFileError(f"file ends inside the local header of {entry.name!r}")
        f = _LOCAL.unpack(header)
        if f[0] != LOCAL_SIG:
            raise MalformedFileError(f"bad local header signature for ZIP member {entry.name!r}")
        start: int = entry.offset + _LOCAL.size + f[9] + f[10]
        if start + entry.compressed_size > self._extent[entry.offset]:
            raise MalformedFileError(f"ZIP member {entry.name!r} overlaps the next member")
        return start

    def read(self, entry: ZipEntry, limit: int = MAX_PART_BYTES) -> bytes:
        """The member's decompressed bytes, at most ``limit`` of them, CRC-checked."""
        if entry.compressed_size > limit or entry.size > limit:
            raise LimitExceededError(f"ZIP member {entry.name!r} is over the {limit} byte limit")
        chunks: list[bytes] = []
        self.stream(entry, chunks.append, limit)
        return b"".join(chunks)

    def stream(self, entry: ZipEntry, sink: Callable[[bytes], object], limit: int | None = None) -> None:
        """Feed the member's decompressed bytes to ``sink`` in bounded chunks, then check size and CRC.

        Decompression stops with LimitExceededError past ``limit`` bytes, or past the size the
        central directory declares (so a lying header cannot turn into a zip bomb).
        """
        bound = entry.size if limit is None else min(entry.size, limit)
        crc = 0
        total = 0
        with open(self.path, "rb") as handle:
            handle.seek(self._data_start(handle, entry))
            remaining = entry.compressed_size
            inflater = zlib.decompressobj(-15) if entry.method == 8 else None
            while remaining or (inflater is not None and inflater.unconsumed_tail):
                if inflater is not None and inflater.unconsumed_tail:
                    data = inflater.unconsumed_tail
                else:
                    data = handle.read(min(COPY_CHUNK, remaining))
                    if not data:
                        raise TruncatedFileError(f"file ends inside ZIP member {entry.name!r}")
                    remaining -= len(data)
                if inflater is not None:
                    try:
                        out = inflater.decompress(data, COPY_CHUNK)
                    except zlib.error as exc:
                        raise MalformedFileError(
                            f"ZIP member {entry.name!r} is not valid deflate data: {exc}"
                        ) from None
                else:
                    out = data
                total += len(out)
                if total > bound:
                    raise LimitExceededError(f"ZIP member {entry.name!r} inflates past {bound} bytes (zip bomb?)")
                crc = zlib.crc32(out, crc)
                sink(out)
        if total != entry.size or crc != entry.crc:
            raise MalformedFileError(f"ZIP member {entry.name!r} fails its size or CRC check")


def _zip64_values(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 1:
            values = [usize, csize, offset]
            index = 0
            for i, value in enumerate(values):
                if value == _U32:
                    if index + 8 > len(body):
                        raise MalformedFileError("ZIP64 extra field is too short")
                    values[i] = struct.unpack_from("<Q", body, index)[0]
                    index += 8
            return values[0], values[1], values[2]
        pos += 4 + length
    raise MalformedFileError("ZIP record needs a ZIP64 extra field but has none")


def _strip_zip64_extra(extra: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag != 1:
            out += extra[pos : pos + 4 + length]
        pos += 4 + length
    return bytes(out)


def _dos_now() -> tuple[int, int]:
    t = time.localtime()
    return (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2), ((t.tm_year - 1980) << 9) | (
        t.tm_mon << 5
    ) | t.tm_mday


def _compress(data: bytes, method: int) -> bytes:
    if method == 0:
        return data
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflater.compress(data) + deflater.flush()


def rewrite_zip(
    archive: ZipArchive,
    dst: Path,
    replace: dict[str, bytes],
    add: list[tuple[str, bytes]],
    drop: Collection[ZipEntry] = (),
) -> None:
    """Write ``archive`` to ``dst`` with the members named in ``replace`` given new contents,
    the members in ``drop`` left out and ``add`` appended; every other member is copied byte for byte.

    A replaced member keeps its place, name, timestamp and compression method (so an EPUB's
    ``mimetype`` stays first and stored).
    """
    if archive.zip64 or any(e.zip64 for e in archive.entries):
        raise WriteNotSupportedError("ZIP64 archives (over 4 GiB or 65,535 members) cannot be rewritten losslessly")
    missing = set(replace) - {e.name for e in archive.entries}
    if missing:
        raise ValueError(f"cannot replace missing members {sorted(missing)}")
    central: dict[int, bytes] = {}
    with open(archive.path, "rb") as src, open(dst, "wb") as out:
        dropped = {id(e) for e in drop}
        kept = [e for e in archive.entries if id(e) not in dropped]
        physical = sorted(kept, key=lambda e: e.offset)
        first = physical[0].offset if physical else archive.cd_offset
        copy_range(src, out, 0, first, "ZIP prefix")
        for entry in physical:
            new_offset = out.tell()
            if entry.name in replace:
                central[id(entry)] = _write_member(src, out, entry, replace[entry.name])
            else:
                start, end = archive.extent(entry)
                copy_range(src, out, start, end - start, f"ZIP member {entry.name!r}")
                central[id(entry)] = entry.central[:42] + struct.pack("<L", new_offset) + entry.central[46:]
            if new_offset > _U32:
                raise WriteNotSupportedError("rewritten ZIP would need ZIP64 offsets")
        added: list[bytes] = []
        for name, data in add:
            added.append(_write_new(out, name, data))
        cd_start = out.tell()
        records = [central[id(e)] for e in kept] + added
        for record in records:
            out.write(record)
        cd_size = out.tell() - cd_start
        if len(records) >= 0xFFFF or cd_start + cd_size > _U32:
            raise WriteNotSupportedError("rewritten ZIP would need ZIP64 records")
        out.write(_EOCD.pack(EOCD_SIG, 0, 0, len(records), len(records), cd_size, cd_start, len(archive.comment)))
        out.write(archive.comment)


def _write_member(src: BinaryIO, out: BinaryIO, entry: ZipEntry, data: bytes) -> bytes:
    """Write a replacement local header + data for ``entry``; return its new central record."""
    offset = out.tell()
    src.seek(entry.offset)
    local = src.read(_LOCAL.size)
    f = _LOCAL.unpack(local)
    name_raw = src.read(f[9])
    local_extra = _strip_zip64_extra(src.read(f[10]))
    method = 0 if entry.method == 0 else 8
    flags = entry.flags & 0x0800  # keep only the UTF-8 name flag: sizes are in the header now
    body = _compress(data, method)
    crc = zlib.crc32(data)
    out.write(
        _LOCAL.pack(
            LOCAL_SIG, 20, flags, method, f[4], f[5], crc, len(body), len(data), len(name_raw), len(local_extra)
        )
    )
    out.write(name_raw + local_extra)
    out.write(body)
    c = list(_CENTRAL.unpack_from(entry.central, 0))
    c[3], c[4], c[7], c[8], c[9], c[16] = flags, method, crc, len(body), len(data), offset
    return _CENTRAL.pack(*c) + entry.central[_CENTRAL.size :]


def _write_new(out: BinaryIO, name: str, data: bytes) -> bytes:
    offset = out.tell()
    raw = name.encode("utf-8")
    flags = 0 if raw.isascii() else 0x0800
    dos_time, dos_date = _dos_now()
    body = _compress(data, 8)
    crc = zlib.crc32(data)
    out.write(_LOCAL.pack(LOCAL_SIG, 20, flags, 8, dos_time, dos_date, crc, len(body), len(data), len(raw), 0))
    out.write(raw + body)
    return (
        _CENTRAL.pack(
            CENTRAL_SIG,
            20,
            20,
            flags,
            8,
            dos_time,
            dos_date,
            crc,
            len(body),
            len(data),
            len(raw),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + raw
    )
