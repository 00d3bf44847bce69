"""PNG and APNG: the label as XMP ``TC260:AIGC`` in an ``iTXt`` chunk keyed ``XML:com.adobe.xmp``.

Placement follows TC260-PG-20259A: one uncompressed XMP ``iTXt`` before the first image-data chunk.
The guide's Annex B alternative, a ``tEXt``/``zTXt``/``iTXt`` chunk with keyword ``AIGC`` holding
bare or wrapped JSON, is read and reported as its own placement; :meth:`PngContainer.rewrite`
removes it so that exactly one label remains (GB 45438 §6.1 c).

The file is walked chunk by chunk. Only the text chunks we interpret are loaded (bounded, CRC
checked); every other chunk (``eXIf``, ``iCCP``, ``tIME``, ``acTL``/``fcTL``/``fdAT``, private
chunks...) and all image data are streamed through byte-identical.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

from .._io import MAX_METADATA_BYTES, copy_exact, copy_rest, file_size, read_at, read_exact_at
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError
from ..label import AIGCLabel
from ..xmp import find_aigc, remove_aigc, set_aigc
from . import SIGNATURE_PRIORITY, Container, FoundLabel, MediaKind, register
from ._stream import open_output

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"
AIGC_KEYWORD = b"AIGC"
_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")
#: Chunks a decoder renders from; everything else is metadata for :meth:`PngContainer.payload_digest`.
PAYLOAD_TYPES = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"acTL", b"fcTL", b"fdAT"})
#: Chunks before which the XMP chunk is inserted (the first frame's fcTL may precede IDAT in APNG).
_IMAGE_START = frozenset({b"IDAT", b"fcTL", b"fdAT"})
_MAX_CHUNK = 0x7FFFFFFF  # PNG §5.3: lengths are limited to 2^31 - 1
_KEYWORD_PEEK = 80  # a keyword is 1-79 bytes plus its NUL
_MAX_CHUNKS = 1_000_000  # bounds the chunk index kept in memory (an APNG frame needs two)


@dataclass(slots=True)
class _Chunk:
    type: bytes
    offset: int  # of the length field
    length: int
    keyword: bytes | None = None  # for text chunks
    data: bytes | None = None  # loaded only for the text chunks we interpret

    @property
    def end(self) -> int:
        return self.offset + 12 + self.length

    @property
    def is_xmp(self) -> bool:
        return self.type == b"iTXt" and self.keyword == XMP_KEYWORD

    @property
    def is_aigc(self) -> bool:
        return self.type in _TEXT_TYPES and self.keyword == AIGC_KEYWORD


def _inflate(data: bytes, what: str) -> bytes:
    """zlib-decompress with a hard output bound, so a zlib bomb raises instead of eating memory."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_METADATA_BYTES + 1)
    except zlib.error as exc:
        raise MalformedFileError(f"{what}: bad zlib stream ({exc})") from None
    if len(out) > MAX_METADATA_BYTES or inflater.unconsumed_tail:
        raise LimitExceededError(f"{what} inflates to more than {MAX_METADATA_BYTES} bytes")
    if not inflater.eof:
        raise MalformedFileError(f"{what}: zlib stream is incomplete")
    return out


_HEAD = struct.Struct(">I4s")
_CRC = struct.Struct(">I")
#: Bytes read at the start of the walk: the small chunks before the image data (IHDR, the XMP
#: chunk, colour information) usually fit in this one read, CRCs included (the sniff's bytes, when
#: the walk is given them).
_WINDOW = 4096
#: Past the first window, a header that follows a chunk shorter than :data:`_SMALL_CHUNK` is read
#: with the :data:`_RUN_WINDOW` bytes after it: a run of small chunks (libpng's 8 KiB IDATs, APNG
#: frames) then costs one read per window instead of one per chunk. After a longer chunk (Pillow
#: writes 64 KiB IDATs) only the 8-byte header is read: a window would mostly copy image data, which
#: costs more than the read it saves.
_SMALL_CHUNK = 16 << 10
_RUN_WINDOW = 64 << 10


