"""Byte-level helpers shared by the container modules: atomic output and bounded, checked reads."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import LimitExceededError, TruncatedFileError

#: Chunk size for streaming copies: large enough for throughput, small enough for bounded memory.
COPY_CHUNK = 1 << 20

#: Largest metadata structure (one XMP packet, one tag block) we agree to hold in memory.
MAX_METADATA_BYTES = 16 << 20

#: Largest image (in pixels) a detector or checker decodes: a few hundred KB of PNG can declare
#: gigabytes of pixels, and a platform must not let one upload take its memory. 50 MP covers 8K frames.
MAX_DECODE_PIXELS = 50_000_000

#: Whether :func:`atomic_output` fsyncs the new file before renaming it over the old one, when the
#: caller does not say. On by default: without it a crash just after an in-place write can leave
#: an empty file where the input was. ``AIGCLABEL_FSYNC=0`` in the environment (read once, at
#: import) turns it off for outputs that are cheap to redo (scratch copies, tmpfs, benchmarks);
#: the rename itself stays atomic either way.
DURABLE = os.environ.get("AIGCLABEL_FSYNC", "1").strip().lower() not in {"0", "false", "no", "off"}


@contextlib.contextmanager
def atomic_output(dst: Path, *, mode_from: Path | None = None, durable: bool | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; on success it replaces ``dst`` in one rename.

    On any exception the temporary file is removed and ``dst`` (which may be the input file) is
    left exactly as it was. The result keeps the permission bits of ``mode_from`` (or of the file
    it replaces) rather than ``mkstemp``'s 0600. ``durable`` (default :data:`DURABLE`) fsyncs the
    new file before the rename, so the rename never exposes data still only in the page cache.
    """
    dst = Path(dst)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".aigclabel-tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _target_mode(mode_from, dst))
        if DURABLE if durable is None else durable:
            fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))  # Windows fsyncs writable handles only
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _target_mode(mode_from: Path | None, dst: Path) -> int:
    """Permission bits for the new file: ``mode_from``'s, else those of the file it replaces, else
    what a plain ``open()`` would give under the current umask. One stat per existing template."""
    for template in (mode_from, dst):
        if template is not None:
            try:
                return stat.S_IMODE(os.stat(template).st_mode)
            except OSError as exc:
                if exc.errno not in _MISSING:  # the errors Path.exists() reads as "no such file"
                    raise
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def read_exact(handle: BinaryIO, size: int, what: str) -> bytes:
    """Read exactly ``size`` bytes or raise :class:`TruncatedFileError` naming ``what``."""
    if size > MAX_METADATA_BYTES:
        raise LimitExceededError(f"{what} declares {size} bytes, over the {MAX_METADATA_BYTES} byte limit")
    data = handle.read(size)
    if len(data) != size:
        raise TruncatedFileError(f"file ends inside {what} (wanted {size} bytes, got {len(data)})")
    return data


def copy_exact(src: BinaryIO, dst: BinaryIO, size: int, what: str) -> None:
    """Stream exactly ``size`` bytes from ``src`` to ``dst`` in bounded chunks."""
    remaining = size
    while remaining:
        chunk = src.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise TruncatedFileError(f"file ends inside {what} ({remaining} of {size} bytes missing)")
        dst.write(chunk)
        remaining -= len(chunk)


def copy_rest(src: BinaryIO, dst: BinaryIO) -> None:
    """Stream everything left in ``src`` to ``dst``."""
    shutil.copyfileobj(src, dst, COPY_CHUNK)


def file_size(handle: BinaryIO) -> int:
    """Size of an open seekable file, leaving its position unchanged."""
    return os.fstat(handle.fileno()).st_size
