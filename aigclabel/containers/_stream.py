"""Streaming helpers shared by the video container modules (not a plugin: the name starts with ``_``).

The video writers rebuild a file from a few edited metadata structures and long runs of untouched
media bytes. Those runs are copied with ``os.copy_file_range`` where the kernel offers it, so the
data never passes through Python (and a filesystem with reflinks may not copy it at all); memory
stays bounded by :data:`aigclabel._io.COPY_CHUNK` either way. Large copies go in 64 MiB slices with
``POSIX_FADV_DONTNEED`` after each, which starts writeback early: the fsync that makes the atomic
rename durable then finds little left to do, and the copy does not flush other processes' cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .._extras import needs_extra
from .._io import COPY_CHUNK, atomic_output, copy_exact
from .._journal import EditPlan
from ..errors import MalformedFileError, TruncatedFileError

if TYPE_CHECKING:
    from ..label import AIGCLabel
    from . import Container

#: Copy in slices this big so that writeback of one slice overlaps the copy of the next.
_RANGE_CHUNK = 64 << 20
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)


def copy_range(src: BinaryIO, dst: BinaryIO, offset: int, size: int, what: str) -> None:
    """Append ``size`` bytes of ``src`` starting at ``offset`` to ``dst`` (at its current position)."""
    if size <= 0:
        return
    dst.flush()
    remaining = size
    pos = offset
    if hasattr(os, "copy_file_range"):
        out_pos = dst.tell()
        try:
            while remaining:
                done = os.copy_file_range(src.fileno(), dst.fileno(), min(remaining, _RANGE_CHUNK), pos, out_pos)
                if done == 0:
                    raise TruncatedFileError(f"file ends inside {what} ({remaining} of {size} bytes missing)")
                remaining -= done
                pos += done
                out_pos += done
                if size >= _RANGE_CHUNK and _DONTNEED is not None:
                    # Start writeback now (the caller fsyncs before its rename anyway) and keep a
                    # multi-GB copy from evicting everyone else's page cache.
                    os.posix_fadvise(dst.fileno(), out_pos - done, done, _DONTNEED)
            dst.seek(out_pos)
            return
        except OSError:
            dst.seek(out_pos)  # filesystem without support: fall back to plain reads for the rest
    src.seek(pos)
    copy_exact(src, dst, remaining, what)


def apply_patches(src: BinaryIO, dst: BinaryIO, patches: list[tuple[int, int, bytes]], total: int, what: str) -> None:
    """Write ``src`` (``total`` bytes) to ``dst`` with byte patches applied, streaming everything else.

    Each patch is ``(offset, replaced length, new bytes)``; a length of 0 inserts. Patches are applied
    in offset order and must not overlap.
    """
    pos = 0
    for offset, length, data in sorted(patches, key=lambda p: (p[0], p[1])):
        copy_range(src, dst, pos, offset - pos, what)
        dst.write(data)
        pos = offset + length
    copy_range(src, dst, pos, total - pos, what)


def plan_from_patches(patches: list[tuple[int, int, bytes]], total: int) -> EditPlan | None:
    """The in-place form of :func:`apply_patches`' patches on a ``total``-byte file, or None when one
    would move what follows it: each must replace exactly its own length, except one reaching the end
    of the file (an append, or a tail rewritten longer or shorter), which sets the new length."""
    edits: list[tuple[int, bytes]] = []
    size = total
    for offset, length, data in sorted(patches, key=lambda p: (p[0], p[1])):
        if offset + length == total and size == total:
            size = offset + len(data)
        elif len(data) != length:
            return None
        edits.append((offset, data))
    return EditPlan(tuple(edits), size)


def hash_range(src: BinaryIO, offset: int, size: int, update: Callable[[bytes], object], what: str) -> None:
    """Feed ``size`` bytes of ``src`` from ``offset`` to the callable ``update`` in bounded chunks."""
    src.seek(offset)
    remaining = size
    while remaining:
        chunk = src.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise TruncatedFileError(f"file ends inside {what} ({remaining} of {size} bytes missing)")
        update(chunk)
        remaining -= len(chunk)


def open_output(path: Path, *, readable: bool = False) -> BinaryIO:
    """Open the (empty, caller-created) temporary output for writing without ``O_TRUNC`` (and for
    reading back too with ``readable``).

    Truncating a file, even an empty one, and rewriting it makes ext4 (``auto_da_alloc``, on by
    default) allocate its blocks and start writing it out when it is closed, in the writer's own
    time: the caller fsyncs once anyway before its atomic rename (a durability group, one round for
    many files), so that flush would be paid twice, once per file.
    """
    fd = os.open(path, (os.O_RDWR if readable else os.O_WRONLY) | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
    try:
        if os.fstat(fd).st_size:
            os.ftruncate(fd, 0)
        return os.fdopen(fd, "w+b" if readable else "wb")
    except BaseException:
        os.close(fd)
        raise


def remux(src: Path, dst: Path, fmt: str, metadata: dict[str, str]) -> None:
    """``ffmpeg -i src -map 0 -c copy -f fmt dst`` done with PyAV (no ffmpeg binary needed): the same
    coded packets in a container written afresh, so its indexes and sizes are whole again. Global
    tags are copied except AIGC ones; ``metadata`` is added. For ``--repair`` only: the muxer
    rewrites every structure, so payload bytes move (the packets themselves stay as they were).
    """
    with needs_extra("media"):
        import av  # PyAV loads the libav* libraries: only a repair needs them

    try:
        with av.open(str(src)) as source, av.open(str(dst), "w", format=fmt) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in source.streams if s.type in _REMUXED}
            if not streams:
                raise MalformedFileError(f"{src}: no audio or video stream to keep")
            out.metadata.update({k: v for k, v in source.metadata.items() if "AIGC" not in k.upper()})
            out.metadata.update(metadata)
            for packet in source.demux([source.streams[i] for i in streams]):
                if packet.dts is None:
                    continue  # the demuxer's end-of-stream marker, not data
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    except av.FFmpegError as exc:
        raise MalformedFileError(f"{src}: ffmpeg could not remux it ({exc})") from exc


_REMUXED = ("video", "audio", "subtitle")


def repair_by_remux(container: Container, src: Path, dst: Path, label: AIGCLabel | None, fmt: str) -> None:
    """:meth:`Container.repair` of the video formats: :func:`remux` ``src`` (asking the muxer for the
    label too, so ffmpeg places it where its readers look), then label the remuxed file as usual."""
    if label is not None:
        label.validate()
    with atomic_output(dst, mode_from=src) as tmp:
        remuxed = tmp.with_name(tmp.name + ".remux")
        try:
            remux(src, remuxed, fmt, {"AIGC": label.to_json()} if label is not None else {})
            container.rewrite(remuxed, tmp, label)
        finally:
            remuxed.unlink(missing_ok=True)
        container.check_written(tmp, label)
