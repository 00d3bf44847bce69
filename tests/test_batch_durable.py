"""Grouped durability: ``durability_group`` / ``write_many`` / ``batch label`` fsync many files in one
round, yet every file is complete, renamed and durable when they return, and a batch killed
mid-way leaves each target old or new."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, _io, inspect, read_label, write_label, write_many
from aigclabel.batch import LabelJob, run
from aigclabel.errors import FileAccessError

from ._tools import exiftool_label, no_temp_files
from .conftest import SAMPLES


def _copies(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for index in range(count):
        name = ("sample.jpg", "sample.png")[index % 2]
        target = folder / f"{index:03d}-{name}"
        shutil.copy(SAMPLES / name, target)
        made.append(target)
    return made


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Count the fsync and syncfs calls (each still done for real)."""
    fsyncs: list[int] = []
    syncfs: list[int] = []
    real_fsync, real_syncfs = os.fsync, _io._libc_syncfs()

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    def counting_syncfs(fd: int) -> int:
        syncfs.append(fd)
        return real_syncfs(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    monkeypatch.setattr(_io, "_libc_syncfs", lambda: counting_syncfs)
    return fsyncs, syncfs


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("whole_fs", [True, False], ids=["syncfs", "fsync-each"])
def test_group_renames_complete_files_at_the_end(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, whole_fs: bool
) -> None:
    if whole_fs and not _io._SYNCFS_REPORTS_ERRORS:
        pytest.skip("syncfs does not report write-back errors here (Linux >= 5.8 only)")
    monkeypatch.setattr(_io, "DURABLE", True)
    monkeypatch.setattr(_io, "_SYNCFS_REPORTS_ERRORS", whole_fs)
    files = _copies(tmp_path, 6)
    before = [f.read_bytes() for f in files]
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    fsyncs, syncfs = _count_syncs(monkeypatch)
    with _io.durability_group() as group:
        for path in files:
            write_label(path, label)
        assert [f.read_bytes() for f in files] == before, "targets show their old content until the group ends"
        assert len(group.pending) == len(files) and not fsyncs and not syncfs
    assert not group.pending and not group.failed
    if whole_fs:
        assert (len(syncfs), len(fsyncs)) == (1, 1), "one syncfs, then one fsync of the directory"
    else:
        assert (len(syncfs), len(fsyncs)) == (0, len(files) + 1), "one fsync per file and one for their directory"
    for path in files:
        assert inspect(path).ok
        assert exiftool_label(path) == label.to_json()
    assert no_temp_files(tmp_path)


def test_group_flushes_at_its_limit_and_before_a_second_write(tmp_path: Path) -> None:
    files = _copies(tmp_path, 5)
    first, second = (AIGCLabel.for_producer(DEMO_PROVIDER_CODE) for _ in range(2))
    with _io.durability_group(limit=2) as group:
        for path in files:
            write_label(path, first)
        assert len(group.pending) == 1, "two flushes of two files each"
        assert read_label(files[0]) == first
        write_label(files[-1], second)  # pending: the group renames the first write before the second reads
    assert read_label(files[-1]) == second
    assert [found.label for found in inspect(files[-1]).labels] == [second]


def _open_descriptors() -> set[str]:
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor, closed since
            names.add(os.readlink(f"/proc/self/fd/{fd}"))
    return names


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_group_releases_every_lock_before_it_returns(tmp_path: Path) -> None:
    """The replaced files' locks are released in a thread while the group goes on (freeing an old
    file waits for the file system's journal); still, when the group returns no descriptor of a
    target or of a replaced file is open, and another process can lock every target at once."""
    files = _copies(tmp_path, 9)
    before = _open_descriptors()
    with _io.durability_group(limit=2) as group:
        for path in files:
            write_label(path, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
        assert group.releasing, "the flushes so far release their locks in a thread"
    assert not group.releasing
    assert {d for d in _open_descriptors() - before if str(tmp_path) in d} == set()
    probe = (
        "import fcntl, sys\n"
        "for name in sys.argv[1:]:\n"
        "    with open(name, 'rb') as f:\n"
        "        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    )
    subprocess.run([sys.executable, "-c", probe, *map(str, files)], check=True, timeout=60)
    assert all(inspect(path).ok for path in files)


def test_group_exception_leaves_targets_unchanged(tmp_path: Path) -> None:
    files = _copies(tmp_path, 3)
    before = [f.read_bytes() for f in files]
    with pytest.raises(RuntimeError), _io.durability_group():
        for path in files:
            write_label(path, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
        raise RuntimeError("interrupted")
    assert [f.read_bytes() for f in files] == before
    assert no_temp_files(tmp_path)


def test_write_many_reports_each_file(tmp_path: Path) -> None:
    files = _copies(tmp_path / "in", 4)
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes((SAMPLES / "sample.png").read_bytes()[:100])
    labels = [AIGCLabel.for_producer(DEMO_PROVIDER_CODE) for _ in files]
    out = tmp_path / "out" / "copy.jpg"
    out.parent.mkdir()
    results = write_many([*zip(files, labels, strict=True), (broken, labels[0]), (files[0], labels[1], out)])
    assert [r.ok for r in results] == [True] * len(files) + [False, True]
    assert results[-1].output == out and read_label(out) == labels[1]
    assert [read_label(f) for f in files] == labels
    assert broken.read_bytes() == (SAMPLES / "sample.png").read_bytes()[:100]
    assert no_temp_files(tmp_path / "in") and no_temp_files(out.parent)


def test_group_records_a_failed_rename(tmp_path: Path) -> None:
    files = _copies(tmp_path, 2)
    with _io.durability_group() as group:
        for index, path in enumerate(files):
            group.owner = index
            write_label(path, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
        files[1].unlink()
        files[1].mkdir()  # the rename over it now fails
    assert list(group.failed) == [1] and isinstance(group.failed[1], FileAccessError)
    assert inspect(files[0]).ok and files[1].is_dir()
    assert no_temp_files(tmp_path)


def test_in_place_batch_resumes_from_the_renamed_files(tmp_path: Path) -> None:
    root, report = tmp_path / "in", tmp_path / "report.jsonl"
    files = _copies(root, 10)
    first = run("label", root, report, job=LabelJob(producer=DEMO_PROVIDER_CODE), workers=2)
    assert (first.ok, first.errors) == (len(files), 0)
    assert all(inspect(f).ok for f in files)
    again = run("label", root, report, job=LabelJob(producer=DEMO_PROVIDER_CODE), workers=2)
    assert (again.skipped, again.ok) == (len(files), 0), "fingerprints are taken after the rename"


def test_killed_batch_leaves_old_or_new_files_and_the_next_run_cleans_up(tmp_path: Path) -> None:
    root, report = tmp_path / "in", tmp_path / "report.jsonl"
    files = _copies(root, 240)
    original = {f: f.read_bytes() for f in files}
    command = [sys.executable, "-m", "aigclabel", "batch", "label", str(root), "--producer", DEMO_PROVIDER_CODE,
               "--report", str(report), "--workers", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (report.exists() and report.stat().st_size) and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _wait_for_group_to_die(process.pid)
    reported = {json.loads(line)["path"] for line in report.read_text().splitlines() if line.endswith("}")}
    assert 0 < len(reported) < len(files), "killed mid-way"
    for path in files:
        if path.read_bytes() != original[path]:
            assert inspect(path).ok, f"{path.name} is neither the old file nor a labelled one"
        if path.relative_to(root).as_posix() in reported:
            assert inspect(path).ok, "a reported file is on disk"
    again = run("label", root, report, job=LabelJob(producer=DEMO_PROVIDER_CODE), workers=2)
    assert again.errors == 0 and again.skipped >= len(reported)
    assert all(inspect(f).ok for f in files)
    assert no_temp_files(root)


def _wait_for_group_to_die(group: int) -> None:
    """SIGKILL is delivered asynchronously: wait until no process of ``group`` still runs (zombies are dead)."""
    deadline = time.monotonic() + 30
    while any(_running_in(stat, group) for stat in Path("/proc").glob("[0-9]*/stat")):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _running_in(stat: Path, group: int) -> bool:
    try:
        fields = stat.read_bytes().rpartition(b")")[2].split()
    except OSError:
        return False
    return int(fields[2]) == group and fields[0] not in (b"Z", b"X")
