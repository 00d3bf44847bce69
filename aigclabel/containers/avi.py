"""AVI (RIFF ``AVI ``): the label as sub-chunk ``AIGC`` of ``LIST/INFO``.

Placement (TC260-PG-20257A Annex D): a ``LIST`` of type ``INFO`` with a custom sub-chunk whose ID is
``AIGC`` and whose data is the bare seven-field JSON, NUL-terminated like every INFO string (readers
drop the NUL). Stock ffmpeg cannot write this ID (the guide patches ``riff.c``), so we write the
RIFF bytes ourselves; exiftool reports it as ``RIFF:AIGC`` and our reader accepts any ``AIGC``
sub-chunk of any ``INFO`` list, and a top-level ``AIGC`` chunk as WAV writers use it.

Nothing that indexes media data is ever moved. ``idx1`` offsets are relative to ``movi`` (or, in
some old files, absolute), and OpenDML ``indx``/``ix##`` offsets are absolute, so the INFO list is
placed where no chunk after it changes position:

1. in place of the existing ``LIST/INFO`` plus a directly following ``JUNK`` chunk (ffmpeg reserves
   about 1 KB of ``JUNK`` there), the remainder staying ``JUNK``; an INFO list that is the last
   chunk of the file is simply resized;
2. else in a ``JUNK`` chunk at RIFF level before ``movi``;
3. else appended at the end of the first ``RIFF`` (after ``idx1``), which shifts nothing unless
   OpenDML ``AVIX`` extension chunks follow; that case is refused with
   :class:`~aigclabel.errors.NeedsRepairError` rather than risking their absolute indexes. When
   ``JUNK`` after ``idx1`` ends the RIFF, the list takes its place instead (the rest staying
   ``JUNK``, or the file growing by what does not fit): ffmpeg stops its walk after ``idx1`` at the
   first chunk that is neither ``LIST`` nor ``idx1``, so a list after that ``JUNK`` is never read.

A file cut short (a recording that stopped: the RIFF, ``movi`` or ``idx1`` runs past the end of the
file; players play what is there) is read, and labelled by cases 1 and 2, which leave its end alone;
case 3 would append inside the cut chunk and is refused with :class:`NeedsRepairError`; ``--repair``
(:meth:`AVIContainer.repair`) then remuxes the file with PyAV and labels the result.

Removed labels become ``JUNK`` of the same size, for the same reason (an INFO list that ends the
file is shrunk instead, so write + strip gives back the original bytes).

Labelled in place, case 3 is WAV's journal-free append (:mod:`._riff`): the new ``LIST/INFO`` goes
past the RIFF end first, then one write of the RIFF size shows it; a kill in between leaves a
leftover (a ``LIST`` whose ``INFO`` holds just the ``AIGC`` entry, whole or cut at a 4 KiB boundary)
that the next read or ``aigclabel recover`` cuts. Any other bytes after the first RIFF (``AVIX``)
are kept, as before. Unlike WAV readers, ffmpeg reads on past the RIFF end (for ``idx1`` and
``LIST/INFO`` after ``movi``), so until that cut it already shows the leftover's label: the new one,
or, from a leftover cut short, the start of it; the frames it decodes are the same either way.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from .._io import MAX_METADATA_BYTES, file_size
from .._journal import EditPlan
from ..errors import (
    LimitExceededError,
    MalformedFileError,
    NeedsRepairError,
    TruncatedFileError,
    WriteNotSupportedError,
)
from ..label import AIGCLabel
from . import Container, FoundLabel, MediaKind, register
from ._riff import appended_leftover, trim_after_read, trim_leftover
from ._stream import apply_patches, hash_range, open_output, plan_from_patches, repair_by_remux

CHUNK_ID = b"AIGC"
MAX_CHUNKS = 1_000_000


@dataclass
class Chunk:
    """A RIFF chunk: ``offset`` of its 8-byte header, ``size`` of its data (without the pad byte)."""

    id: bytes
    offset: int
    size: int
    list_type: bytes = b""
    missing: int = 0  # bytes the declared size counts that the file lacks (a recording cut short)

    @property
    def end(self) -> int:
        return self.offset + 8 + self.size + (self.size & 1)

    @property
    def total(self) -> int:
        return self.end - self.offset


#: Chunks a recording cut short may end inside (players play what is there): the RIFF itself, the
#: ``movi`` list of frames and the ``idx1`` index after it.
_MAY_BE_CUT = frozenset({b"RIFF", b"movi", b"idx1"})


def _chunks(handle: BinaryIO, start: int, end: int, what: str) -> list[Chunk]:
    """The chunks in ``[start, end)``; one of :data:`_MAY_BE_CUT` running past the end of the file
    is shortened to what is there (its ``missing`` says by how much)."""
    out: list[Chunk] = []
    pos = start
    while pos + 8 <= end:
        handle.seek(pos)
        head = handle.read(12)
        if len(head) < 8:
            raise TruncatedFileError(f"file ends inside a chunk header in {what}")
        chunk_id, size = struct.unpack_from("<4sI", head)
        chunk = Chunk(chunk_id, pos, size)
        if chunk_id in (b"LIST", b"RIFF"):
            if size < 4 or len(head) < 12:
                raise MalformedFileError(f"{chunk_id.decode()} chunk in {what} is too short for its type")
            chunk.list_type = head[8:12]
        cuttable = chunk_id in _MAY_BE_CUT or chunk.list_type in _MAY_BE_CUT
        if pos + 8 + size > end and cuttable and end == file_size(handle):
            chunk.size, chunk.missing = end - pos - 8, pos + 8 + size - end
        elif pos + 8 + size > end:
            raise TruncatedFileError(
                f"chunk {chunk_id!r} at byte {pos} declares {size} bytes, beyond the end of {what}"
            )
        out.append(chunk)
        if len(out) > MAX_CHUNKS:
            raise LimitExceededError(f"more than {MAX_CHUNKS} chunks in {what}")
        pos = min(chunk.end, end)
    return out


def _read(handle: BinaryIO, offset: int, size: int, what: str) -> bytes:
    if size > MAX_METADATA_BYTES:
        raise LimitExceededError(f"{what} is {size} bytes, over the {MAX_METADATA_BYTES} byte limit")
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise TruncatedFileError(f"file ends inside {what}")
    return data


def _sub_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(id, raw chunk bytes including header and pad) of each sub-chunk of a LIST body."""
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        end = pos + 8 + size
        if end > len(data):
            raise MalformedFileError(f"INFO sub-chunk {chunk_id!r} overruns its list")
        end += size & 1
        out.append((chunk_id, data[pos : min(end, len(data))]))
        pos = end
    return out


