"""Helpers shared by the audio containers: mutagen error translation, Vorbis comments, ID3v2 tags.

The leading underscore keeps this module out of plugin discovery; it registers nothing.

Vorbis comments (FLAC, Ogg Vorbis/Opus/Speex/FLAC) and ID3v2 tags (MP3, and the ``id3 `` chunk of
WAV) are the two tag systems the TC260 audio guide (TC260-PG-202510A) names, so their label logic
lives here once:

* a **Vorbis comment** label is the entry ``AIGC=<json>``; readers report every entry whose
  (case-insensitive, per the Vorbis spec) field name contains ``AIGC``, as Annex E a) allows any
  field name containing it;
* an **ID3v2** label is a ``TXXX`` frame described ``AIGC``; readers report every ``TXXX`` whose
  description contains ``AIGC`` in any case, and ``TC260:AIGC`` in an XMP packet stored the Adobe
  way (a ``PRIV`` frame owned by ``XMP``), which is where exempi-based tools following the image
  guide's code put it.
"""

from __future__ import annotations

import contextlib
import io
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._guard import hostile_input
from .._io import MAX_METADATA_BYTES, file_size
from ..errors import LimitExceededError, MalformedFileError
from ..label import AIGCLabel
from ..xmp import find_aigc, remove_aigc
from . import FoundLabel
from ._stream import copy_range

_FRAME_ID = re.compile(rb"[A-Z0-9]{3,4}")

#: Vorbis comment field (and ID3 TXXX description, APEv2 key, RIFF chunk ID) we write.
AIGC_KEY = "AIGC"


class _BoundedZlib:
    """Stands in for :mod:`zlib` inside mutagen's ID3 frame reader, the one place mutagen inflates.

    mutagen inflates a compressed frame with an unbounded ``zlib.decompress``: a 1 MB frame of
    deflated zeros became 1 GiB, then several more in text decoding (3 GB, MemoryError). Here a
    frame may inflate to :data:`~aigclabel._io.MAX_METADATA_BYTES`, like any other tag structure.
    """

    error = zlib.error

    @staticmethod
    def decompress(data: bytes, *_args: object) -> bytes:
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, MAX_METADATA_BYTES + 1)
        if len(out) > MAX_METADATA_BYTES:
            raise LimitExceededError(f"an ID3v2 frame inflates past {MAX_METADATA_BYTES} bytes (zlib bomb?)")
        if not inflater.eof:
            raise zlib.error("incomplete or truncated stream")
        return out


def _id3() -> Any:
    """``mutagen.id3`` (untyped), imported when an ID3 tag is parsed or rendered: mutagen costs 10 ms
    of start-up that a CLI run on an image should not pay."""
    import mutagen.id3
    import mutagen.id3._frames

    mutagen.id3._frames.zlib = _BoundedZlib  # type: ignore[assignment,attr-defined]  # bounded inflate, see there
    return mutagen.id3


def is_aigc_name(name: str) -> bool:
    """True for a field name that Annex E a) counts as a label slot (contains ``AIGC``, any case)."""
    return AIGC_KEY.lower() in name.lower()


@contextlib.contextmanager
def parse_errors(path: Path, what: str) -> Iterator[None]:
    """Turn whatever mutagen or the byte parsers raise on corrupt input into a typed error."""
    with hostile_input(path, what):
        yield


