"""What RIFF formats (WAV, AVI) share for a first label appended without a journal (not a plugin).

A reader of a RIFF file stops where the RIFF size says, so a chunk appended past that end is
invisible until one write of the size shows it (:attr:`aigclabel._journal.EditPlan.commit`). A kill
or a crash between the two leaves a leftover past the RIFF end, which :func:`appended_leftover`
recognises (strictly: any other bytes there are someone else's and are kept) and
:func:`trim_leftover` cuts, so the file is again byte for byte the old one.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .._guard import hostile_input
from .._journal import APPEND_BLOCK, APPEND_HEAD, drop_leftover
from ..errors import FileAccessError


def appended_leftover(
    handle: BinaryIO, end: int, size: int, cid: bytes, head: int, body: Callable[[int, bytes], bool]
) -> bool:
    """Whether the bytes from ``end`` (where the RIFF size says the form ends) to ``size`` (the end
    of the file) are what an interrupted append of one ``cid`` chunk leaves: the pad byte an odd end
    needs, the chunk's header, ``head`` bytes of its body that ``body(declared length, those bytes)``
    accepts (a kill never leaves fewer than :data:`~aigclabel._journal.APPEND_HEAD` bytes), then the
    whole chunk, or a part of it ending on a 4 KiB boundary (where a kill can split a write)."""
    pad = end & 1
    wanted = pad + 8 + head
    assert wanted <= APPEND_HEAD, "the writer guarantees only APPEND_HEAD whole bytes"
    handle.seek(end)
    got = handle.read(wanted)
    if len(got) < wanted or got[:pad] != b"\0" * pad or got[pad : pad + 4] != cid:
        return False
    (length,) = struct.unpack_from("<I", got, pad + 4)
    if not body(length, got[pad + 8 :]):
        return False
    whole = pad + 8 + length + length % 2
    return size - end == whole or (size - end < whole and size % APPEND_BLOCK == 0)


def trim_leftover(path: Path, what: str, length_before: Callable[[BinaryIO], int | None]) -> str | None:
    """``Container.recover`` of a RIFF format: cut the leftover ``length_before`` finds (it reads the
    file and returns its length before the interrupted append, or None); ``"trimmed"`` or None."""
    with hostile_input(path, what):
        return "trimmed" if drop_leftover(path, length_before) else None


def trim_after_read(path: Path, what: str, length_before: Callable[[BinaryIO], int | None]) -> None:
    """Like a journal, an interrupted append is finished by the next read of the file; readers ignore
    the leftover, so a file that cannot be written keeps it."""
    with contextlib.suppress(FileAccessError):
        trim_leftover(path, what, length_before)
