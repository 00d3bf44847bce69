"""WebP: the label as XMP ``TC260:AIGC`` in the RIFF ``XMP `` chunk, with the VP8X XMP flag set.

The guide (TC260-PG-20259A) names the ``XMP `` chunk; the WebP container specification only lets
metadata chunks appear in the *extended* format, so a simple file (one ``VP8 `` or ``VP8L``
chunk) is converted losslessly: a ``VP8X`` header is added whose canvas size is read from the
bitstream header and whose alpha flag mirrors the VP8L ``alpha_is_used`` bit. The bitstream
chunk itself is copied byte-identical; nothing is re-encoded.

Chunk order follows the container spec (VP8X, ICCP, ANIM, image data, EXIF, XMP): the XMP chunk
goes after the EXIF chunk or, without one, after the last image-data chunk. Every other chunk keeps
its place and bytes; the RIFF size is recomputed and odd-sized chunks are padded.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

from .._io import copy_exact, copy_rest, file_size, read_exact
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError
from ..label import AIGCLabel
from ..xmp import find_aigc, remove_aigc, set_aigc
from . import Container, FoundLabel, MediaKind, register
from ._stream import open_output

XMP_FOURCC = b"XMP "
#: Chunks that carry what a decoder renders (see :meth:`WebpContainer.payload_digest`).
PAYLOAD_FOURCCS = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"})
_IMAGE_FOURCCS = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANMF"})
# VP8X flag bits (WebP container spec, "Extended File Format").
FLAG_ICC = 0x20
FLAG_ALPHA = 0x10
FLAG_EXIF = 0x08
FLAG_XMP = 0x04
FLAG_ANIMATION = 0x02
_MAX_CHUNKS = 1_000_000


@dataclass(frozen=True)
class _Chunk:
    fourcc: bytes
    offset: int  # of the FourCC
    size: int  # payload size, without padding

    @property
    def data_offset(self) -> int:
        return self.offset + 8


def _walk(handle: BinaryIO) -> tuple[list[_Chunk], int]:
    """The RIFF's chunks and the offset where the RIFF ends (trailing bytes are kept, not parsed)."""
    total = file_size(handle)
    handle.seek(0)
    head = handle.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise MalformedFileError("not a WebP file (no RIFF/WEBP header)")
    riff_end = 8 + struct.unpack("<I", head[4:8])[0]
    if riff_end > total:
        raise TruncatedFileError(f"WebP RIFF declares {riff_end} bytes but the file has {total}")
    chunks: list[_Chunk] = []
    offset = 12
    while offset < riff_end:
        if riff_end - offset < 8:
            raise MalformedFileError(f"WebP has {riff_end - offset} stray bytes at the end of its RIFF")
        handle.seek(offset)
        fourcc, size = struct.unpack("<4sI", handle.read(8))
        end = offset + 8 + size
        if end > riff_end:
            raise TruncatedFileError(f"WebP chunk {fourcc!r} at byte {offset} runs past the end of the RIFF")
        chunks.append(_Chunk(fourcc, offset, size))
        if len(chunks) > _MAX_CHUNKS:
            raise LimitExceededError(f"WebP has more than {_MAX_CHUNKS} chunks")
        # A missing final pad byte is a common writer bug; tolerate it at the very end.
        offset = end + (size & 1) if end + (size & 1) <= riff_end else end
    if not chunks:
        raise MalformedFileError("WebP has no chunks")
    return chunks, riff_end


def _read_chunk(handle: BinaryIO, chunk: _Chunk) -> bytes:
    handle.seek(chunk.data_offset)
    return read_exact(handle, chunk.size, f"WebP {chunk.fourcc.decode('latin-1')!r} chunk")


def _canvas_and_alpha(handle: BinaryIO, chunk: _Chunk) -> tuple[int, int, bool]:
    """Width, height and alpha use of a simple-format bitstream, from its frame header."""
    handle.seek(chunk.data_offset)
    head = handle.read(min(chunk.size, 10))
    if chunk.fourcc == b"VP8 ":
        # RFC 6386 §9.1: 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height.
        if len(head) < 10 or head[0] & 1 or head[3:6] != b"\x9d\x01\x2a":
            raise MalformedFileError("WebP VP8 chunk does not start with a key frame header")
        width, height = struct.unpack("<HH", head[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    # WebP lossless spec §3.2: signature 0x2f, then 14 bits width-1, 14 bits height-1, 1 bit alpha.
    if len(head) < 5 or head[0] != 0x2F:
        raise MalformedFileError("WebP VP8L chunk has a bad signature")
    bits = int.from_bytes(head[1:5], "little")
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)


def _vp8x(flags: int, width: int, height: int) -> bytes:
    if not (1 <= width <= 1 << 24 and 1 <= height <= 1 << 24):
        raise MalformedFileError(f"WebP canvas {width}x{height} is out of range")
    return bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


def _emit(out: BinaryIO, fourcc: bytes, data: bytes) -> None:
    out.write(fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b""))