def copy_file(src: Path, dst: Path) -> None:
    """Copy ``src`` over ``dst`` in the kernel where it can (``copy_file_range``), else in bounded chunks."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        copy_range(fin, fout, 0, file_size(fin), "file")


# ---------------------------------------------------------------------- Vorbis comments
def vorbis_findings(tags: Any, where: str) -> list[FoundLabel]:
    """Every ``*AIGC*=`` entry of a mutagen ``VComment``, in stored order."""
    if tags is None:
        return []
    return [FoundLabel.from_text(f"{where} {key}", value) for key, value in list(tags) if is_aigc_name(key)]


def vorbis_set(tags: Any, label: AIGCLabel | None) -> bool:
    """Remove every AIGC entry of a mutagen ``VComment``; add ``AIGC=<json>`` unless ``label`` is None.

    Other entries keep their order. Returns True if ``tags`` changed.
    """
    before = list(tags)
    kept = [(key, value) for key, value in before if not is_aigc_name(key)]
    if label is not None:
        kept.append((AIGC_KEY, label.to_json()))
    if kept == before:
        return False
    tags[:] = kept
    return True


def rewrite_vorbis(src: Path, dst: Path, label: AIGCLabel | None, what: str, load: Callable[[Path], Any]) -> None:
    """Stream ``src`` to ``dst``, then let mutagen (``load(dst)``) replace the Vorbis comment of the copy."""
    with parse_errors(src, what):
        copy_file(src, dst)
        audio = load(dst)
        if audio.tags is None:
            if label is None:
                return
            audio.add_tags()
        if vorbis_set(audio.tags, label):
            audio.save(dst)


# ---------------------------------------------------------------------- ID3v2
def id3v2_size(header: bytes) -> int | None:
    """Total size (header, body and footer) of the ID3v2 tag starting ``header``, None if not one."""
    if len(header) < 10 or header[:3] != b"ID3" or header[3] not in (2, 3, 4) or header[4] == 0xFF:
        return None
    size_bytes = header[6:10]
    if any(b & 0x80 for b in size_bytes):
        return None
    size = (size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3]
    footer = 10 if header[3] == 4 and header[5] & 0x10 else 0
    return 10 + size + footer


def _load_id3(data: bytes) -> tuple[Any, int]:
    """Parse a complete ID3v2 tag (header included); returns the tags and the version to save as.

    v2.3 and v2.4 tags keep their version. v2.2 cannot be written by anyone any more, so it becomes
    v2.3, the version every ID3v2 reader understands.
    """
    major = data[3]
    version = 4 if major == 4 else 3
    tags = _id3().ID3(io.BytesIO(data), translate=True, v2_version=version, load_v1=False)
    return tags, version


def id3_findings(data: bytes, where: str) -> list[FoundLabel]:
    """Labels in a complete ID3v2 tag: every ``TXXX`` described ``*AIGC*`` and XMP ``TC260:AIGC``."""
    raw = _raw_findings(data, where)
    if raw is not None:
        return raw
    tags = _id3().ID3(io.BytesIO(data), translate=False, load_v1=False)
    version = f"ID3v2.{tags.version[1]}"
    found: list[FoundLabel] = []
    for frame in tags.values():
        if frame.FrameID in ("TXXX", "TXX") and is_aigc_name(frame.desc):
            for text in frame.text:
                found.append(FoundLabel.from_text(f"{where}{version} TXXX:{frame.desc}", str(text)))
        elif frame.FrameID == "PRIV" and frame.owner == "XMP":
            found.extend(xmp_findings(frame.data, f"{where}{version} PRIV:XMP"))
    return found


def _raw_findings(data: bytes, where: str) -> list[FoundLabel] | None:
    """:func:`id3_findings` read off the raw frames, the way mutagen reads them, for the plain tags
    every write of ours leaves (a quarter of mutagen's parse, which every read-back paid). None sends
    anything else to mutagen: ID3v2.2, what :func:`_raw_tag` refuses, and a label frame that is not
    one Latin-1 or valid UTF-8 value, or that mutagen would merge with another."""
    if data[3] == 2 or (tag := _raw_tag(data)) is None:
        return None
    version = f"ID3v2.{tag.major}"
    found: list[FoundLabel] = []
    seen: set[tuple[str, bytes]] = set()
    for name, body, _raw in tag.frames:
        if name == "TXXX":
            if not body or body[0] not in (0, 3):  # UTF-16 (or no encoding byte): mutagen's case
                if body and is_aigc_name(_text_desc(body)):
                    return None
                continue
            codec = "latin-1" if body[0] == 0 else "utf-8"
            desc_bytes, sep, value = body[1:].partition(b"\0")
            try:
                desc = desc_bytes.decode(codec)
                if not is_aigc_name(desc):
                    continue
                if value.endswith(b"\0"):
                    value = value[:-1]
                if not sep or not value or b"\0" in value or (name, desc_bytes) in seen:
                    return None  # no value, several values or a frame mutagen merges: its own rules
                text = value.decode(codec)
            except UnicodeDecodeError:
                return None
            seen.add((name, desc_bytes))
            found.append(FoundLabel.from_text(f"{where}{version} TXXX:{desc}", text))
        elif name == "PRIV" and body.startswith(b"XMP\0"):
            if (name, body) in seen:
                return None
            seen.add((name, body))
            found.extend(xmp_findings(body[4:], f"{where}{version} PRIV:XMP"))
    return found


def xmp_findings(packet: bytes, where: str) -> list[FoundLabel]:
    """``TC260:AIGC`` values of an XMP packet; an unparsable packet naming TC260 is reported, not raised."""
    try:
        values = find_aigc(packet)
    except MalformedFileError as exc:
        return [FoundLabel(location=f"{where} TC260:AIGC", raw="", error=f"unreadable XMP packet: {exc}")]
    return [FoundLabel.from_text(f"{where} TC260:AIGC", value) for value in values]


def id3_has_label(data: bytes) -> bool:
    """True if the tag carries any label placement :func:`id3_render` would change."""
    return bool(id3_findings(data, ""))


def _syncsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _unsyncsafe(data: bytes) -> int | None:
    """A 4-byte synchsafe integer (7 bits a byte), None if a high bit is set."""
    if len(data) != 4 or any(b & 0x80 for b in data):
        return None
    return (data[0] << 21) | (data[1] << 14) | (data[2] << 7) | data[3]


@dataclass
class _RawTag:
    """An ID3v2 tag split into verbatim frames (what :func:`id3_render` edits without re-encoding)."""

    major: int
    revision: int
    flags: int
    extended: bytes
    frames: list[tuple[str, bytes, bytes]]  # (frame ID, body, the frame's raw bytes)
    size: int  # the header's size field: extended header + frames + padding


def _raw_tag(data: bytes) -> _RawTag | None:
    """The tag's frames byte for byte, or None when it needs mutagen: unsynchronised or compressed
    as a whole, a CRC or padding count in an extended header, or frames that do not parse cleanly."""
    major, revision, flags = data[3], data[4], data[5]
    size = _unsyncsafe(data[6:10])
    if size is None or flags & 0x80 or (major == 2 and flags & 0x40) or 10 + size > len(data):
        return None
    pos, end = 10, 10 + size
    extended = b""
    if major != 2 and flags & 0x40:
        if major == 3:
            return None  # the v2.3 extended header counts the padding, which an edit changes
        ext_size = _unsyncsafe(data[10:14])
        if ext_size is None or ext_size < 6 or 10 + ext_size > end or data[15] & 0x20:
            return None  # v2.4 with a CRC over the frames
        extended, pos = data[10 : 10 + ext_size], 10 + ext_size
    head = 6 if major == 2 else 10
    frames: list[tuple[str, bytes, bytes]] = []
    while pos + head <= end and data[pos] != 0:
        frame_size: int | None
        if major == 2:
            frame_id, frame_size, frame_flags = data[pos : pos + 3], int.from_bytes(data[pos + 3 : pos + 6], "big"), 0
        else:
            frame_id, size_bytes = data[pos : pos + 4], data[pos + 4 : pos + 8]
            frame_size = _unsyncsafe(size_bytes) if major == 4 else int.from_bytes(size_bytes, "big")
            frame_flags = int.from_bytes(data[pos + 8 : pos + 10], "big")
        if frame_size is None or not _FRAME_ID.fullmatch(frame_id):
            return None
        stop = pos + head + frame_size
        if stop > end:
            return None
        name = frame_id.decode("ascii")
        if name in ("TXXX", "TXX", "PRIV", "PRV") and frame_flags & 0xFF:
            return None  # compressed, encrypted or unsynchronised: only mutagen can read it
        frames.append((name, data[pos + head : stop], data[pos:stop]))
        pos = stop
    if any(data[pos:end]):
        return None  # bytes after the frames that are not padding
    return _RawTag(major, revision, flags, extended, frames, size)


def _text_desc(body: bytes) -> str:
    """The description of a TXXX/TXX body (its first, terminated string)."""
    encoding, rest = body[:1], body[1:]
    if encoding in (b"\x01", b"\x02"):
        at = next((i for i in range(0, len(rest) - 1, 2) if rest[i : i + 2] == b"\0\0"), len(rest))
        return rest[:at].decode("utf-16" if encoding == b"\x01" else "utf-16-be", "replace")
    return rest.split(b"\0", 1)[0].decode("utf-8" if encoding == b"\x03" else "latin-1", "replace")


def _raw_frame(major: int, frame_id: str, body: bytes) -> bytes:
    if major == 2:
        return frame_id[:3].encode() + len(body).to_bytes(3, "big") + body
    size = _syncsafe(len(body)) if major == 4 else len(body).to_bytes(4, "big")
    return frame_id.encode() + size + b"\0\0" + body


def _render_raw(tag: _RawTag, label: AIGCLabel | None) -> bytes:
    """``tag`` with its AIGC frames replaced, every other frame kept byte for byte (order, version,
    flags, encodings, empty and multi-value frames), the padding reused when the result fits."""
    kept: list[bytes] = []
    for name, body, raw in tag.frames:
        if name in ("TXXX", "TXX") and is_aigc_name(_text_desc(body)):
            continue
        if name in ("PRIV", "PRV") and body.startswith(b"XMP\0"):
            packet = remove_aigc(body[4:])
            if packet is not body[4:]:
                if packet is not None:
                    kept.append(_raw_frame(tag.major, name, b"XMP\0" + packet))
                continue
        kept.append(raw)
    if label is not None:
        body = b"\0" + AIGC_KEY.encode() + b"\0" + label.to_json().encode("latin-1")
        kept.append(_raw_frame(tag.major, "TXX" if tag.major == 2 else "TXXX", body))
    if not kept:
        return b""
    content = tag.extended + b"".join(kept)
    footer = tag.major == 4 and tag.flags & 0x10
    size = len(content) if footer or len(content) > tag.size else tag.size  # a footer forbids padding
    header = b"ID3" + bytes([tag.major, tag.revision, tag.flags]) + _syncsafe(size)
    out = header + content + bytes(size - len(content))
    return out + (b"3DI" + header[3:] if footer else b"")


def id3_render(data: bytes | None, label: AIGCLabel | None, v1: bytes | None = None) -> bytes:
    """A new ID3v2 tag: ``data`` (a complete tag, or None for none) with its labels replaced.

    Every other frame is kept byte for byte, in order, and the tag keeps its version, flags and
    padding (see :func:`_render_raw`). Only a tag unsynchronised as a whole, with a compressed
    label frame or a v2.3 extended header is re-rendered by mutagen (which may reorder frames and
    converts v2.4-only frames in a v2.3 tag the way ``update_to_v23`` does). Returns ``b""`` when
    nothing would be left, so stripping a tag we created removes it entirely. A new tag is ID3v2.3:
    every ID3v2 reader understands it (v2.4 is still unread by some players and Windows before 10),
    and the ASCII label needs no v2.4-only UTF-8 encoding. ``v1`` (a 128-byte ID3v1 tag of the same
    file) is copied into a new tag first: readers that find a v2 tag stop looking at v1, so title and
    artist would otherwise disappear from them.
    """
    if data and (raw := _raw_tag(data)) is not None:
        return _render_raw(raw, label)
    if data:
        tags, version = _load_id3(data)
    else:
        tags, version = _id3().ID3(), 3
        for frame in (_id3().ParseID3v1(v1, v2_version=3) or {}).values() if v1 else ():
            if any(str(text).strip() for text in getattr(frame, "text", ())):
                tags.add(frame)
    for frame in list(tags.getall("TXXX")):
        if is_aigc_name(frame.desc):
            tags.delall(frame.HashKey)
    for frame in list(tags.getall("PRIV")):
        if frame.owner == "XMP":
            packet = remove_aigc(frame.data)
            if packet is not frame.data:
                tags.delall(frame.HashKey)
                if packet is not None:
                    tags.add(_id3().PRIV(owner="XMP", data=packet))
    if label is not None:
        tags.add(_id3().TXXX(encoding=_id3().Encoding.LATIN1, desc=AIGC_KEY, text=[label.to_json()]))
    if not tags.values() and not tags.unknown_frames:
        return b""
    # A buffer holding only the tag: mutagen rewrites it in place. 128 trailing zero bytes keep
    # mutagen's ID3v1 probe away from the tag's own last bytes; they are cut off afterwards.
    # A v2.4 footer is not part of the size mutagen replaces, so it is left out (the result has none).
    body = data[: len(data) - 10] if data and data[3] == 4 and data[5] & 0x10 else (data or b"")
    buffer = io.BytesIO(body + bytes(128))
    tags.save(buffer, v1=0, v2_version=version)
    rendered = buffer.getvalue()[:-128]
    if id3v2_size(rendered) != len(rendered):
        raise MalformedFileError("re-rendering the ID3v2 tag failed")
    return rendered
