"""FLV: the label as key ``"AIGC"`` (a string) of the ``onMetaData`` script tag's AMF0 array.

Placement (TC260-PG-20257A): the ``onMetaData`` script-data tag, an AMF0 ECMA array, gains the key
``AIGC`` whose value is the bare seven-field JSON as an AMF0 string (a long string past 65535
bytes). ffprobe shows it as a format tag. Readers report an ``AIGC``-named key in every
``onMetaData`` tag, so a second label is visible; writing and stripping leave only the first.

The file is streamed tag by tag: rewritten script tags get a fresh PreviousTagSize, every later tag
moves by the size difference, and the absolute byte offsets that ``onMetaData`` may carry
(``keyframes.filepositions`` and ``lastkeyframelocation``, written by ``ffmpeg -flvflags add_keyframe_index``, yamdi and
others) are moved with them; ``filesize`` is updated too. Audio and video tags are copied as they
are. A file without ``onMetaData`` gets one right after the header. A file that ends inside an
audio or video tag (a recording cut short; players play up to it) is labelled the same way, the
cut tag copied as it is.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .._io import MAX_METADATA_BYTES, file_size
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError, WriteNotSupportedError
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._stream import copy_range, hash_range, open_output

KEY_NAME = "AIGC"
SCRIPT = 18
AUDIO = 8
VIDEO = 9
MAX_TAGS = 20_000_000
MAX_AMF_DEPTH = 32
MAX_AMF_ITEMS = 1_000_000

# ---------------------------------------------------------------------------- AMF0
#: An AMF0 value as (type marker, Python value); objects keep their key order as a list of pairs.
AmfValue = tuple[int, Any]
NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED, REFERENCE, ECMA, END, STRICT, DATE, LONG_STRING = (
    0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12,
)  # fmt: skip


class _AmfReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.items = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise MalformedFileError("AMF0 data in a script tag is cut off")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def key(self) -> str:
        (size,) = struct.unpack(">H", self.take(2))
        return self.take(size).decode("utf-8", "replace")

    def pairs(self, depth: int, count: int | None = None) -> list[tuple[str, AmfValue]]:
        out: list[tuple[str, AmfValue]] = []
        while True:
            if self.pos + 3 <= len(self.data) and self.data[self.pos : self.pos + 3] == b"\0\0\x09":
                self.pos += 3
                return out
            if count is not None and len(out) >= count and self.pos >= len(self.data):
                return out  # some writers omit the end marker of an ECMA array
            name = self.key()
            out.append((name, self.value(depth + 1)))
            self.items += 1
            if self.items > MAX_AMF_ITEMS:
                raise LimitExceededError("script tag holds too many AMF0 values")

    def value(self, depth: int = 0) -> AmfValue:
        if depth > MAX_AMF_DEPTH:
            raise MalformedFileError("AMF0 values nest too deeply")
        marker = self.take(1)[0]
        if marker == NUMBER:
            return (NUMBER, struct.unpack(">d", self.take(8))[0])
        if marker == BOOLEAN:
            return (BOOLEAN, bool(self.take(1)[0]))
        if marker == STRING:
            return (STRING, self.key())
        if marker == LONG_STRING:
            (size,) = struct.unpack(">I", self.take(4))
            return (LONG_STRING, self.take(size).decode("utf-8", "replace"))
        if marker in (NULL, UNDEFINED):
            return (marker, None)
        if marker == REFERENCE:
            return (REFERENCE, self.take(2))
        if marker == OBJECT:
            return (OBJECT, self.pairs(depth))
        if marker == ECMA:
            (count,) = struct.unpack(">I", self.take(4))
            return (ECMA, self.pairs(depth, count))
        if marker == STRICT:
            (count,) = struct.unpack(">I", self.take(4))
            if count > len(self.data) - self.pos:
                raise MalformedFileError(f"AMF0 strict array claims {count} values, more than fit")
            values: list[AmfValue] = []
            for _ in range(count):
                values.append(self.value(depth + 1))
                self.items += 1
                if self.items > MAX_AMF_ITEMS:
                    raise LimitExceededError("script tag holds too many AMF0 values")
            return (STRICT, values)
        if marker == DATE:
            stamp, zone = struct.unpack(">dh", self.take(10))
            return (DATE, (stamp, zone))
        raise MalformedFileError(f"unsupported AMF0 type marker {marker} in a script tag")


def _key_bytes(name: str) -> bytes:
    raw = name.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise WriteNotSupportedError("AMF0 key longer than 65535 bytes")
    return struct.pack(">H", len(raw)) + raw


def amf_encode(value: AmfValue) -> bytes:
    """Serialise one AMF0 value (the inverse of the reader, byte for byte)."""
    marker, body = value
    head = bytes([marker])
    if marker == NUMBER:
        return head + struct.pack(">d", body)
    if marker == BOOLEAN:
        return head + (b"\1" if body else b"\0")
    if marker in (STRING, LONG_STRING):
        raw = str(body).encode("utf-8")
        if len(raw) > 0xFFFF:
            return bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
        return bytes([STRING]) + struct.pack(">H", len(raw)) + raw
    if marker in (NULL, UNDEFINED):
        return head
    if marker == REFERENCE:
        assert isinstance(body, bytes)
        return head + body
    if marker in (OBJECT, ECMA):
        assert isinstance(body, list)
        pairs = b"".join(_key_bytes(k) + amf_encode(v) for k, v in body)
        count = struct.pack(">I", len(body)) if marker == ECMA else b""
        return head + count + pairs + b"\0\0\x09"
    if marker == STRICT:
        assert isinstance(body, list)
        return head + struct.pack(">I", len(body)) + b"".join(amf_encode(v) for v in body)
    if marker == DATE:
        assert isinstance(body, tuple)
        return head + struct.pack(">dh", *body)
    raise WriteNotSupportedError(f"cannot re-encode AMF0 type {marker}")


def parse_script(data: bytes) -> tuple[str, AmfValue | None, bytes]:
    """(name, first value, unparsed trailing bytes) of a script tag body."""
    reader = _AmfReader(data)
    first = reader.value()
    if first[0] != STRING:
        raise MalformedFileError("script tag does not start with a string name")
    name = str(first[1])
    if reader.pos >= len(data):
        return name, None, b""
    value = reader.value()
    return name, value, data[reader.pos :]


# ---------------------------------------------------------------------------- tags
@dataclass
class Tag:
    """An FLV tag: ``offset`` of its 11-byte header; ``size`` is the data size."""

    type: int
    offset: int
    size: int

    @property
    def end(self) -> int:
        """Offset after the tag's trailing PreviousTagSize."""
        return self.offset + 11 + self.size + 4


