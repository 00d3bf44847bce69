"""Batch jobs: many processes, resumable after a crash, CSV/JSONL reports, a real local Dask cluster."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aigclabel import DEMO_PROVIDER_CODE, inspect
from aigclabel.batch import LabelJob, run, write_csv

from .conftest import SAMPLES


def _tree(root: Path, copies: int = 6) -> list[Path]:
    made = []
    for i in range(copies):
        for name in ("sample.png", "sample.jpg"):
            target = root / f"d{i % 3}" / f"{i}-{name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLES / name, target)
            made.append(target)
    (root / "d0" / "broken.png").write_bytes((SAMPLES / "sample.png").read_bytes()[:100])
    return made


def _lines(report: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in report.read_text().splitlines()]


def test_label_batch_in_processes_then_resume(tmp_path: Path) -> None:
    root, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.jsonl"
    files = _tree(root)
    job = LabelJob(producer=DEMO_PROVIDER_CODE, out_dir=str(out))
    first = run("label", root, report, job=job, workers=2)
    assert (first.ok, first.errors, first.skipped) == (len(files), 1, 0)
    for src in files:
        labelled = out / src.relative_to(root)
        assert inspect(labelled).ok
        assert not inspect(src).labels, "inputs are untouched when --out is given"
    ids = [r["produce_id"] for r in _lines(report) if r["status"] == "ok"]
    assert len(set(ids)) == len(files), "every file gets its own ProduceID"
    second = run("label", root, report, job=job, workers=2)
    assert (second.ok, second.errors, second.skipped) == (0, 1, len(files))


def test_resume_after_a_crash_redoes_only_unfinished_files(tmp_path: Path) -> None:
    root, report = tmp_path / "in", tmp_path / "report.jsonl"
    files = _tree(root, copies=3)
    run("inspect", root, report, workers=2)
    lines = report.read_text().splitlines()
    # a crash: the last two records never made it and the one before was cut mid-line
    report.write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:20])
    finished = {json.loads(line)["path"] for line in lines[:-3] if json.loads(line)["status"] == "ok"}
    again = run("inspect", root, report, workers=2)
    assert again.skipped == len(finished)
    assert again.ok + again.errors == len(files) + 1 - len(finished)
    changed = files[0]
    changed.write_bytes((SAMPLES / "sample.jpg").read_bytes() + b"\0")
    third = run("inspect", root, report, workers=2)
    assert third.ok == 1, "a file changed since it was done is redone"


@pytest.mark.interop  # a local Dask cluster: scheduler and worker processes
def test_cli_batch_with_csv_and_local_dask_cluster(tmp_path: Path) -> None:
    root, report, table = tmp_path / "in", tmp_path / "r.jsonl", tmp_path / "r.csv"
    files = _tree(root, copies=2)
    done = subprocess.run(
        [sys.executable, "-m", "aigclabel", "batch", "label", str(root), "--producer", DEMO_PROVIDER_CODE,
         "--report", str(report), "--csv", str(table), "--dask", "local", "--workers", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the broken file is an error
    assert f"{len(files)} ok, 1 errors" in done.stdout
    assert all(inspect(f).ok for f in files)
    assert write_csv(report, tmp_path / "again.csv") == len(files) + 1
    header = table.read_text().splitlines()[0].split(",")
    assert {"path", "status", "produce_id"} <= set(header)


def test_a_tree_nested_deeper_than_the_frame_limit_is_labelled(tmp_path: Path) -> None:
    """The listing keeps a stack, not one Python frame per directory level, and the output tree is made in a
    loop: a tree 1,200 levels deep (past CPython's recursion limit of 1,000) is labelled in place and into
    ``--out`` through the CLI instead of dying with RecursionError."""
    root, out = tmp_path / "in", tmp_path / "out"
    deep = "/".join(["d"] * 1200)
    root.mkdir()
    for depth in range(1, 1201):  # not mkdir(parents=True), nor rmtree below: pathlib and shutil recurse per level
        (root / deep[: 2 * depth - 1]).mkdir()
    try:
        shutil.copy(SAMPLES / "sample.jpg", root / deep / "bottom.jpg")
        shutil.copy(SAMPLES / "sample.png", root / "top.png")
        for into in ([], ["--out", str(out)]):
            done = subprocess.run(
                [sys.executable, "-m", "aigclabel", "batch", "label", str(root), "--producer", DEMO_PROVIDER_CODE,
                 "--report", str(tmp_path / f"r{len(into)}.jsonl"), *into],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "2 ok, 0 errors" in done.stdout
        for tree in (root, out):
            assert inspect(tree / deep / "bottom.jpg").ok and inspect(tree / "top.png").ok
    finally:  # pytest's clean-up of old temporary folders would die in shutil.rmtree's recursion
        for tree in (root, out):
            for depth in range(1200, 0, -1):
                level = tree / deep[: 2 * depth - 1]
                for leftover in level.iterdir() if level.exists() else ():
                    leftover.unlink()
                with contextlib.suppress(FileNotFoundError):
                    level.rmdir()


def test_verify_batch_classifies_every_file(tmp_path: Path) -> None:
    root, report = tmp_path / "in", tmp_path / "r.jsonl"
    files = _tree(root, copies=2)
    run("label", root, tmp_path / "labels.jsonl", job=LabelJob(producer=DEMO_PROVIDER_CODE), workers=2)
    summary = run("verify", root, report, workers=2)
    assert (summary.ok, summary.errors) == (len(files), 1)
    verdicts = {r["path"]: r.get("classification") for r in _lines(report) if r["status"] == "ok"}
    assert set(verdicts.values()) == {"confirmed"}


def test_listing_skips_hidden_entries_symlinks_and_the_report(tmp_path: Path) -> None:
    """What a batch visits, in its order: each directory's files by name, then its subdirectories by
    name; hidden files and directories, symlinks (to files or directories) and the report are left out."""
    from aigclabel.batch import iter_files

    for name in ("b.jpg", "a.jpg", "z/y.jpg", "z/a/x.jpg", "m/c.jpg", ".hidden.jpg", ".cache/d.jpg", "m/.e.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "a.jpg")
    (tmp_path / "linked").symlink_to(tmp_path / "z", target_is_directory=True)
    report = tmp_path / "m" / "report.jsonl"
    report.write_text("")
    assert list(iter_files(tmp_path, skip=report)) == ["a.jpg", "b.jpg", "m/c.jpg", "z/y.jpg", "z/a/x.jpg"]
    assert "m/report.jsonl" in list(iter_files(tmp_path))