def _chunk(chunk_id: bytes, data: bytes) -> bytes:
    return struct.pack("<4sI", chunk_id, len(data)) + data + (b"\0" if len(data) & 1 else b"")


def junk(total: int) -> bytes:
    """A JUNK chunk of exactly ``total`` bytes (even, at least 8)."""
    return struct.pack("<4sI", b"JUNK", total - 8) + bytes(total - 8)


@dataclass
class Layout:
    """The first RIFF ``AVI `` chunk, its children, and what follows it."""

    riff: Chunk
    children: list[Chunk]
    info: list[tuple[Chunk, str]]  # INFO lists with a location name
    total: int  # the file's length, without the leftover of an interrupted append
    leftover: bool = False  # the file goes on with such a leftover (see :func:`_visible_size`)

    @property
    def truncated(self) -> bool:
        """The file ends before the first RIFF does (a recording cut short)."""
        return bool(self.riff.missing)


def _info_head(length: int, head: bytes) -> bool:
    """The first 13 bytes of a ``LIST`` body appended as a first label: ``INFO``, then an ``AIGC``
    entry that fills the list of ``length`` bytes, and the start of its JSON."""
    (entry,) = struct.unpack_from("<I", head, 8)
    return head[:8] == b"INFO" + CHUNK_ID and 12 + entry + (entry & 1) == length and head[12:13] == b"{"


