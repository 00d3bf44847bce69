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
from ._audio import AIGC_KEY, id3v2_size, is_aigc_name, parse_errors, rewrite_vorbis, vorbis_findings, vorbis_set
from ._stream import copy_range, hash_range

_STREAMINFO = 0
_PADDING = 1
_APPLICATION = 2
_SEEKTABLE = 3
_VORBIS_COMMENT = 4
_PICTURE = 6
_INVALID_BLOCK = 127
#: More metadata blocks than this is hostile.
_MAX_BLOCKS = 10_000
#: More ID3v2 tags before ``fLaC`` than this is not a FLAC file.
_MAX_ID3 = 16
#: The first bytes read in one go; FLAC metadata usually ends inside them (ffmpeg's padding is 8 KiB).
_HEAD = 32 << 10


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


def _vorbis_entries(body: bytes) -> tuple[bytes, list[bytes]] | None:
    """The vendor part (length and string) and the raw entries of a FLAC comment block, or None
    when they do not fill the block exactly (mutagen then reads past the declared size)."""
    if len(body) < 8:
        return None
    pos = 4 + int.from_bytes(body[:4], "little")
    if pos + 4 > len(body):
        return None
    vendor, count, pos = body[:pos], int.from_bytes(body[pos : pos + 4], "little"), pos + 4
    entries = []
    for _ in range(count):
        if pos + 4 > len(body):
            return None
        end = pos + 4 + int.from_bytes(body[pos : pos + 4], "little")
        if end > len(body):
            return None
        entries.append(body[pos + 4 : end])
        pos = end
    return (vendor, entries) if pos == len(body) else None


def _mutagen_field(entry: bytes) -> tuple[str, str] | None:
    """The ``(key, value)`` mutagen reads from the comment ``entry`` when the key names a label slot
    (``*AIGC*``), else None: text decoded leniently, the key before the first ``=`` with other
    bytes than ASCII as ``?``, and dropped unless printable."""
    key, sep, value = entry.decode("utf-8", "replace").partition("=")
    key = key.encode("ascii", "replace").decode("ascii")
    if sep and key and all(" " <= c <= "}" and c != "=" for c in key) and is_aigc_name(key):
        return key, value
    return None


def _is_label_entry(entry: bytes) -> bool:
    return _mutagen_field(entry) is not None


def _raw_findings(head: bytes) -> list[FoundLabel] | None:
    """What :meth:`FLAC.read` finds (mutagen's reading), off the raw blocks, or None for mutagen to
    read: an ID3v2 prefix, a block mutagen parses and may refuse (CUESHEET, a second SEEKTABLE,
    unknown types), sample rate 0, or a comment block that its entries do not fill."""
    blocks = _raw_blocks(head) if head[:4] == b"fLaC" else None
    if blocks is None or int.from_bytes(head[18:21], "big") >> 4 == 0:  # STREAMINFO's 20-bit sample rate
        return None
    kinds = [kind for _at, kind, _length in blocks]
    if not set(kinds) <= {_STREAMINFO, _PADDING, _APPLICATION, _SEEKTABLE, _VORBIS_COMMENT, _PICTURE}:
        return None
    if kinds.count(_SEEKTABLE) > 1:
        return None
    comment = next((b for b in blocks if b[1] == _VORBIS_COMMENT), None)
    if comment is None:
        return []
    at, _kind, length = comment
    parsed = _vorbis_entries(head[at + 4 : at + 4 + length])
    if parsed is None:
        return None
    fields = (_mutagen_field(entry) for entry in parsed[1])
    return [FoundLabel.from_text(f"Vorbis comment {key}", value) for key, value in filter(None, fields)]


def _picture_fits(body: bytes) -> bool:
    """A PICTURE block whose fields fill its declared size (mutagen parses, not trusts, that size)."""
    if len(body) < 32:
        return False
    pos = 8 + int.from_bytes(body[4:8], "big")
    if pos + 4 > len(body):
        return False
    pos += 4 + int.from_bytes(body[pos : pos + 4], "big") + 16
    return pos + 4 <= len(body) and pos + 4 + int.from_bytes(body[pos : pos + 4], "big") == len(body)


def _raw_blocks(head: bytes) -> list[tuple[int, int, int]] | None:
    """``(offset, type, length)`` of each metadata block in ``head`` (the file's first bytes), or
    None: metadata past ``head``, a block whose size mutagen would not trust (a PICTURE whose fields
    do not fill it), or anything :func:`_streaminfo_and_audio` would refuse."""
    pos = 0
    for _ in range(_MAX_ID3):
        tag = id3v2_size(head[pos : pos + 10])
        if tag is None:
            break
        pos += tag
    if head[pos : pos + 4] != b"fLaC":
        return None
    pos += 4
    blocks: list[tuple[int, int, int]] = []
    while True:
        if pos + 4 > len(head) or len(blocks) >= _MAX_BLOCKS:
            return None
        kind, length = head[pos] & 0x7F, int.from_bytes(head[pos + 1 : pos + 4], "big")
        if kind == _INVALID_BLOCK or (not blocks) != (kind == _STREAMINFO) or (kind == _STREAMINFO and length != 34):
            return None
        if pos + 4 + length > len(head):
            return None
        if kind == _PICTURE and not _picture_fits(head[pos + 4 : pos + 4 + length]):
            return None
        blocks.append((pos, kind, length))
        pos += 4 + length
        if head[blocks[-1][0]] & 0x80:
            return blocks


def _raw_plan(head: bytes, total: int, label: AIGCLabel | None) -> EditPlan | None:
    """The comment block re-rendered byte for byte from ``head`` (every other entry and block kept
    as it is, the ``PADDING`` after it resized), without mutagen's parse and render, which cost more
    than mutagen's whole save; None leaves the file to the mutagen plan (see :func:`_raw_blocks`;
    also no comment block, or no padding after it)."""
    blocks = _raw_blocks(head)
    if blocks is None:
        return None
    comment = next((b for b in blocks if b[1] == _VORBIS_COMMENT), None)
    padding = next((b for b in blocks if comment is not None and b[1] == _PADDING and b[0] > comment[0]), None)
    if comment is None or padding is None:
        return None
    at, _kind, length = comment
    parsed = _vorbis_entries(head[at + 4 : at + 4 + length])
    if parsed is None:
        return None
    vendor, entries = parsed
    kept = [entry for entry in entries if not _is_label_entry(entry)]
    if label is not None:
        kept.append(f"{AIGC_KEY}={label.to_json()}".encode())
    if kept == entries:
        return EditPlan((), total)
    body = vendor + len(kept).to_bytes(4, "little") + b"".join(len(e).to_bytes(4, "little") + e for e in kept)
    if len(body) == length:  # a new ProduceID: only the comment changes, the padding stays
        return EditPlan(((at + 4, body),), total)
    pad_at, _kind, pad_length = padding
    new_pad = pad_length - (len(body) - length)
    if new_pad < 0 or len(body) >= 1 << 24:
        return None
    rendered = b"".join(
        (
            head[at : at + 1] + len(body).to_bytes(3, "big"),
            body,
            head[at + 4 + length : pad_at + 1],
            new_pad.to_bytes(3, "big"),
            bytes(new_pad),
        )
    )
    return EditPlan(((at, rendered),), total)


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
            with open(path, "rb") as handle:
                found = _raw_findings(handle.read(_HEAD))
            if found is not None:
                return found
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
            planned = _raw_plan(handle.read(_HEAD), file_size(handle), label)
            if planned is not None:
                return planned
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
