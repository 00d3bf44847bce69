"""FLAC: the label is the Vorbis comment ``AIGC=<json>`` in the ``VORBIS_COMMENT`` metadata block.

TC260-PG-202510A (appendix) stores the bare seven-field JSON as comment field ``AIGC``. The source
is streamed to the temporary output and mutagen edits that copy: it rewrites only the metadata
blocks (growing into or out of ``PADDING`` where it can), keeps ``STREAMINFO``, ``SEEKTABLE``,
``PICTURE``, ``CUESHEET``, ``APPLICATION`` blocks, the vendor string and every other comment in
order, and never touches the audio frames. A file without a comment block gets one only when a
label is written.

Readers report every comment whose field name contains ``AIGC`` (Vorbis field names are
case-insensitive). An ID3v2 tag some tools prepend to FLAC is skipped and kept, not searched.
"""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from .._io import MAX_METADATA_BYTES, file_size, read_exact
from .._journal import EditPlan
from ..errors import MalformedFileError, TruncatedFileError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._audio import id3v2_size, parse_errors, rewrite_vorbis, vorbis_findings, vorbis_set
from ._stream import copy_range, hash_range

_STREAMINFO = 0
_INVALID_BLOCK = 127
#: More metadata blocks than this is hostile.
_MAX_BLOCKS = 10_000
#: More ID3v2 tags before ``fLaC`` than this is not a FLAC file.
_MAX_ID3 = 16


def _skip_id3(handle: BinaryIO) -> int:
    """Offset of ``fLaC`` after any ID3v2 tags prepended to the stream."""
    pos = 0
    for _ in range(_MAX_ID3):
        handle.seek(pos)
        total = id3v2_size(handle.read(10))
        if total is None:
            return pos
        pos += total
    raise MalformedFileError("too many ID3v2 tags before the FLAC stream")


def _streaminfo_and_audio(handle: BinaryIO) -> tuple[bytes, int, int]:
    """The STREAMINFO body and the byte range ``[start, end)`` of the audio frames."""
    size = file_size(handle)
    start = _skip_id3(handle)
    handle.seek(start)
    if handle.read(4) != b"fLaC":
        raise MalformedFileError("no fLaC marker")
    streaminfo = b""
    for index in range(_MAX_BLOCKS):
        header = handle.read(4)
        if len(header) < 4:
            raise TruncatedFileError("file ends inside the FLAC metadata blocks")
        kind = header[0] & 0x7F
        length = struct.unpack(">I", b"\x00" + header[1:])[0]
        if kind == _INVALID_BLOCK or (index == 0) != (kind == _STREAMINFO):
            raise MalformedFileError(f"FLAC metadata block {index} has type {kind}")
        if kind == _STREAMINFO:
            if length != 34:
                raise MalformedFileError(f"STREAMINFO is {length} bytes, not 34")
            streaminfo = read_exact(handle, length, "STREAMINFO")
        else:
            if handle.tell() + length > size:
                raise TruncatedFileError(f"FLAC metadata block of type {kind} runs past the end of the file")
            handle.seek(length, 1)
        if header[0] & 0x80:
            break
    else:
        raise MalformedFileError(f"more than {_MAX_BLOCKS} FLAC metadata blocks")
    audio_start = handle.tell()
    end = size
    if end - audio_start >= 128:
        handle.seek(end - 128)
        if handle.read(3) == b"TAG":
            end -= 128
    return streaminfo, audio_start, end


def _flac() -> Any:
    """mutagen's FLAC class (untyped), imported when a FLAC file is read or written (it costs start-up time)."""
    import mutagen.flac

    return mutagen.flac.FLAC