def _walk(fd: int, size: int, text_only: bool = False, head: bytes = b"") -> Iterator[_Chunk]:
    """Chunks from IHDR to IEND of the file open as ``fd`` (``size`` bytes long, starting with
    ``head`` when given: the first window is then not read again); interpreted text chunks are
    loaded and CRC-checked. With ``text_only`` only the text chunks are yielded (every chunk is still
    checked the same way): reading labels skips a dozen image-data chunks per file without making an
    object for each.

    Consumers seek before they read: the descriptor's position between chunks is unspecified."""
    window = head or read_at(fd, 0, _WINDOW)
    if window[:8] != SIGNATURE:
        raise MalformedFileError("not a PNG file (bad signature)")
    base, held = 0, len(window)  # the window holds the file's bytes [base, base + held)
    offset = 8
    unpack = _HEAD.unpack_from
    fill = run_window = _RUN_WINDOW
    small, max_chunk = _SMALL_CHUNK, _MAX_CHUNK
    for _ in range(_MAX_CHUNKS):
        at = offset - base
        if at + 8 > held:  # past what is held: the header, and more after small chunks
            window = read_at(fd, offset, fill)
            base, held, at = offset, len(window), 0
        try:
            length, ctype = unpack(window, at)
        except struct.error:
            raise TruncatedFileError("PNG ends before its IEND chunk") from None
        end = offset + 12 + length
        if ctype == b"IDAT" and end <= size and length <= max_chunk and offset != 8:
            # Image data, most of a file's chunks: each check below would pass (offset 8 must be IHDR).
            if not text_only:
                yield _Chunk(ctype, offset, length)
            fill = run_window if length < small else 8
            offset = end
            continue
        if length > max_chunk:
            raise MalformedFileError(f"PNG chunk at byte {offset} declares an invalid length {length}")
        if not ctype.isalpha():
            raise MalformedFileError(f"PNG chunk at byte {offset} has an invalid type {ctype!r}")
        if offset == 8 and ctype != b"IHDR":
            raise MalformedFileError("PNG does not start with an IHDR chunk")
        if end > size:
            raise TruncatedFileError(f"PNG ends inside the {ctype.decode()} chunk at byte {offset}")
        if ctype in _TEXT_TYPES:
            chunk = _Chunk(ctype, offset, length)
            whole = end <= base + held  # the chunk and its CRC are in the window
            peek = min(length, _KEYWORD_PEEK)
            keyword = window[at + 8 : at + 8 + peek] if whole else read_at(fd, offset + 8, peek)
            chunk.keyword = keyword.split(b"\0", 1)[0]
            if chunk.is_xmp or chunk.is_aigc:
                if whole:
                    data, (crc,) = window[at + 8 : at + 8 + length], _CRC.unpack_from(window, at + 8 + length)
                else:
                    data = read_exact_at(fd, offset + 8, length, f"PNG {ctype.decode()} chunk")
                    (crc,) = _CRC.unpack(read_exact_at(fd, offset + 8 + length, 4, "PNG chunk CRC"))
                if zlib.crc32(data, zlib.crc32(ctype)) != crc:
                    raise MalformedFileError(f"PNG {ctype.decode()} chunk at byte {offset} fails its CRC check")
                chunk.data = data
            yield chunk
        elif not text_only:
            yield _Chunk(ctype, offset, length)
        fill = run_window if length < small else 8
        offset = end
        if ctype == b"IEND":
            return
    raise LimitExceededError(f"PNG has more than {_MAX_CHUNKS} chunks")


def _named(chunk: _Chunk) -> str:
    """How errors name a text chunk (built only for them: reading a label needs no name)."""
    return f"PNG {chunk.type.decode()} chunk {chunk.keyword!r}"


def _text_value(chunk: _Chunk) -> bytes:
    """The text of a tEXt/zTXt/iTXt chunk (decompressed when needed)."""
    assert chunk.data is not None
    keyword_end = chunk.data.find(b"\0")
    if keyword_end < 0:
        raise MalformedFileError(f"{_named(chunk)} has no keyword terminator")
    rest = chunk.data[keyword_end + 1 :]
    if chunk.type == b"tEXt":
        return rest
    if chunk.type == b"zTXt":
        if not rest or rest[0] != 0:
            raise MalformedFileError(f"{_named(chunk)} uses an unknown compression method")
        return _inflate(rest[1:], _named(chunk))
    if len(rest) < 2:
        raise MalformedFileError(f"{_named(chunk)} is truncated")
    compressed, method = rest[0], rest[1]
    parts = rest[2:].split(b"\0", 2)
    if len(parts) != 3:
        raise MalformedFileError(f"{_named(chunk)} lacks its language tag or translated keyword")
    text = parts[2]
    if compressed == 0:
        return text
    if compressed != 1 or method != 0:
        raise MalformedFileError(f"{_named(chunk)} has an invalid compression flag")
    return _inflate(text, _named(chunk))


def _itxt_head(chunk: _Chunk | None) -> bytes:
    """Keyword, flags, language tag and translated keyword for a rewritten XMP chunk.

    An existing chunk's language fields are kept; the text is always stored uncompressed, as the
    guide asks and as every XMP reader expects.
    """
    if chunk is not None and chunk.data is not None:
        parts = chunk.data[len(XMP_KEYWORD) + 3 :].split(b"\0", 2)
        if len(parts) == 3:
            return XMP_KEYWORD + b"\0\0\0" + parts[0] + b"\0" + parts[1] + b"\0"
    return XMP_KEYWORD + b"\0\0\0\0\0"


def _write_chunk(dst: BinaryIO, ctype: bytes, data: bytes) -> None:
    if len(data) > _MAX_CHUNK:
        raise LimitExceededError(f"PNG {ctype.decode()} chunk would exceed the PNG size limit")
    dst.write(struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data)))


