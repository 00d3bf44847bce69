"""fsync policy of atomic_output: on by default (the new file, then its directory after the rename),
off only when asked (argument or AIGCLABEL_FSYNC=0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aigclabel import _io


def _fsyncs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **kwargs: bool) -> int:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    dst = tmp_path / "out.bin"
    with _io.atomic_output(dst, **kwargs) as tmp:
        tmp.write_bytes(b"payload")
    assert dst.read_bytes() == b"payload"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".aigclabel-tmp")]
    return len(calls)


def test_default_is_durable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_io, "DURABLE", True)
    assert _fsyncs(monkeypatch, tmp_path) == 2


def test_argument_overrides_the_process_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_io, "DURABLE", True)
    assert _fsyncs(monkeypatch, tmp_path, durable=False) == 0
    monkeypatch.setattr(_io, "DURABLE", False)
    assert _fsyncs(monkeypatch, tmp_path) == 0
    assert _fsyncs(monkeypatch, tmp_path, durable=True) == 2


def test_permissions_follow_the_replaced_file(tmp_path: Path) -> None:
    dst = tmp_path / "keep.bin"
    dst.write_bytes(b"old")
    dst.chmod(0o640)
    with _io.atomic_output(dst, durable=False) as tmp:
        tmp.write_bytes(b"new")
    assert dst.read_bytes() == b"new"
    assert dst.stat().st_mode & 0o777 == 0o640
    source = tmp_path / "source.bin"
    source.write_bytes(b"s")
    source.chmod(0o604)
    with _io.atomic_output(tmp_path / "fresh.bin", mode_from=source) as tmp:
        tmp.write_bytes(b"f")
    assert (tmp_path / "fresh.bin").stat().st_mode & 0o777 == 0o604


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("off", False), ("1", True), ("", True)])
def test_environment_switch_is_read_at_import(value: str, expected: bool) -> None:
    env = {**os.environ, "AIGCLABEL_FSYNC": value}
    out = subprocess.run(
        [sys.executable, "-c", "from aigclabel import _io; print(_io.DURABLE)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(expected)
