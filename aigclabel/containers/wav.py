"""WAV (RIFF/WAVE, and RF64/BW64): the label is a RIFF chunk with ID ``AIGC`` holding the JSON.

TC260-PG-202510A inserts a chunk ``AIGC`` whose data is the bare seven-field JSON; it names no
position. We put it **right after** ``fmt ``: every WAV reader must find ``fmt `` first, so a reader
looking for the label finds it in the first few hundred bytes instead of after the audio, and
nothing else moves. (Readers that assume a 44-byte header are already broken by the ``LIST``
chunk ffmpeg and most editors write in the same place.) An odd-length label gets the RIFF pad byte.

This is a hand-written streaming chunk walker: the ``data`` payload is copied in bounded chunks,
never loaded; every other chunk (``fmt ``, ``fact``, ``LIST``, ``bext``, ``iXML``, ``cue ``,
``id3 ``...) is copied byte for byte and in order. Only these change:

* any existing ``AIGC`` chunk (any case) is dropped, one fresh chunk is written after ``fmt ``;
* a ``LIST/INFO`` list with an ``AIGC`` entry (a fallback some tools add) is rebuilt without that
  entry, keeping the other entries; an emptied list is dropped;
* an ``id3 ``/``ID3 `` chunk with ``TXXX:AIGC``, or an XMP ``_PMX`` chunk with ``TC260:AIGC``, is
  rebuilt without it (dropped when nothing else is left);
* the RIFF size (or, for RF64/BW64, the ``ds64`` RIFF size) is fixed.

Streamed WAVs (written to a pipe) carry placeholder sizes: a RIFF size of 0 or 0xFFFFFFFF, or one
past the end of the file, makes us walk to the end of the file; a ``data`` size of 0xFFFFFFFF (or 0
followed by bytes that are not a chunk) means "to the end of the file", and the rewritten file gets
the real size. A ``data`` chunk declaring more bytes than the file holds is a recording cut short:
players play what is there, so it is labelled with its header and bytes kept as they are (the RIFF
size keeps counting the missing bytes). Any other chunk running past the end is a
:class:`TruncatedFileError`. Bytes after the RIFF form are kept as they are, except the leftover of an
interrupted first label (see :func:`_leftover`), which the next read cuts.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar

from .._io import copy_exact, file_size, read_exact
from .._journal import EditPlan
from ..errors import LimitExceededError, MalformedFileError, TruncatedFileError
from ..label import AIGCLabel
from ..xmp import find_aigc, remove_aigc
from . import Container, FoundLabel, MediaKind, register
from ._audio import AIGC_KEY, id3_findings, id3_has_label, id3_render, is_aigc_name, parse_errors, xmp_findings
from ._riff import appended_leftover, trim_after_read, trim_leftover
from ._stream import copy_range, hash_range, open_output

_FORMS = (b"RIFF", b"RF64", b"BW64")
_PLACEHOLDER = 0xFFFFFFFF
_ID3_CHUNKS = (b"id3 ", b"ID3 ")
_XMP_CHUNK = b"_PMX"
#: Size of the smallest legal ``fmt `` payload (WAVEFORMAT without bits per sample).
_MIN_FMT = 14
#: More chunks than this in one file is hostile, not audio.
_MAX_CHUNKS = 100_000
_HEADER = struct.Struct("<4sI4s")
#: Chunks that may hold a label entry besides the ``AIGC`` chunk itself.
_LABEL_HOSTS = frozenset({b"LIST", *_ID3_CHUNKS, _XMP_CHUNK})
_CHUNK_HEADER = struct.Struct("<4sI")


_PRINTABLE = bytes(range(0x20, 0x7F))
_LABEL_ID = AIGC_KEY.encode()
#: Bytes read at once at the start of a walk: the header and the chunks before ``data``.
_HEAD = 4096


def _plausible_id(cid: bytes) -> bool:
    """RIFF chunk IDs are four printable ASCII characters."""
    return len(cid) == 4 and not cid.translate(None, _PRINTABLE)


def _is_label_chunk(cid: bytes) -> bool:
    return cid.upper() == _LABEL_ID


@dataclass(slots=True)
class _Chunk:
    cid: bytes
    offset: int  # of the 8-byte header
    size: int  # real payload size (ds64 or end of file resolved)
    padded: bool  # a pad byte follows in the file
    streamed: bool = False  # size field was a placeholder; payload runs to the end of the file
    missing: int = 0  # bytes the declared size counts that the file lacks (a recording cut short)

    @property
    def payload(self) -> int:
        return self.offset + 8

    @property
    def end(self) -> int:
        return self.payload + self.size + self.padded


@dataclass
class _Riff:
    form: bytes
    size: int
    chunks: list[_Chunk] = field(default_factory=list)
    end: int = 12  # end of the last chunk; bytes after it are kept verbatim
    ds64: _Chunk | None = None
    declared: int = 0  # where the RIFF (or ds64) size says the file ends
    leftover: bool = False  # ``size`` excludes an interrupted append of ours past ``end`` (see _leftover)


def _walk(handle: BinaryIO) -> _Riff:
    """Parse the chunk list (headers only) and check the structure."""
    size = file_size(handle)
    handle.seek(0)
    head = handle.read(_HEAD)  # one read for the header and the chunks before ``data``
    if len(head) < 12:
        raise TruncatedFileError(f"file is {len(head)} bytes, shorter than a RIFF header")
    form, riff_size, wave = _HEADER.unpack_from(head)
    if form not in _FORMS or wave != b"WAVE":
        raise MalformedFileError("not a RIFF WAVE file")
    riff = _Riff(form=form, size=size)
    table: dict[bytes, int] = {}
    data_size: int | None = None
    if form != b"RIFF":
        handle.seek(12)
        ds64 = handle.read(8)
        if len(ds64) < 8 or ds64[:4] != b"ds64":
            raise MalformedFileError(f"{form.decode()} file lacks the ds64 chunk that must come first")
        ds64_size = struct.unpack("<I", ds64[4:])[0]
        if ds64_size < 28:
            raise MalformedFileError(f"ds64 chunk is {ds64_size} bytes, shorter than its 28 fixed bytes")
        body = read_exact(handle, ds64_size, "ds64 chunk")
        riff_size, data_size, _samples, entries = struct.unpack("<QQQI", body[:28])
        for index in range(min(entries, (ds64_size - 28) // 12)):
            cid, chunk_size = struct.unpack("<4sQ", body[28 + 12 * index : 40 + 12 * index])
            table[cid] = chunk_size
    declared_end = riff_size + 8
    walk_end = size if riff_size in (0, _PLACEHOLDER) or declared_end > size or declared_end < 20 else declared_end
    pos = 12
    while pos + 8 <= walk_end:
        if pos + 8 <= len(head):
            cid, chunk_size = _CHUNK_HEADER.unpack_from(head, pos)
        else:
            handle.seek(pos)
            cid, chunk_size = _CHUNK_HEADER.unpack(read_exact(handle, 8, "chunk header"))
        if not _plausible_id(cid):
            if any(c.cid == b"fmt " for c in riff.chunks) and any(c.cid == b"data" for c in riff.chunks):
                break  # junk after the last chunk: kept verbatim as trailing bytes
            raise MalformedFileError(f"chunk at offset {pos} has a non-ASCII ID {cid!r}")
        chunk = _Chunk(cid=cid, offset=pos, size=chunk_size, padded=False)
        if form != b"RIFF" and chunk_size == _PLACEHOLDER:
            if cid == b"data" and data_size is not None:
                chunk.size = data_size
            elif cid in table:
                chunk.size = table[cid]
            else:
                raise MalformedFileError(f"{cid!r} chunk has a 64-bit size but ds64 does not give it")
        elif cid == b"data" and form == b"RIFF":
            rest = walk_end - chunk.payload
            if chunk_size == _PLACEHOLDER or (
                chunk_size == 0 and rest >= 8 and not _chunk_follows(handle, chunk.payload)
            ):
                chunk.size, chunk.streamed = rest, True
        if chunk.payload + chunk.size > walk_end:
            if cid == b"data" and chunk.payload + chunk.size > size and chunk.payload <= size:
                # A recording cut short: players play what is there, and so do we.
                chunk.missing = chunk.payload + chunk.size - size
                chunk.size = size - chunk.payload
            elif chunk.payload + chunk.size > size:
                raise TruncatedFileError(
                    f"{cid.decode('latin-1')!r} chunk declares {chunk.size} bytes but only "
                    f"{size - chunk.payload} remain in the file"
                )
            walk_end = size  # the RIFF size is too small; trust the chunks
        if chunk.size % 2 and chunk.payload + chunk.size < walk_end:
            # Some writers forget the pad byte; believe whichever position holds the next chunk.
            after = chunk.payload + chunk.size
            chunk.padded = not (
                after + 8 <= walk_end and _chunk_follows(handle, after) and not _chunk_follows(handle, after + 1)
            )
        if cid == b"ds64" and form != b"RIFF" and not riff.chunks:
            riff.ds64 = chunk
        riff.chunks.append(chunk)
        if len(riff.chunks) > _MAX_CHUNKS:
            raise MalformedFileError(f"more than {_MAX_CHUNKS} RIFF chunks")
        pos = chunk.end
    riff.end = min(pos, size)
    riff.declared = declared_end
    if walk_end == declared_end == riff.end < size and _leftover(handle, riff.end, size):
        riff.size, riff.leftover = riff.end, True
    ids = [c.cid for c in riff.chunks]
    if b"fmt " not in ids:
        raise MalformedFileError("WAV file has no 'fmt ' chunk")
    if (fmt_size := riff.chunks[ids.index(b"fmt ")].size) < _MIN_FMT:
        raise MalformedFileError(f"'fmt ' chunk is {fmt_size} bytes, shorter than the {_MIN_FMT} of a WAVEFORMAT")
    if b"data" not in ids:
        raise MalformedFileError("WAV file has no 'data' chunk")
    return riff


def _leftover(handle: BinaryIO, end: int, size: int) -> bool:
    """Whether the bytes from ``end`` (the RIFF end) to ``size`` (the end of the file) are what an
    interrupted append of a label chunk leaves (:func:`~._riff.appended_leftover`): an ``AIGC``
    chunk whose JSON object has begun. Other bytes after the RIFF end are someone else's and are kept."""
    return appended_leftover(handle, end, size, _LABEL_ID, 1, lambda _length, head: head == b"{")


