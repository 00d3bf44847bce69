"""GIF87a/89a: the label as XMP ``TC260:AIGC`` in an ``XMP DataXMP`` Application Extension.

Placement follows TC260-PG-20259A and XMP Specification Part 3 §1.1.2: Application Extension
(0x21 0xFF) with an 11-byte block ``XMP Data`` + ``XMP``, then the raw UTF-8 packet (not split into
sub-blocks) followed by the 258-byte "magic trailer" 0x01, 0xFF, 0xFE ... 0x00, 0x00. A reader
that walks the packet as if it were sub-blocks always lands on the final 0x00, so XMP-unaware
decoders skip it.

A Comment Extension (0x21 0xFE) whose text is label JSON is read and reported as a placement of
its own; :meth:`GifContainer.rewrite` removes it so exactly one label remains (GB 45438 §6.1 c).

The file is walked block by block; only XMP and comment extensions are loaded. An existing XMP
extension is edited where it is. A new one goes right after the Global Color Table and the
application extensions that immediately follow it (NETSCAPE2.0 loop...), ahead of the first image
or other extension: some decoders honour the loop block only in that first position, and Exempi
(python-xmp-toolkit, the TC260 guide's own tool) cannot read an XMP block that precedes another
application extension. Image data, Graphic Control Extensions, the NETSCAPE2.0 loop extension and
every other block are copied byte for byte. Extensions do not exist in GIF87a, so labelling a
GIF87a file also changes its version bytes to ``GIF89a``; the payload digest does not cover them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .._io import MAX_METADATA_BYTES, file_size, read_exact
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError
from ..label import AIGCLabel, looks_like_label_json
from ..xmp import TC260_NS, find_aigc, remove_aigc, set_aigc
from . import Container, FoundLabel, MediaKind, register
from ._stream import copy_range, hash_range, open_output

XMP_APP_ID = b"XMP DataXMP"
#: XMP Part 3 §1.1.2: appended to the raw packet so sub-block walkers land on the terminator.
MAGIC_TRAILER = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
#: Blocks a decoder renders from, besides the screen descriptor and Global Color Table.
_PAYLOAD_EXTENSIONS = frozenset({0xF9, 0x01})  # Graphic Control, Plain Text

_EXT, _IMAGE, _TRAILER = 0x21, 0x2C, 0x3B
_APPLICATION, _COMMENT = 0xFF, 0xFE
_TC260 = TC260_NS.encode()
#: More blocks than this (over 100,000 frames) is hostile, and would hold too much bookkeeping in memory.
_MAX_BLOCKS = 1 << 18
_WALK_WINDOW = 1 << 16


@dataclass(slots=True)
class _Block:
    kind: str  # "image", "xmp", "comment", or "ext" for every other extension
    label: int  # extension label (0 for images)
    start: int
    end: int
    data: bytes | None = None  # XMP packet or comment text, loaded only for those kinds


@dataclass
class _Layout:
    version: bytes
    screen_end: int  # offset after the Logical Screen Descriptor and Global Color Table
    blocks: list[_Block]
    trailer: int  # offset of the 0x3B trailer (or of the stray bytes that end the walk)
    stray: bool = False  # the walk ended at a byte that is no block introducer, not at the trailer


def _skip_sub_blocks(handle: BinaryIO, size: int) -> None:
    """Move past a sub-block sequence and its terminator, walking it in memory a window at a time."""
    pos = handle.tell()
    while True:
        window = handle.read(_WALK_WINDOW)
        if not window:
            raise TruncatedFileError("GIF ends inside a data sub-block sequence")
        i = 0
        end = len(window)
        while i < end:
            length = window[i]
            if length == 0:
                handle.seek(pos + i + 1)
                return
            if length == 255:  # encoders fill sub-blocks: jump a whole run of them at C speed
                run = window[i::256]
                i += 256 * (len(run) - len(run.lstrip(b"\xff")))
                continue
            i += length + 1
        pos += i
        if pos >= size:
            raise TruncatedFileError("GIF ends inside a data sub-block")
        handle.seek(pos)


def _read_sub_blocks(handle: BinaryIO, size: int, what: str) -> bytes | None:
    """The concatenated sub-block data, or ``None`` (skipped) when it exceeds the metadata limit."""
    parts: list[bytes] = []
    total = 0
    while True:
        raw = handle.read(1)
        if not raw:
            raise TruncatedFileError(f"GIF ends inside {what}")
        if raw[0] == 0:
            return b"".join(parts)
        total += raw[0]
        if total > MAX_METADATA_BYTES:
            _skip_sub_blocks(handle, size)
            return None
        parts.append(read_exact(handle, raw[0], what))


def _walk(handle: BinaryIO) -> _Layout:
    size = file_size(handle)
    head = handle.read(13)
    if len(head) < 6 or head[:6] not in (b"GIF87a", b"GIF89a"):
        raise MalformedFileError("not a GIF file: it does not start with GIF87a or GIF89a")
    if len(head) < 13:
        raise TruncatedFileError("GIF ends inside its Logical Screen Descriptor")
    packed = head[10]
    screen_end = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    if screen_end > size:
        raise TruncatedFileError("GIF ends inside its Global Color Table")
    handle.seek(screen_end)
    blocks: list[_Block] = []
    loaded = 0
    while True:
        if len(blocks) >= _MAX_BLOCKS:
            raise LimitExceededError(f"GIF has more than {_MAX_BLOCKS} blocks")
        if loaded > MAX_METADATA_BYTES:
            raise LimitExceededError(f"GIF comment and XMP extensions exceed {MAX_METADATA_BYTES} bytes")
        start = handle.tell()
        intro = handle.read(1)
        if not intro:
            raise TruncatedFileError("GIF ends without its trailer (0x3B)")
        if intro[0] == _TRAILER:
            return _Layout(head[:6], screen_end, blocks, start)
        if intro[0] == _IMAGE:
            descriptor = read_exact(handle, 9, "an image descriptor")
            if descriptor[8] & 0x80:
                handle.seek(3 << ((descriptor[8] & 7) + 1), 1)
            read_exact(handle, 1, "an image's LZW code size")
            _skip_sub_blocks(handle, size)
            blocks.append(_Block("image", 0, start, handle.tell()))
            continue
        if intro[0] != _EXT:
            if any(block.kind == "image" for block in blocks):
                # Stray bytes after an image (Pillow's test_extents_transparency.gif has a second
                # GIF appended): decoders stop or skip them. They are kept as they are and count as
                # payload, since a decoder may render something from them.
                return _Layout(head[:6], screen_end, blocks, start, stray=True)
            raise MalformedFileError(f"GIF: unknown block introducer 0x{intro[0]:02X} at offset {start}")
        label = read_exact(handle, 1, "an extension label")[0]
        if label == _COMMENT:
            text = _read_sub_blocks(handle, size, "a comment extension")
            loaded += len(text or b"")
            blocks.append(_Block("comment", label, start, handle.tell(), text))
            continue
        if label == _APPLICATION:
            first = handle.read(12)
            if first[:1] == b"\x0b" and first[1:] == XMP_APP_ID:
                data_start = handle.tell()
                _skip_sub_blocks(handle, size)  # the raw packet walks like sub-blocks by design
                end = handle.tell()
                if end - data_start > MAX_METADATA_BYTES:
                    raise LimitExceededError(f"GIF XMP extension exceeds {MAX_METADATA_BYTES} bytes")
                handle.seek(data_start)
                raw = read_exact(handle, end - data_start, "the XMP extension")
                loaded += len(raw)
                blocks.append(_Block("xmp", label, start, end, raw))
                continue
            handle.seek(start + 2)
        _skip_sub_blocks(handle, size)
        blocks.append(_Block("ext", label, start, handle.tell()))


def _xmp_packet(raw: bytes) -> bytes | None:
    """The packet inside an XMP extension's raw bytes, or ``None`` without a proper magic trailer."""
    return raw[: -len(MAGIC_TRAILER)] if raw.endswith(MAGIC_TRAILER) else None