def _visible_size(handle: BinaryIO) -> tuple[int, bool]:
    """The file's length without the leftover an interrupted append of a label left past the first
    RIFF (:func:`~._riff.appended_leftover`), and whether there is one."""
    total = file_size(handle)
    handle.seek(0)
    head = handle.read(12)
    if len(head) == 12 and head[:4] == b"RIFF":
        end = 8 + struct.unpack_from("<I", head, 4)[0]
        if end < total and appended_leftover(handle, end, total, b"LIST", 13, _info_head):
            return end, True
    return total, False


def _length_before_append(handle: BinaryIO) -> int | None:
    total, leftover = _visible_size(handle)
    return total if leftover else None


def scan(handle: BinaryIO) -> Layout:
    """Chunk structure of the first RIFF and where the INFO lists are (headers only)."""
    total, leftover = _visible_size(handle)
    top = _chunks(handle, 0, total, "the file")
    if not top or top[0].id != b"RIFF" or top[0].list_type != b"AVI ":
        raise MalformedFileError("not an AVI file (no RIFF 'AVI ' chunk)")
    riff = top[0]
    children = _chunks(handle, riff.offset + 12, riff.offset + 8 + riff.size, "RIFF AVI")
    info: list[tuple[Chunk, str]] = []
    for child in children:
        if child.id == b"LIST" and child.list_type == b"INFO":
            info.append((child, "RIFF/LIST-INFO"))
        elif child.id == b"LIST" and child.list_type == b"hdrl":
            for sub in _chunks(handle, child.offset + 12, child.offset + 8 + child.size, "hdrl"):
                if sub.id == b"LIST" and sub.list_type == b"INFO":
                    info.append((sub, "RIFF/LIST-hdrl/LIST-INFO"))
    return Layout(riff, children, info, total, leftover)


def _trailing_junk(kids: list[Chunk], movi: int, used: set[int]) -> int | None:
    """Offset of the run of ``JUNK`` chunks after ``movi`` that ends the RIFF (None when there is none)."""
    start = len(kids)
    while start > movi + 1 and kids[start - 1].id == b"JUNK" and kids[start - 1].offset not in used:
        start -= 1
    return kids[start].offset if start < len(kids) else None


def _info_entries(handle: BinaryIO, info: Chunk) -> list[tuple[bytes, bytes]]:
    return _sub_chunks(_read(handle, info.offset + 12, info.size - 4, "LIST INFO"))


def _text(raw_chunk: bytes) -> bytes:
    (size,) = struct.unpack_from("<I", raw_chunk, 4)
    return raw_chunk[8 : 8 + size].rstrip(b"\0")