@register
class FLAC(Container):
    """Native FLAC (an ID3v2 prefix is tolerated and kept)."""

    name: ClassVar[str] = "flac"
    description: ClassVar[str] = "FLAC audio"
    extensions: ClassVar[tuple[str, ...]] = (".flac",)
    mime_type: ClassVar[str] = "audio/flac"
    media: ClassVar[MediaKind] = MediaKind.AUDIO
    primary_location: ClassVar[str] = "Vorbis comment AIGC"
    #: Checked before MP3, which also claims files that start with an ID3v2 tag.
    priority: ClassVar[int] = 1

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """``fLaC`` at the start, or after prepended ID3v2 tags."""
        if head[:4] == b"fLaC":
            return True
        if id3v2_size(head[:10]) is None:
            return False
        pos = 0
        for _ in range(_MAX_ID3):  # small tags end inside the sniffed bytes: no need to open the file
            if pos + 10 > len(head):
                break
            total = id3v2_size(head[pos : pos + 10])
            if total is None:
                return head[pos : pos + 4] == b"fLaC"
            pos += total
        else:
            return False  # as many tags as _skip_id3 refuses
        try:
            with open(path, "rb") as handle:
                start = _skip_id3(handle)
                handle.seek(start)
                return handle.read(4) == b"fLaC"
        except (OSError, MalformedFileError):
            return False

    def read(self, path: Path) -> list[FoundLabel]:
        """Every ``*AIGC*=`` Vorbis comment."""
        with parse_errors(path, "FLAC metadata"):
            return vorbis_findings(_flac()(path).tags, "Vorbis comment")

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Stream ``src`` to ``dst``, then let mutagen rewrite the metadata blocks of the copy.

        Some old taggers wrote a comment block that declares fewer bytes than its comments fill;
        mutagen reads (and rewrites) the whole comment, so the overflow would vanish from after the
        metadata blocks, where ffmpeg sees it as a (junk) first packet. The bytes after the source's
        declared metadata are put back as they were, so every reader sees the same stream.
        """
        rewrite_vorbis(src, dst, label, "FLAC metadata", _flac())
        with open(src, "rb") as fin, open(dst, "r+b") as fout, parse_errors(src, "FLAC metadata"):
            _info, src_start, _end = _streaminfo_and_audio(fin)
            _info, dst_start, _end = _streaminfo_and_audio(fout)
            if file_size(fout) - dst_start != file_size(fin) - src_start:
                fout.seek(dst_start)
                fout.truncate()
                copy_range(fin, fout, src_start, file_size(fin) - src_start, "FLAC frames")

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """The metadata blocks re-rendered by mutagen (in memory) into their own size: the
        ``PADDING`` block grows or shrinks by what the comment block does. None (a copy) when the
        padding is too small, or mutagen reads the blocks differently on their own (a comment block
        overflowing its declared size)."""
        with open(path, "rb") as handle, parse_errors(path, "FLAC metadata"):
            _info, start, _end = _streaminfo_and_audio(handle)
            total = file_size(handle)
            if start > MAX_METADATA_BYTES:
                return None
            handle.seek(0)
            head = read_exact(handle, start, "FLAC metadata")
        buffer = io.BytesIO(head)
        try:
            audio = _flac()(buffer)
            if audio.tags is None:
                if label is None:
                    return EditPlan((), total)
                audio.add_tags()
            if not vorbis_set(audio.tags, label):
                return EditPlan((), total)
            buffer.seek(0)
            audio.save(buffer, padding=lambda info: info.padding)
        except Exception:  # the copy path, which sees the whole file, decides what it is
            return None
        rendered = buffer.getvalue()
        if len(rendered) != start:
            return None
        return EditPlan(((0, rendered),), total)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over ``b"STREAMINFO"`` + the 34-byte STREAMINFO body (sample rate, channels,
        total samples and the MD5 of the decoded audio) + every byte of the audio frames after the
        last metadata block (a trailing 128-byte ID3v1 tag excluded). Other metadata blocks,
        padding and a prepended ID3v2 tag are left out.
        """
        digest = hashlib.sha256(b"STREAMINFO")
        with open(path, "rb") as handle, parse_errors(path, "FLAC metadata"):
            streaminfo, start, end = _streaminfo_and_audio(handle)
            digest.update(streaminfo)
            hash_range(handle, start, end - start, digest.update, "FLAC frames")
        return digest.digest()
