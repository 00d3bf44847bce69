"""Byte-level helpers shared by the container modules: atomic output and bounded, checked reads."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def atomic_output(dst: Path, *, mode_from: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dst``; on success it replaces ``dst`` in one rename.

    On any exception the temporary file is removed and ``dst`` (which may be the input file) is
    left exactly as it was. The result keeps the permission bits of ``mode_from`` (or of the file
    it replaces) rather than ``mkstemp``'s 0600.
    """
    dst = Path(dst)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".aigclabel-tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        template = mode_from if mode_from is not None and mode_from.exists() else dst
        if template.exists():
            os.chmod(tmp, stat.S_IMODE(template.stat().st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


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
