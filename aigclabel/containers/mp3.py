"""MP3 (MPEG-1/2/2.5 audio layer I-III): the label is an ID3v2 ``TXXX`` frame described ``AIGC``.

TC260-PG-202510A stores the bare seven-field JSON in ``TXXX:AIGC``; readers handle v2.3 and v2.4.
The file is treated as three regions that are handled separately, so the MPEG frames are never
parsed or touched::

    [ID3v2 tag(s)] [MPEG audio frames ...] [APEv2 | Lyrics3v2 | appended ID3v2 | ID3v1]

* the first leading ID3v2 tag gets its AIGC placements replaced by one ``TXXX:AIGC`` (``TXX`` in
  v2.2; Latin-1 encoded: the label is ASCII, and Latin-1 is valid in every version). Every other
  frame is kept byte for byte and in order, and the tag keeps its version and flags (see
  :func:`aigclabel.containers._audio.id3_render`). A file without a tag gets a v2.3 tag, the
  version with the widest reader support, holding the ID3v1 fields if the file has an ID3v1 tag;
* the audio region is streamed byte for byte;
* trailing tags are copied verbatim, except that an APEv2 tag or an appended ID3v2 tag carrying an
  AIGC item is rebuilt without it (only one label per file, GB 45438 §6.1 c).

Read reports every ``TXXX`` whose description contains ``AIGC`` (any case) in any ID3v2 tag,
XMP ``TC260:AIGC`` in a ``PRIV:XMP`` frame, and APEv2 items whose key contains ``AIGC``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar

from .._io import COPY_CHUNK, copy_exact, file_size, read_exact
from .._journal import EditPlan
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._audio import id3_findings, id3_has_label, id3_render, id3v2_size, is_aigc_name, parse_errors
from ._stream import copy_range, open_output

# Bitrates in kbit/s by (MPEG version bits, layer bits); index 0 (free format) and 15 are invalid.
_MPEG1 = 3
_BITRATES: dict[tuple[bool, int], tuple[int, ...]] = {
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}

#: How far past the ID3v2 tag (and its zero padding) the first frame may start.
_SYNC_SEARCH = 4096
#: More stacked tags than this is hostile, not a real file.
_MAX_TAGS = 16


def frame_length(header: bytes) -> int | None:
    """Length in bytes of the MPEG audio frame whose 4-byte header is ``header``; None if invalid."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = (header[1] >> 3) & 3
    layer = (header[1] >> 1) & 3
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 3
    if version == 1 or layer == 0 or bitrate_index in (0, 15) or rate_index == 3 or header[3] & 3 == 2:
        return None
    bitrate = _BITRATES[(version == _MPEG1, layer)][bitrate_index] * 1000
    rate = _SAMPLE_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    if layer == 3:  # layer I
        return (12 * bitrate // rate + padding) * 4
    if layer == 1 and version != _MPEG1:  # layer III, MPEG-2/2.5
        return 72 * bitrate // rate + padding
    return 144 * bitrate // rate + padding


def _same_stream(first: bytes, second: bytes) -> bool:
    return first[1] & 0xFE == second[1] & 0xFE and first[2] & 0x0C == second[2] & 0x0C


def _two_frames_at(data: bytes, at: int) -> bool:
    """True if ``data`` holds two consecutive valid frames of the same stream starting at ``at``."""
    length = frame_length(data[at : at + 4])
    if length is None:
        return False
    following = data[at + length : at + length + 4]
    return len(following) == 4 and frame_length(following) is not None and _same_stream(data[at:], following)


def _frames_chain_at(data: bytes, at: int, count: int) -> bool:
    """True if ``count`` consecutive valid frames of one stream start at ``at`` in ``data``."""
    first = data[at : at + 4]
    for _ in range(count):
        length = frame_length(data[at : at + 4])
        if length is None or not _same_stream(first, data[at : at + 4]):
            return False
        at += length
    return True


def _junk_then_mpeg(data: bytes) -> bool:
    """True if MPEG audio (three chained frames, as ffmpeg's probe wants) starts within ``data``
    after bytes that are not audio: a download or recorder header, or a damaged start."""
    return any(data[at] == 0xFF and _frames_chain_at(data, at, 3) for at in range(len(data) - 4))


def _looks_like_mpeg(data: bytes, *, tagged: bool) -> bool:
    """Whether ``data`` (what follows the ID3v2 tags, or the file start) begins MPEG audio.

    Zero padding is skipped. Untagged data must start with two consecutive frames: a lone 11-bit
    sync is common in other binary data. After an ID3v2 tag (strong evidence already) one valid
    header will do, or two consecutive frames within the next few KiB (encoders that leave junk).
    """
    start = len(data) - len(data.lstrip(b"\x00"))
    if not tagged:
        return _two_frames_at(data, start)
    if frame_length(data[start : start + 4]) is not None:
        return True
    end = min(len(data), start + _SYNC_SEARCH)
    return any(data[at] == 0xFF and _two_frames_at(data, at) for at in range(start, end))


@dataclass
class _Layout:
    size: int
    leading: list[tuple[int, int]] = field(default_factory=list)
    audio_start: int = 0
    audio_end: int = 0
    trailing: list[tuple[str, int, int]] = field(default_factory=list)


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    return handle.read(size)


def _layout(handle: BinaryIO) -> _Layout:
    """Locate the leading tags, the audio region and the trailing tags (no frame parsing)."""
    size = file_size(handle)
    layout = _Layout(size=size)
    pos = 0
    while (total := id3v2_size(_read_at(handle, pos, 10))) is not None:
        if pos + total > size:
            raise TruncatedFileError(f"file ends inside the ID3v2 tag at {pos} ({total} bytes declared)")
        layout.leading.append((pos, total))
        pos += total
        if len(layout.leading) > _MAX_TAGS:
            raise LimitExceededError(f"more than {_MAX_TAGS} stacked ID3v2 tags")
    layout.audio_start = end = pos
    if end + 128 <= size and _read_at(handle, size - 128, 3) == b"TAG":
        layout.trailing.append(("ID3v1", size - 128, 128))
        size -= 128
    for _ in range(_MAX_TAGS):
        room = size - end
        footer = _read_at(handle, size - 32, 32) if room >= 32 else b""
        tail = _read_at(handle, size - 15, 15) if room >= 15 else b""
        if footer[:8] == b"APETAGEX":
            _version, tag_size, _count, flags = struct.unpack("<4I", footer[8:24])
            total = tag_size + (32 if flags & 0x80000000 else 0)
            if tag_size < 32 or total > room:
                raise MalformedFileError(f"APEv2 tag declares {total} bytes, more than the file holds")
            kind = "APEv2"
        elif tail[6:] == b"LYRICS200" and tail[:6].isdigit():
            total = int(tail[:6]) + 15
            if total > room or _read_at(handle, size - total, 11) != b"LYRICSBEGIN":
                raise MalformedFileError("Lyrics3v2 tag size does not match its contents")
            kind = "Lyrics3v2"
        elif room >= 10 and (appended := _read_at(handle, size - 10, 10))[:3] == b"3DI":
            tag_size = id3v2_size(b"ID3" + appended[3:])
            if tag_size is None or tag_size > room or _read_at(handle, size - tag_size, 3) != b"ID3":
                raise MalformedFileError("appended ID3v2 tag footer does not match a tag")
            total, kind = tag_size, "appended ID3v2"
        else:
            break
        layout.trailing.insert(0, (kind, size - total, total))
        size -= total
    else:
        raise MalformedFileError("too many trailing tags")
    layout.audio_end = size
    return layout


def _ape_items(tag: bytes) -> tuple[bytes, int, list[tuple[str, bytes, bytes]]]:
    """Header-less footer fields and items ``(key, value, raw item bytes)`` of an APEv2 tag."""
    footer = tag[-32:]
    _version, _size, count, flags = struct.unpack("<4I", footer[8:24])
    body = tag[32:-32] if flags & 0x80000000 else tag[:-32]
    items: list[tuple[str, bytes, bytes]] = []
    pos = 0
    for _ in range(count):
        value_size, _flags = struct.unpack("<II", body[pos : pos + 8])
        key_end = body.index(b"\x00", pos + 8)
        key = body[pos + 8 : key_end].decode("ascii")
        value_end = key_end + 1 + value_size
        if value_end > len(body):
            raise MalformedFileError(f"APEv2 item {key!r} runs past the end of the tag")
        items.append((key, body[key_end + 1 : value_end], body[pos:value_end]))
        pos = value_end
    return footer, flags, items


def _ape_without_labels(tag: bytes) -> bytes:
    footer, flags, items = _ape_items(tag)
    kept = [raw for key, _value, raw in items if not is_aigc_name(key)]
    if len(kept) == len(items):
        return tag
    if not kept:
        return b""
    body = b"".join(kept)
    fields = struct.pack("<4I", struct.unpack("<I", footer[8:12])[0], len(body) + 32, len(kept), flags & ~0x20000000)
    new_footer = b"APETAGEX" + fields + bytes(8)
    if flags & 0x80000000:
        header_fields = fields[:12] + struct.pack("<I", flags | 0x20000000)
        return b"APETAGEX" + header_fields + bytes(8) + body + new_footer
    return body + new_footer


@register
class MP3(Container):
    """MPEG audio with ID3v2 / APEv2 / ID3v1 tags."""

    name: ClassVar[str] = "mp3"
    description: ClassVar[str] = "MP3 audio"
    extensions: ClassVar[tuple[str, ...]] = (".mp3", ".mp2", ".mpga")
    mime_type: ClassVar[str] = "audio/mpeg"
    media: ClassVar[MediaKind] = MediaKind.AUDIO
    primary_location: ClassVar[str] = "ID3v2 TXXX:AIGC"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """An ID3v2 tag followed by MPEG frames, or two consecutive valid frames at the start, or
        (for a ``.mp3``/``.mp2``/``.mpga`` name) three chained frames within the first 4 KiB after
        other bytes: players skip such junk, so the file is labelled with the junk kept as it is.

        An ID3v2-tagged file whose audio is FLAC or AAC (ADTS has layer bits 00) is left alone.
        """
        if id3v2_size(head[:10]) is None:
            if _looks_like_mpeg(head, tagged=False):
                return True
            # Leading junk: only trusted for an MP3 file name, a lone frame chain is weak evidence.
            return path.suffix.lower() in cls.extensions and _junk_then_mpeg(head)
        try:
            with open(path, "rb") as handle:
                pos = 0
                for _ in range(_MAX_TAGS):
                    total = id3v2_size(_read_at(handle, pos, 10))
                    if total is None:
                        break
                    pos += total
                after = _read_at(handle, pos, 2 * _SYNC_SEARCH)
        except OSError:
            return False
        if id3v2_size(after[:10]) is not None:
            return True  # more stacked tags than any real file has: ours, and reading it reports the limit
        if not after.strip(b"\x00"):
            return True  # a tag and nothing else (or a file cut short inside it): still ours to report
        if after.lstrip(b"\x00")[:4] == b"fLaC":
            return False
        return _looks_like_mpeg(after, tagged=True)

    def read(self, path: Path) -> list[FoundLabel]:
        """Labels in every ID3v2 tag and in an APEv2 tag, in file order."""
        found: list[FoundLabel] = []
        with open(path, "rb") as handle, parse_errors(path, "MP3 tag"):
            layout = _layout(handle)
            for index, (offset, size) in enumerate(layout.leading):
                handle.seek(offset)
                where = "" if index == 0 else f"ID3v2 tag #{index + 1}: "
                found.extend(id3_findings(read_exact(handle, size, "ID3v2 tag"), where))
            for kind, offset, size in layout.trailing:
                handle.seek(offset)
                if kind == "APEv2":
                    _footer, _flags, items = _ape_items(read_exact(handle, size, "APEv2 tag"))
                    found.extend(
                        FoundLabel.from_text(f"APEv2 {key}", value) for key, value, _ in items if is_aigc_name(key)
                    )
                elif kind == "appended ID3v2":
                    found.extend(id3_findings(read_exact(handle, size, "ID3v2 tag"), "appended "))
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """First ID3v2 tag re-rendered with ``label``; audio and other tags copied (labels removed)."""
        with open(src, "rb") as fin, open_output(dst) as fout, parse_errors(src, "MP3 tag"):
            layout = _layout(fin)
            tags = []
            for offset, size in layout.leading:
                fin.seek(offset)
                tags.append(read_exact(fin, size, "ID3v2 tag"))
            first = tags[0] if tags else None
            if label is None and (first is None or not id3_has_label(first)):
                fout.write(first or b"")
            else:
                v1 = next((offset for kind, offset, _size in layout.trailing if kind == "ID3v1"), None)
                fout.write(id3_render(first, label, _read_at(fin, v1, 128) if v1 is not None and not tags else None))
            for extra in tags[1:]:
                fout.write(id3_render(extra, None) if id3_has_label(extra) else extra)
            copy_range(fin, fout, layout.audio_start, layout.audio_end - layout.audio_start, "MPEG audio")
            for kind, offset, size in layout.trailing:
                fin.seek(offset)
                if kind == "APEv2":
                    fout.write(_ape_without_labels(read_exact(fin, size, "APEv2 tag")))
                elif kind == "appended ID3v2":
                    tag = read_exact(fin, size, "ID3v2 tag")
                    fout.write(id3_render(tag, None) if id3_has_label(tag) else tag)
                else:
                    copy_exact(fin, fout, size, kind)

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """The first ID3v2 tag re-rendered into its own size (its padding absorbs the label), when no
        other tag carries a label; else None (a copy)."""
        with open(path, "rb") as handle, parse_errors(path, "MP3 tag"):
            layout = _layout(handle)
            if not layout.leading:
                return None  # a new tag in front would move the audio
            tags = []
            for offset, size in layout.leading:
                handle.seek(offset)
                tags.append(read_exact(handle, size, "ID3v2 tag"))
            if any(id3_has_label(extra) for extra in tags[1:]):
                return None
            for kind, offset, size in layout.trailing:
                handle.seek(offset)
                if kind == "APEv2":
                    tag = read_exact(handle, size, "APEv2 tag")
                    if _ape_without_labels(tag) is not tag:
                        return None
                elif kind == "appended ID3v2" and id3_has_label(read_exact(handle, size, "ID3v2 tag")):
                    return None
        first = tags[0]
        if label is None and not id3_has_label(first):
            return EditPlan((), layout.size)
        rendered = id3_render(first, label)
        if len(rendered) != len(first):
            return None
        return EditPlan(((layout.leading[0][0], rendered),), layout.size)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of the audio region: every byte between the leading ID3v2 tag(s) and the trailing
        tags (APEv2, Lyrics3v2, appended ID3v2, ID3v1), with zero padding before the first frame
        skipped because some taggers leave it outside the tag. The Xing/LAME info frame counts as
        audio: it is a frame, and no tag editor changes it.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as handle, parse_errors(path, "MP3 tag"):
            layout = _layout(handle)
            handle.seek(layout.audio_start)
            remaining = layout.audio_end - layout.audio_start
            leading = True
            while remaining:
                chunk = handle.read(min(COPY_CHUNK, remaining))
                if not chunk:
                    raise TruncatedFileError("file shrank while hashing")
                remaining -= len(chunk)
                if leading:
                    stripped = chunk.lstrip(b"\x00")
                    leading = not stripped
                    chunk = stripped
                digest.update(chunk)
        return digest.digest()