_XMP_LOCATION = f"XMP TC260:AIGC in iTXt {XMP_KEYWORD.decode()}"


def _labels(chunks: Iterator[_Chunk]) -> list[FoundLabel]:
    """The label placements among the text chunks of a walk, in file order."""
    found: list[FoundLabel] = []
    for chunk in chunks:
        if chunk.is_xmp:
            for value in find_aigc(_text_value(chunk)):
                found.append(FoundLabel.from_text(_XMP_LOCATION, value))
        elif chunk.is_aigc:
            found.append(FoundLabel.from_text(f"{chunk.type.decode()} chunk AIGC", _text_value(chunk)))
    return found


@register
class PngContainer(Container):
    """PNG and APNG images (ISO/IEC 15948, APNG 1.0)."""

    name: ClassVar[str] = "png"
    description: ClassVar[str] = "PNG image"
    extensions: ClassVar[tuple[str, ...]] = (".png", ".apng")
    mime_type: ClassVar[str] = "image/png"
    media: ClassVar[MediaKind] = MediaKind.IMAGE
    primary_location: ClassVar[str] = "XMP TC260:AIGC in iTXt XML:com.adobe.xmp"
    #: The 8-byte signature starts no other format, so it is checked before the costlier sniffers
    #: (MP3 frame chains, HTML, MP4 boxes): a quarter of a bulk PNG inspection went to them.
    priority: ClassVar[int] = SIGNATURE_PRIORITY

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        return head.startswith(SIGNATURE)

    def read(self, path: Path) -> list[FoundLabel]:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))  # pread and a few reads: no buffer to fill
        try:
            return _labels(_walk(fd, os.fstat(fd).st_size, text_only=True))
        finally:
            os.close(fd)

    def read_opened(self, path: Path, fd: int, head: bytes, size: int) -> list[FoundLabel]:
        return _labels(_walk(fd, size, text_only=True, head=head))

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        with open(src, "rb") as handle:
            chunks = list(_walk(handle.fileno(), file_size(handle)))
            # Decide every output chunk before writing one, so a bad packet fails before any output.
            xmp_chunks = [c for c in chunks if c.is_xmp]
            primary = xmp_chunks[0] if xmp_chunks else None
            replacements: dict[int, bytes | None] = {}  # chunk offset -> new iTXt data, None = drop
            for chunk in chunks:
                if chunk.is_aigc:
                    replacements[chunk.offset] = None
                elif chunk.is_xmp:
                    packet = _text_value(chunk)
                    if label is not None and chunk is primary:
                        new: bytes | None = set_aigc(packet, label.to_json())
                    else:
                        new = remove_aigc(packet) if find_aigc(packet) else packet
                    if new is None:
                        replacements[chunk.offset] = None
                    elif new != packet or (chunk is primary and label is not None):
                        replacements[chunk.offset] = _itxt_head(chunk) + new
            first_image = next((c.offset for c in chunks if c.type in _IMAGE_START), None)
            if first_image is None:
                raise MalformedFileError("PNG has no image data chunk")
            insert_new: bytes | None = None
            if label is not None:
                if primary is None:
                    insert_new = _itxt_head(None) + set_aigc(None, label.to_json())
                elif primary.offset > first_image:
                    # An XMP chunk after the image data is legal PNG but not the guide's slot: move it.
                    insert_new = replacements[primary.offset]
                    replacements[primary.offset] = None

            with open_output(dst) as out:
                out.write(SIGNATURE)
                for chunk in chunks:
                    if chunk.offset == first_image and insert_new is not None:
                        _write_chunk(out, b"iTXt", insert_new)
                    if chunk.offset in replacements:
                        data = replacements[chunk.offset]
                        if data is not None:
                            _write_chunk(out, b"iTXt", data)
                        continue
                    handle.seek(chunk.offset)
                    copy_exact(handle, out, chunk.length + 12, f"PNG {chunk.type.decode()} chunk")
                # Bytes after IEND are not PNG, but they are the user's: keep them.
                handle.seek(chunks[-1].end)
                copy_rest(handle, out)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over the type, length and data of IHDR, PLTE, tRNS, IDAT and the APNG chunks
        (acTL, fcTL, fdAT), in file order. Text, colour-management and private chunks are left out."""
        import hashlib  # here, not at the top: reading or writing a label needs no digest

        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in list(_walk(handle.fileno(), file_size(handle))):
                if chunk.type in PAYLOAD_TYPES:
                    handle.seek(chunk.offset)
                    remaining = chunk.length + 8
                    while remaining:
                        block = handle.read(min(remaining, 1 << 20))
                        if not block:
                            raise TruncatedFileError("PNG ends inside an image chunk")
                        digest.update(block)
                        remaining -= len(block)
        return digest.digest()