@dataclass
class Layout:
    header_end: int  # offset of the first tag (after PreviousTagSize0)
    tags: list[Tag]
    total: int
    cut: int | None = None  # offset of an audio/video tag the file ends inside (a recording cut short)


def scan(handle: BinaryIO, only_script: bool = False) -> Layout:
    """Every tag's type, position and size (headers only)."""
    total = file_size(handle)
    handle.seek(0)
    head = handle.read(9)
    if len(head) < 9 or head[:3] != b"FLV":
        raise MalformedFileError("not an FLV file")
    (data_offset,) = struct.unpack_from(">I", head, 5)
    if data_offset < 9 or data_offset + 4 > total:
        raise MalformedFileError(f"FLV header size {data_offset} is impossible")
    pos = data_offset + 4
    tags: list[Tag] = []
    while pos < total:
        handle.seek(pos)
        raw = handle.read(11)
        tag = Tag(raw[0] & 0x1F, pos, int.from_bytes(raw[1:4], "big"))
        if (len(raw) < 11 or tag.end > total) and tag.type in (AUDIO, VIDEO):
            # A recording cut short inside an audio/video tag: players play up to it. It is kept as is.
            return Layout(data_offset + 4, tags, total, cut=pos)
        if len(raw) < 11:
            raise TruncatedFileError(f"file ends inside the FLV tag header at byte {pos}")
        if tag.end > total:
            raise TruncatedFileError(f"FLV tag at byte {pos} declares {tag.size} bytes, beyond the end of the file")
        if not only_script or tag.type == SCRIPT:
            tags.append(tag)
        if len(tags) > MAX_TAGS:
            raise LimitExceededError(f"more than {MAX_TAGS} FLV tags")
        pos = tag.end
    return Layout(data_offset + 4, tags, total)


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    if size > MAX_METADATA_BYTES:
        raise LimitExceededError(f"script tag of {size} bytes is over the {MAX_METADATA_BYTES} byte limit")
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise TruncatedFileError("file ends inside a script tag")
    return data


def _pairs(value: AmfValue | None) -> list[tuple[str, AmfValue]] | None:
    if value is not None and value[0] in (ECMA, OBJECT):
        assert isinstance(value[1], list)
        return value[1]
    return None


def _text(value: AmfValue) -> str | None:
    return str(value[1]) if value[0] in (STRING, LONG_STRING) else None


def _script_tag(header: bytes, body: bytes) -> bytes:
    if len(body) > 0xFFFFFF:
        raise WriteNotSupportedError("the onMetaData tag would exceed the 16 MiB FLV tag size")
    tag = header[:1] + len(body).to_bytes(3, "big") + header[4:11] + body
    return tag + struct.pack(">I", len(tag))


def _move_positions(pairs: list[tuple[str, AmfValue]], shift: Callable[[int], int]) -> None:
    for index, (key, value) in enumerate(pairs):
        if key == "lastkeyframelocation" and value[0] == NUMBER and math.isfinite(value[1]):
            pairs[index] = (key, (NUMBER, float(shift(int(value[1])))))
        if key == "keyframes":
            inner = _pairs(value)
            for sub_key, sub_value in inner or ():
                if sub_key == "filepositions" and sub_value[0] == STRICT:
                    assert isinstance(sub_value[1], list)
                    for i, item in enumerate(sub_value[1]):
                        if item[0] == NUMBER and isinstance(item[1], float) and math.isfinite(item[1]):
                            sub_value[1][i] = (NUMBER, float(shift(int(item[1]))))


