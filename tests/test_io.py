"""Atomic output: the destination is replaced whole or not at all, with sensible permissions."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from aigclabel import TruncatedFileError
from aigclabel._io import atomic_output, copy_exact, read_exact


def test_failure_leaves_destination_untouched(tmp_path: Path) -> None:
    target = tmp_path / "photo.jpg"
    target.write_bytes(b"original")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half-written")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"original"
    assert os.listdir(tmp_path) == ["photo.jpg"]


def test_success_replaces_and_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "photo.jpg"
    target.write_bytes(b"original")
    target.chmod(0o640)
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["photo.jpg"]


def test_new_file_gets_umask_mode_not_0600(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "new.bin") as tmp:
        tmp.write_bytes(b"x")
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) & 0o044


def test_checked_reads_raise_typed_errors() -> None:
    with pytest.raises(TruncatedFileError):
        read_exact(io.BytesIO(b"abc"), 4, "header")
    with pytest.raises(TruncatedFileError):
        copy_exact(io.BytesIO(b"abc"), io.BytesIO(), 10, "payload")