@register
class AVIContainer(Container):
    """AVI (RIFF) video."""

    name = "avi"
    description = "AVI video"
    extensions = (".avi",)
    mime_type = "video/x-msvideo"
    media = MediaKind.VIDEO
    primary_location = "RIFF/LIST-INFO/AIGC"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """``RIFF`` ... ``AVI ``."""
        return head[:4] == b"RIFF" and head[8:12] == b"AVI "

    def read(self, path: Path) -> list[FoundLabel]:
        """Every ``AIGC`` sub-chunk of every INFO list, and top-level ``AIGC`` chunks, in file order."""
        found: list[tuple[int, FoundLabel]] = []
        with open(path, "rb") as handle:
            layout = scan(handle)
            for info, where in layout.info:
                for chunk_id, raw in _info_entries(handle, info):
                    if chunk_id == CHUNK_ID:
                        found.append((info.offset, FoundLabel.from_text(f"{where}/AIGC", _text(raw))))
            for child in layout.children:
                if child.id == CHUNK_ID:
                    data = _read(handle, child.offset + 8, child.size, "AIGC chunk").rstrip(b"\0")
                    found.append((child.offset, FoundLabel.from_text("RIFF/AIGC", data)))
        if layout.leftover:
            trim_after_read(path, "AVI chunk", _length_before_append)
        return [f for _, f in sorted(found, key=lambda item: item[0])]

    def recover(self, path: Path) -> str | None:
        """Cut the ``LIST/INFO`` an interrupted append left past the RIFF end (see :func:`_visible_size`)."""
        return trim_leftover(path, "AVI chunk", _length_before_append)

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Same-size patches wherever possible; an append at the end of the first RIFF otherwise."""
        with open(src, "rb") as handle:
            layout = scan(handle)
            patches = self._plan(handle, layout, label)
            with open_output(dst) as out:
                apply_patches(handle, out, patches, layout.total, "AVI data")

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """The patches :meth:`rewrite` applies, in place, when none moves what follows it (the label
        fits the room it takes, or is appended at the end of the file)."""
        with open(path, "rb") as handle:
            layout = scan(handle)
            plan = plan_from_patches(self._plan(handle, layout, label), layout.total)
        if plan is not None and plan.size > layout.total == layout.riff.end:
            # An append after the RIFF's last chunk: journal-free when it is the only other patch.
            return replace(plan, commit=layout.riff.offset + 4, visible=layout.total)
        return plan

    def _plan(self, handle: BinaryIO, layout: Layout, label: AIGCLabel | None) -> list[tuple[int, int, bytes]]:
        patches: list[tuple[int, int, bytes]] = []
        used: set[int] = set()
        kids = layout.children
        movi = next((i for i, c in enumerate(kids) if c.id == b"LIST" and c.list_type == b"movi"), len(kids))
        for child in kids:
            if child.id == CHUNK_ID:
                used.add(child.offset)
                patches.append((child.offset, child.total, junk(child.total)))
        primary: tuple[int, list[bytes]] | None = None  # (index in kids, kept sub-chunks)
        for info, _where in layout.info:
            entries = _info_entries(handle, info)
            kept = [raw for chunk_id, raw in entries if chunk_id != CHUNK_ID]
            index = next((i for i, c in enumerate(kids) if c.offset == info.offset), -1)
            if label is not None and primary is None and index >= 0:
                primary = (index, kept)
                continue
            if len(kept) == len(entries):
                continue
            new = _chunk(b"LIST", b"INFO" + b"".join(kept)) if kept else b""
            used.add(info.offset)
            riff = layout.riff
            if index == len(kids) - 1 and riff.end == layout.total and not (riff.size & 1) and not riff.missing:
                # The file's last chunk (where an earlier write appended it): shrink instead of leaving JUNK.
                patches.append((info.offset, layout.total - info.offset, new))
                new_size = info.offset - riff.offset - 8 + len(new)
                patches.append((riff.offset + 4, 4, struct.pack("<I", new_size)))
                continue
            data = new + junk(info.total - len(new))  # what was removed is a whole chunk: >= 8 bytes
            patches.append((info.offset, info.total, data))
        if label is None:
            return patches
        entry = _chunk(CHUNK_ID, label.to_json().encode() + b"\0")
        body: list[bytes]
        if primary is not None:
            index, kept = primary
            new = _chunk(b"LIST", b"INFO" + b"".join(kept) + entry)
            slot = kids[index].total
            if index + 1 < len(kids) and kids[index + 1].id == b"JUNK":
                slot += kids[index + 1].total
            if len(new) == slot or len(new) + 8 <= slot:
                patches.append((kids[index].offset, slot, new + (junk(slot - len(new)) if slot > len(new) else b"")))
                return patches
            riff = layout.riff
            if index == len(kids) - 1 and riff.end == layout.total and not riff.missing:  # last chunk: resize it
                start = kids[index].offset
                new_size = start - riff.offset - 8 + len(new)
                if new_size > 0xFFFFFFFF:
                    raise WriteNotSupportedError("the RIFF chunk would exceed 4 GiB")
                patches.append((start, layout.total - start, new))
                patches.append((riff.offset + 4, 4, struct.pack("<I", new_size)))
                return patches
            patches.append((kids[index].offset, kids[index].total, junk(kids[index].total)))
            body = [*kept, entry]
        else:
            body = [entry]
            new = _chunk(b"LIST", b"INFO" + entry)
            for child in kids[:movi]:
                if (
                    child.id == b"JUNK"
                    and child.offset not in used
                    and (child.total == len(new) or child.total >= len(new) + 8)
                ):
                    rest = child.total - len(new)
                    patches.append((child.offset, child.total, new + (junk(rest) if rest else b"")))
                    return patches
        new = _chunk(b"LIST", b"INFO" + b"".join(body))
        riff = layout.riff
        if riff.missing:
            raise NeedsRepairError(
                "the file is cut short inside its RIFF chunk and has no room for LIST/INFO before 'movi'; "
                "use `aigclabel label --repair` (in Python `write_label(..., repair=True)`) to remux it "
                "(ffmpeg -c copy: the same packets, index rebuilt) and label that"
            )
        if riff.end < layout.total:
            raise NeedsRepairError(
                "no room for LIST/INFO before 'movi' and OpenDML extension chunks follow the first RIFF; "
                "appending would move their absolute indexes. `aigclabel label --repair` remuxes it "
                "(ffmpeg -c copy) with room reserved"
            )
        tail = _trailing_junk(kids, movi, used) if riff.end == layout.total else None
        if tail is not None:
            # JUNK after idx1 ends the RIFF: the list takes its place, else ffmpeg, which stops walking
            # after idx1 at the first chunk that is neither LIST nor idx1, would never reach it.
            room = layout.total - tail
            if len(new) == room or len(new) + 8 <= room:
                patches.append((tail, room, new + (junk(room - len(new)) if room > len(new) else b"")))
                return patches
            new_size = tail - riff.offset - 8 + len(new)
            if new_size > 0xFFFFFFFF:
                raise WriteNotSupportedError("the RIFF chunk would exceed 4 GiB")
            patches.append((tail, room, new))
            patches.append((riff.offset + 4, 4, struct.pack("<I", new_size)))
            return patches
        at = riff.offset + 8 + riff.size
        pad = b"\0" if riff.size & 1 else b""
        new_size = riff.size + len(pad) + len(new)
        if new_size > 0xFFFFFFFF:
            raise WriteNotSupportedError("the RIFF chunk would exceed 4 GiB")
        patches.append((at, riff.end - at, pad + new))
        patches.append((riff.offset + 4, 4, struct.pack("<I", new_size)))
        return patches

    def repair(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Remux ``src`` with PyAV (``-c copy``: same packets, new index and the ``JUNK`` room ffmpeg
        reserves) and label that; for files :meth:`write` refuses (cut short with no room)."""
        repair_by_remux(self, src, dst, label, "avi")

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over the data of every ``LIST movi`` (in ``AVI `` and ``AVIX`` RIFF chunks), in order.

        ``movi`` holds every coded frame and audio block; headers, indexes, INFO and JUNK are left out.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            total, _leftover = _visible_size(handle)
            for riff in _chunks(handle, 0, total, "the file"):
                if riff.id != b"RIFF":
                    continue
                for child in _chunks(handle, riff.offset + 12, riff.offset + 8 + riff.size, "RIFF"):
                    if child.id == b"LIST" and child.list_type == b"movi":
                        hash_range(handle, child.offset + 12, child.size - 4, digest.update, "movi")
        return digest.digest()