@register
class FLVContainer(Container):
    """Flash Video (FLV)."""

    name = "flv"
    description = "FLV video"
    extensions = (".flv",)
    mime_type = "video/x-flv"
    media = MediaKind.VIDEO
    primary_location = "onMetaData AMF0 key AIGC"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """``FLV`` signature, version 1."""
        return head[:4] == b"FLV\x01"

    def read(self, path: Path) -> list[FoundLabel]:
        """``AIGC`` keys of every ``onMetaData`` script tag."""
        found: list[FoundLabel] = []
        with open(path, "rb") as handle:
            layout = scan(handle, only_script=True)
            for number, tag in enumerate(layout.tags):
                name, value, _ = parse_script(_read(handle, tag.offset + 11, tag.size))
                for key, item in _pairs(value) or [] if name == "onMetaData" else []:
                    text = _text(item)
                    if KEY_NAME in key and text is not None:
                        found.append(FoundLabel.from_text(f"script tag #{number} {name}/{key}", text))
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Rewrite the onMetaData tag(s), stream the rest, move absolute keyframe positions."""
        with open(src, "rb") as handle:
            layout = scan(handle, only_script=True)
            edits: dict[int, tuple[bytes, str, AmfValue, bytes]] = {}  # tag offset -> (header, name, value, rest)
            primary: int | None = None
            for tag in layout.tags:
                data = _read(handle, tag.offset, 11 + tag.size)
                name, value, rest = parse_script(data[11:])
                pairs = _pairs(value)
                if name != "onMetaData" or pairs is None or value is None:
                    continue
                kept = [(k, v) for k, v in pairs if KEY_NAME not in k]
                if primary is None:
                    primary = tag.offset
                elif len(kept) == len(pairs):
                    continue
                edits[tag.offset] = (data[:11], name, (value[0], kept), rest)
            inserted = b""
            if label is not None:
                if primary is None:
                    entry = (ECMA, [(KEY_NAME, (STRING, label.to_json()))])
                    body = amf_encode((STRING, "onMetaData")) + amf_encode(entry)
                    inserted = _script_tag(bytes([SCRIPT]) + bytes(10), body)
                else:
                    header, name, value, rest = edits[primary]
                    assert isinstance(value[1], list)
                    value[1].append((KEY_NAME, (STRING, label.to_json())))
            # New sizes do not depend on the positions (AMF numbers are fixed-width), so one pass suffices.
            sizes = {
                offset: len(self._encode(header, name, value, rest))
                for offset, (header, name, value, rest) in edits.items()
            }
            starts: list[int] = [layout.header_end]
            shifts: list[int] = [len(inserted)]
            running = len(inserted)
            for tag in layout.tags:
                if tag.offset in sizes:
                    running += sizes[tag.offset] - (tag.end - tag.offset)
                    starts.append(tag.end)
                    shifts.append(running)
            new_total = layout.total + running

            def shift(position: int) -> int:
                moved = position
                for start, delta in zip(starts, shifts, strict=True):
                    if position >= start:
                        moved = position + delta
                return moved

            with open_output(dst) as out:
                copy_range(handle, out, 0, layout.header_end, "FLV header")
                out.write(inserted)
                pos = layout.header_end
                for offset in sorted(edits):
                    header, name, value, rest = edits[offset]
                    pairs = _pairs(value)
                    assert pairs is not None
                    _move_positions(pairs, shift)
                    for i, (key, item) in enumerate(pairs):
                        if key == "filesize" and item[0] == NUMBER:
                            pairs[i] = (key, (NUMBER, float(new_total)))
                    data = self._encode(header, name, value, rest)
                    if len(data) != sizes[offset]:
                        raise MalformedFileError("onMetaData changed size while moving positions")
                    copy_range(handle, out, pos, offset - pos, "FLV tags")
                    out.write(data)
                    pos = next(t.end for t in layout.tags if t.offset == offset)
                copy_range(handle, out, pos, layout.total - pos, "FLV tags")

    @staticmethod
    def _encode(header: bytes, name: str, value: AmfValue, rest: bytes) -> bytes:
        return _script_tag(header, amf_encode((STRING, name)) + amf_encode(value) + rest)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over every audio and video tag (11-byte header and data), in file order.

        Script tags (metadata) and PreviousTagSize fields are left out, so relabelling never
        changes the digest. The bytes of a tag the file ends inside count as they are.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            layout = scan(handle)
            for tag in layout.tags:
                if tag.type in (AUDIO, VIDEO):
                    hash_range(handle, tag.offset, 11 + tag.size, digest.update, "FLV tag")
            if layout.cut is not None:
                hash_range(handle, layout.cut, layout.total - layout.cut, digest.update, "FLV tag")
        return digest.digest()