def _chunk_follows(handle: BinaryIO, offset: int) -> bool:
    handle.seek(offset)
    head = handle.read(8)
    if len(head) < 8 or not _plausible_id(head[:4]):
        return False
    return offset + 8 + struct.unpack("<I", head[4:])[0] <= file_size(handle) or head[:4] == b"data"


def _chunk_bytes(cid: bytes, payload: bytes) -> bytes:
    return cid + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def _info_entries(body: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """``(id, value, raw bytes)`` of each entry of a LIST/INFO payload (after the ``INFO`` type)."""
    entries: list[tuple[bytes, bytes, bytes]] = []
    pos = 0
    while pos + 8 <= len(body):
        cid, size = struct.unpack("<4sI", body[pos : pos + 8])
        end = pos + 8 + size
        if end > len(body) or not _plausible_id(cid):
            raise MalformedFileError(f"LIST/INFO entry {cid!r} runs past the end of its list")
        end += size % 2 and end < len(body)
        entries.append((cid, body[pos + 8 : pos + 8 + size], body[pos:end]))
        pos = end
    return entries


def _info_text(value: bytes) -> str:
    value = value.rstrip(b"\x00")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _read_payload(handle: BinaryIO, chunk: _Chunk) -> bytes:
    handle.seek(chunk.payload)
    return read_exact(handle, chunk.size, f"{chunk.cid.decode('latin-1')!r} chunk")


def _list_type(handle: BinaryIO, chunk: _Chunk) -> bytes:
    handle.seek(chunk.payload)
    return handle.read(4) if chunk.size >= 4 else b""


@register
class WAV(Container):
    """RIFF WAVE, RF64 and BW64 audio."""

    name: ClassVar[str] = "wav"
    description: ClassVar[str] = "WAV audio"
    extensions: ClassVar[tuple[str, ...]] = (".wav", ".wave", ".bwf", ".rf64")
    mime_type: ClassVar[str] = "audio/wav"
    media: ClassVar[MediaKind] = MediaKind.AUDIO
    primary_location: ClassVar[str] = "RIFF AIGC chunk"
    priority: ClassVar[int] = 10  # twelve header bytes no other format starts with: tried before costly sniffers

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        """A RIFF, RF64 or BW64 header of form type ``WAVE``."""
        return head[:4] in _FORMS and head[8:12] == b"WAVE"

    def read(self, path: Path) -> list[FoundLabel]:
        """The ``AIGC`` chunk(s), LIST/INFO ``AIGC`` entries, ``id3 `` TXXX:AIGC and ``_PMX`` XMP, in file order."""
        with open(path, "rb", buffering=0) as handle, parse_errors(path, "WAV chunk"):  # few, scattered reads
            riff = _walk(handle)
            found = [found for chunk in riff.chunks for found in _chunk_labels(handle, chunk)]
        if riff.leftover:
            trim_after_read(path, "WAV chunk", _length_before_append)
        return found

    def recover(self, path: Path) -> str | None:
        """Cut the label chunk an interrupted append left past the RIFF end (see :func:`_leftover`)."""
        return trim_leftover(path, "WAV chunk", _length_before_append)

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        """Copy every chunk in order, dropping other label placements; one ``AIGC`` chunk after ``fmt ``."""
        with open(src, "rb") as fin, open_output(dst) as fout, parse_errors(src, "WAV chunk"):
            riff = _walk(fin)
            fout.write(riff.form + struct.pack("<I", _PLACEHOLDER) + b"WAVE")
            ds64_at: int | None = None
            placed = False
            for chunk in riff.chunks:
                if chunk is riff.ds64:
                    ds64_at = fout.tell() + 8
                    fout.write(_chunk_bytes(chunk.cid, _read_payload(fin, chunk)))
                elif _is_label_chunk(chunk.cid):
                    continue
                elif chunk.cid == b"LIST" and _list_type(fin, chunk) == b"INFO":
                    body = _read_payload(fin, chunk)
                    entries = _info_entries(body[4:])
                    kept = [raw for cid, _value, raw in entries if not is_aigc_name(cid.decode("latin-1"))]
                    if len(kept) == len(entries):
                        _copy_chunk(fin, fout, chunk)
                    elif kept:
                        fout.write(_chunk_bytes(b"LIST", b"INFO" + b"".join(kept)))
                elif chunk.cid in _ID3_CHUNKS:
                    tag = _read_payload(fin, chunk)
                    if id3_has_label(tag):
                        rendered = id3_render(tag, None)
                        if rendered:
                            fout.write(_chunk_bytes(chunk.cid, rendered))
                    else:
                        _copy_chunk(fin, fout, chunk)
                elif chunk.cid == _XMP_CHUNK:
                    packet = _read_payload(fin, chunk)
                    if find_aigc(packet):
                        edited = remove_aigc(packet)
                        if edited is not None:
                            fout.write(_chunk_bytes(chunk.cid, edited))
                    else:
                        _copy_chunk(fin, fout, chunk)
                else:
                    _copy_chunk(fin, fout, chunk)
                if chunk.cid == b"fmt " and label is not None and not placed:
                    fout.write(_chunk_bytes(AIGC_KEY.encode(), label.to_json().encode("ascii")))
                    placed = True
            riff_end = fout.tell()
            fin.seek(riff.end)
            copy_exact(fin, fout, riff.size - riff.end, "trailing bytes")
            riff_size = riff_end - 8 + sum(c.missing for c in riff.chunks)  # a cut file stays cut, not "fixed"
            if ds64_at is not None:
                fout.seek(ds64_at)
                fout.write(struct.pack("<Q", riff_size))
            elif riff_size >= _PLACEHOLDER:
                raise LimitExceededError("the labelled file would exceed the 4 GiB RIFF limit; convert it to RF64")
            else:
                fout.seek(4)
                fout.write(struct.pack("<I", riff_size))

    def plan_edit(self, path: Path, label: AIGCLabel | None) -> EditPlan | None:
        """The ``AIGC`` chunk rewritten where it is when it is the last chunk (the file grows or
        shrinks) or the new JSON has its exact length; else appended after the last chunk, the old
        chunk zeroed into a ``JUNK`` chunk (which every reader skips); the RIFF (or ``ds64``) size is
        patched. A first label is a plan without a journal (:attr:`EditPlan.commit`): the chunk goes past
        the RIFF end, where no reader looks, then the size write shows it; a kill in between leaves a
        leftover that :meth:`recover` (run by every read) cuts. None (a copy) when there are several
        ``AIGC`` chunks, for a removal of one that is not last, a label sits elsewhere
        (LIST/INFO, ``id3 ``, ``_PMX``), bytes follow the RIFF form, a pad byte is missing, or a size is a
        placeholder or counts missing bytes."""
        with open(path, "rb", buffering=0) as handle, parse_errors(path, "WAV chunk"):
            riff = _walk(handle)
            for chunk in riff.chunks:
                if (
                    chunk.streamed
                    or chunk.missing
                    or (chunk.size % 2 and not chunk.padded and chunk is not riff.chunks[-1])
                ):
                    return None  # irregular: the copy writes it out whole
                if not _is_label_chunk(chunk.cid) and _chunk_labels(handle, chunk):
                    return None
        if riff.end != riff.size:
            return None
        new = _chunk_bytes(AIGC_KEY.encode(), label.to_json().encode("ascii")) if label is not None else b""
        labels = [c for c in riff.chunks if _is_label_chunk(c.cid)]
        if len(labels) > 1:
            return None  # several labels (§6.1 c): the copy leaves one, in its usual place
        last = riff.chunks[-1]
        host = last if last in labels else next((c for c in labels if c.end - c.offset == len(new)), None)
        if label is None and labels and host is not last:
            return None  # a removal removes the chunk rather than leave a JUNK one
        patches = [(c.offset, _chunk_bytes(b"JUNK", bytes(c.size))) for c in labels if c is not host]
        total = riff.size
        if host is last:
            total = host.offset + len(new)
            patches.append((host.offset, new))
        elif host is not None:
            patches.append((host.offset, new))
        elif new:
            pad = b"\0" if last.size % 2 and not last.padded else b""
            patches.append((riff.end, pad + new))
            total = riff.end + len(pad) + len(new)
        size_at = 4 if riff.ds64 is None else riff.ds64.payload
        if total != riff.size:
            if riff.ds64 is not None:
                patches.append((size_at, struct.pack("<Q", total - 8)))
            elif total - 8 >= _PLACEHOLDER:
                return None
            else:
                patches.append((size_at, struct.pack("<I", total - 8)))
        if not labels and new and riff.end == riff.declared:
            # A first label: appended past the RIFF end, where no reader looks, then the size shows it.
            return EditPlan(tuple(sorted(patches)), total, commit=size_at, visible=riff.end)
        return EditPlan(tuple(sorted(patches)), total)

    def payload_digest(self, path: Path) -> bytes:
        """SHA-256 over the first ``fmt `` and ``data`` chunks, each as its ID, its payload length as
        an 8-byte little-endian integer, and its payload (the pad byte and every other chunk are
        left out). RF64 and streamed sizes are resolved first, so fixing a placeholder size does not
        change the digest.
        """
        digest = hashlib.sha256()
        with open(path, "rb") as handle, parse_errors(path, "WAV chunk"):
            chunks = _walk(handle).chunks
            for cid in (b"fmt ", b"data"):
                chunk = next(c for c in chunks if c.cid == cid)
                digest.update(cid + struct.pack("<Q", chunk.size))
                hash_range(handle, chunk.payload, chunk.size, digest.update, f"{cid.decode()!r} chunk")
        return digest.digest()


def _length_before_append(handle: BinaryIO) -> int | None:
    riff = _walk(handle)
    return riff.size if riff.leftover else None


def _chunk_labels(handle: BinaryIO, chunk: _Chunk) -> list[FoundLabel]:
    """The label placements in one chunk: an ``AIGC`` chunk, LIST/INFO ``AIGC`` entries, ``id3 ``
    TXXX:AIGC, ``_PMX`` XMP."""
    if chunk.cid not in _LABEL_HOSTS and not _is_label_chunk(chunk.cid):
        return []
    if _is_label_chunk(chunk.cid):
        raw = _read_payload(handle, chunk).rstrip(b"\x00")
        return [FoundLabel.from_text(f"RIFF {chunk.cid.decode()} chunk", raw)]
    if chunk.cid == b"LIST":
        body = _read_payload(handle, chunk) if chunk.size >= 4 else b""
        if body[:4] != b"INFO":
            return []
        return [
            FoundLabel.from_text(f"LIST/INFO {cid.decode()}", _info_text(value))
            for cid, value, _raw in _info_entries(body[4:])
            if is_aigc_name(cid.decode("latin-1"))
        ]
    if chunk.cid in _ID3_CHUNKS:
        return id3_findings(_read_payload(handle, chunk), f"{chunk.cid.decode().strip()} chunk ")
    if chunk.cid == _XMP_CHUNK:
        return xmp_findings(_read_payload(handle, chunk), "_PMX XMP")
    return []


def _copy_chunk(fin: BinaryIO, fout: BinaryIO, chunk: _Chunk) -> None:
    """Copy a chunk verbatim; a streamed ``data`` chunk gets its real size, a missing pad byte is added."""
    if chunk.streamed:
        if chunk.size >= _PLACEHOLDER:
            raise LimitExceededError("streamed data chunk is larger than a RIFF size field can express")
        fout.write(chunk.cid + struct.pack("<I", chunk.size))
    else:
        fin.seek(chunk.offset)
        fout.write(read_exact(fin, 8, "chunk header"))
    copy_range(fin, fout, chunk.payload, chunk.size, f"{chunk.cid.decode('latin-1')!r} chunk")
    if chunk.size % 2 and not chunk.missing:
        fin.seek(chunk.payload + chunk.size)
        fout.write(fin.read(1) if chunk.padded else b"\x00")