def _xmp_extension(packet: bytes) -> bytes:
    if b"\x00" in packet:
        raise MalformedFileError("an XMP packet containing NUL bytes cannot be stored in a GIF")
    return bytes((_EXT, _APPLICATION, 11)) + XMP_APP_ID + packet + MAGIC_TRAILER


def _comment_label(block: _Block) -> str | None:
    if block.kind != "comment" or block.data is None:
        return None
    text = block.data.decode("utf-8", "replace")
    return text if looks_like_label_json(text) else None


def _xmp_findings(block: _Block, location: str) -> list[FoundLabel]:
    assert block.data is not None
    packet = _xmp_packet(block.data)
    if packet is None:
        if _TC260 in block.data:
            return [FoundLabel(location, "", error="XMP extension lacks its magic trailer; cannot read the label")]
        return []
    try:
        return [FoundLabel.from_text(location, value) for value in find_aigc(packet)]
    except MalformedFileError as exc:
        if _TC260 in packet:
            return [FoundLabel(location, packet.decode("utf-8", "replace")[:2000], error=str(exc))]
        return []


@register
class GifContainer(Container):
    """GIF images: XMP ``TC260:AIGC`` in an Application Extension; label comments read and removed."""

    name = "gif"
    description = "GIF image"
    extensions = (".gif",)
    mime_type = "image/gif"
    media = MediaKind.IMAGE
    primary_location = "GIF XMP Application Extension TC260:AIGC"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """GIF starts with its version signature."""
        return head[:6] in (b"GIF87a", b"GIF89a")

    def read(self, path: Path) -> list[FoundLabel]:
        """Labels in XMP Application Extensions and label-JSON Comment Extensions, in file order."""
        with open(path, "rb") as handle:
            layout = _walk(handle)
        found: list[FoundLabel] = []
        for block in layout.blocks:
            if block.kind == "xmp":
                found.extend(_xmp_findings(block, self.primary_location))
            else:
                comment = _comment_label(block)
                if comment is not None:
                    found.append(FoundLabel.from_text("GIF Comment Extension", comment))
        return found

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Copy ``src`` to ``dst`` with ``label`` as the only label; see the module docstring."""
        with open(src, "rb") as fin:
            layout = _walk(fin)
            xmp_blocks = [b for b in layout.blocks if b.kind == "xmp"]
            replaced: dict[int, bytes] = {}  # block start -> new bytes ("" drops the block)
            for index, block in enumerate(xmp_blocks):
                assert block.data is not None
                packet = _xmp_packet(block.data)
                if packet is None:
                    if _TC260 in block.data or (label is not None and index == 0):
                        replaced[block.start] = b""  # broken, and either holds a label or is in the way
                    continue
                if label is not None and index == 0:
                    new: bytes | None = set_aigc(packet, label.to_json())
                else:
                    try:
                        new = remove_aigc(packet)
                    except MalformedFileError:
                        if index == 0 or _TC260 not in packet:
                            raise  # refuse to drop the main packet we cannot parse
                        new = None  # an unreadable extra packet holding a label
                if new != packet:
                    replaced[block.start] = b"" if new is None else _xmp_extension(new)
            for block in layout.blocks:
                if _comment_label(block) is not None:
                    replaced[block.start] = b""
            insert = b""
            usable = [b for b in xmp_blocks if b.data is not None and _xmp_packet(b.data) is not None]
            if label is not None and not usable:
                insert = _xmp_extension(set_aigc(None, label.to_json()))
            writes_extension = bool(insert) or any(replaced.values())
            version = b"GIF89a" if writes_extension else layout.version

            # After the leading application extensions (NETSCAPE2.0 loop...): some decoders only
            # honour the loop block right after the colour table, and Exempi (python-xmp-toolkit)
            # fails to read an XMP block that precedes another application extension.
            lead = 0
            while lead < len(layout.blocks) and layout.blocks[lead].label == _APPLICATION:
                lead += 1
            # Blocks tile the file from the colour table to the trailer, so everything not replaced
            # is copied as a few long source ranges, the last one running on to the end of the file.
            pieces: list[bytes | tuple[int, int]] = [version]
            run_start = 6

            def emit(at: int, resume: int, data: bytes) -> None:
                nonlocal run_start
                if at > run_start:
                    pieces.append((run_start, at))
                pieces.append(data)
                run_start = resume

            for index, block in enumerate(layout.blocks):
                if index == lead and insert:
                    emit(block.start, block.start, insert)
                if block.start in replaced:
                    emit(block.start, block.end, replaced[block.start])
            if lead == len(layout.blocks) and insert:
                emit(layout.trailer, layout.trailer, insert)
            with open_output(dst) as fout:
                for piece in pieces:
                    if isinstance(piece, bytes):
                        fout.write(piece)
                    else:
                        copy_range(fin, fout, piece[0], piece[1] - piece[0], "a GIF block")
                copy_range(fin, fout, run_start, file_size(fin) - run_start, "the rest of the GIF")

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 of what a decoder renders: the Logical Screen Descriptor, Global Color Table,
        and, in file order, every image (descriptor, Local Color Table, LZW data), Graphic Control
        Extension and Plain Text Extension. The version bytes, application, XMP and comment
        extensions are left out."""
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            layout = _walk(handle)
            handle.seek(6)
            digest.update(handle.read(layout.screen_end - 6))
            for block in layout.blocks:
                if block.kind == "image" or (block.kind == "ext" and block.label in _PAYLOAD_EXTENSIONS):
                    hash_range(handle, block.start, block.end - block.start, digest.update, "a GIF block")
            if layout.stray:
                end = file_size(handle)
                hash_range(handle, layout.trailer, end - layout.trailer, digest.update, "the GIF's stray data")
        return digest.digest()