@register
class WebpContainer(Container):
    """WebP images: lossy, lossless, with alpha, animated."""

    name: ClassVar[str] = "webp"
    description: ClassVar[str] = "WebP image"
    extensions: ClassVar[tuple[str, ...]] = (".webp",)
    mime_type: ClassVar[str] = "image/webp"
    media: ClassVar[MediaKind] = MediaKind.IMAGE
    primary_location: ClassVar[str] = "XMP TC260:AIGC in RIFF chunk 'XMP '"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"

    def read(self, path: Path) -> list[FoundLabel]:
        found: list[FoundLabel] = []
        with open(path, "rb") as handle:
            chunks, _ = _walk(handle)
            for chunk in chunks:
                if chunk.fourcc == XMP_FOURCC:
                    packet = _read_chunk(handle, chunk)
                    found.extend(FoundLabel.from_text(self.primary_location, v) for v in find_aigc(packet))
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        with open(src, "rb") as handle:
            chunks, riff_end = _walk(handle)
            xmp_chunks = [c for c in chunks if c.fourcc == XMP_FOURCC]
            packets = [_read_chunk(handle, c) for c in xmp_chunks]
            # One XMP chunk at most in the output: the first one edited, the rest merged away.
            if label is not None:
                new_packet: bytes | None = set_aigc(packets[0] if packets else None, label.to_json())
            elif packets:
                new_packet = remove_aigc(packets[0]) if find_aigc(packets[0]) else packets[0]
            else:
                new_packet = None
            extra = [remove_aigc(p) if find_aigc(p) else p for p in packets[1:]]
            if label is None and not any(find_aigc(p) for p in packets):
                handle.seek(0)
                with open_output(dst) as out:
                    copy_rest(handle, out)  # nothing to strip: the file stays byte-identical
                return

            vp8x = next((c for c in chunks if c.fourcc == b"VP8X"), None)
            if vp8x is not None:
                if chunks[0] is not vp8x or vp8x.size < 10:
                    raise MalformedFileError("WebP VP8X chunk is not first or too short")
                header = bytearray(_read_chunk(handle, vp8x))
            else:
                bitstream = next((c for c in chunks if c.fourcc in (b"VP8 ", b"VP8L")), None)
                if bitstream is None:
                    raise MalformedFileError("WebP has neither a VP8X header nor a VP8/VP8L bitstream")
                width, height, alpha = _canvas_and_alpha(handle, bitstream)
                present = {c.fourcc for c in chunks}
                flags = FLAG_ALPHA if alpha or b"ALPH" in present else 0
                flags |= FLAG_ICC if b"ICCP" in present else 0
                flags |= FLAG_EXIF if b"EXIF" in present else 0
                header = bytearray(_vp8x(flags, width, height))
            if new_packet is not None:
                header[0] |= FLAG_XMP
            else:
                header[0] &= ~FLAG_XMP & 0xFF

            body = [c for c in chunks if c.fourcc not in (b"VP8X", XMP_FOURCC)]
            if not any(c.fourcc in _IMAGE_FOURCCS for c in body):
                raise MalformedFileError("WebP has no image data chunk")
            anchors = [i for i, c in enumerate(body) if c.fourcc in _IMAGE_FOURCCS or c.fourcc == b"EXIF"]
            insert_after = anchors[-1] if anchors else len(body) - 1
            kept_extra = [p for p in extra if p is not None]

            size = 4 + 8 + len(header) + (len(header) & 1)
            size += sum(8 + c.size + (c.size & 1) for c in body)
            size += sum(8 + len(p) + (len(p) & 1) for p in ([new_packet] if new_packet else []) + kept_extra)
            if size > 0xFFFFFFFF - 8:
                raise LimitExceededError("WebP would exceed the 4 GiB RIFF limit")

            with open_output(dst) as out:
                out.write(b"RIFF" + struct.pack("<I", size) + b"WEBP")
                _emit(out, b"VP8X", bytes(header))
                for index, chunk in enumerate(body):
                    handle.seek(chunk.offset)
                    copy_exact(handle, out, 8 + chunk.size, f"WebP {chunk.fourcc!r} chunk")
                    if chunk.size & 1:
                        out.write(b"\0")
                    if index == insert_after:
                        if new_packet is not None:
                            _emit(out, XMP_FOURCC, new_packet)
                        for packet in kept_extra:
                            _emit(out, XMP_FOURCC, packet)
                handle.seek(riff_end)
                copy_rest(handle, out)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over FourCC, size and payload of the VP8, VP8L, ALPH, ANIM and ANMF chunks.

        VP8X is left out: it only restates the canvas and says which metadata chunks exist, and
        adding a label has to change it.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            chunks, _ = _walk(handle)
            for chunk in chunks:
                if chunk.fourcc in PAYLOAD_FOURCCS:
                    handle.seek(chunk.offset)
                    remaining = 8 + chunk.size
                    while remaining:
                        block = handle.read(min(remaining, 1 << 20))
                        if not block:
                            raise TruncatedFileError("WebP ends inside an image chunk")
                        digest.update(block)
                        remaining -= len(block)
        return digest.digest()
