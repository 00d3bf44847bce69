"""Batch jobs over a directory tree: multi-process, resumable, with a JSONL report.

Each file becomes one JSON line in the report, written and flushed as soon as its result arrives,
so a job killed half-way keeps everything it finished. On restart, files whose report line says
``ok`` and whose size and modification time still match are skipped; everything else is redone.

Each worker takes the files in chunks and writes a chunk in one :func:`~aigclabel._io.durability_group`:
one fsync round, then the renames, then one fsync per directory, so a labelled file is durable
before its report line is written, at a fraction of the cost of one fsync round per file.

Work runs in a :class:`concurrent.futures.ProcessPoolExecutor` by default, or on a Dask cluster
(``distributed``, :func:`run_on_dask`) for millions of files: the per-file functions are plain top-level
functions of this module, so any executor that pickles by reference can run them.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ._extras import needs_extra
from ._io import durability_group, sweep_stale
from .api import inspect, write_label
from .errors import AIGCLabelError
from .label import AIGCLabel, LabelValue


@dataclass(frozen=True)
class LabelJob:
    """What a ``label`` batch writes: the producer's fields (a fresh ProduceID per file)."""

    producer: str
    label: str = LabelValue.CONFIRMED.value
    out_dir: str | None = None


def _fingerprint(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


#: A per-file batch function: ``(root, relative_path, job) -> JSON record``.
PerFile = Callable[[str, str, Any], dict[str, Any]]

#: Per-file functions by action name; other modules add theirs with :func:`register_action`.
ACTIONS: dict[str, PerFile] = {}


def action(name: str) -> Callable[[Callable[[Path, str, Any], dict[str, Any]]], PerFile]:
    """Register the body of a per-file action under ``name``.

    The body returns its own fields; the wrapper adds the path, action and status, turns typed
    errors into an ``error`` record, and adds the size/mtime fingerprint that resuming relies on.
    """

    def decorate(body: Callable[[Path, str, Any], dict[str, Any]]) -> PerFile:
        @functools.wraps(body)
        def run_one(root: str, relative: str, job: Any = None, *, fingerprint: bool = True) -> dict[str, Any]:
            path = Path(root) / relative
            record: dict[str, Any] = {"path": relative, "action": name}
            try:
                record.update(status="ok", **body(path, relative, job))
            except AIGCLabelError as exc:
                record.update(status="error", error=str(exc), error_type=type(exc).__name__)
            if fingerprint:
                record["size"], record["mtime_ns"] = _fingerprint(path)
            return record

        run_one._fingerprints = True  # type: ignore[attr-defined]  # run_chunk takes it once, after its renames
        ACTIONS[name] = run_one
        return run_one

    return decorate


@action("label")
def label_one(path: Path, relative: str, job: LabelJob) -> dict[str, Any]:
    """Label one file (in place, or into ``job.out_dir`` keeping the relative path)."""
    dst = path
    if job.out_dir:
        dst = Path(job.out_dir) / relative
        _make_directory(dst.parent)
    made = AIGCLabel.for_producer(job.producer, label=job.label)
    write_label(path, made, dst)
    return {"produce_id": made.produce_id, "output": str(dst)}


#: Output directories the running chunk has made (or found) already: it writes many files into each.
_made: contextvars.ContextVar[set[Path] | None] = contextvars.ContextVar("aigclabel_batch_made", default=None)


def _make_directory(directory: Path) -> None:
    """``mkdir -p directory``; within a chunk once per directory (a ``mkdir`` of an existing one costs
    an exception caught). Outside a chunk (one file per task, as Dask runs it) every time: a worker
    lives on, and a directory removed since must be made again."""
    made = _made.get()
    if made is None or directory not in made:
        _make_directories(directory)
        if made is not None:
            made.add(directory)


def _make_directories(directory: Path) -> None:
    """``directory`` and its missing parents, made top down in a loop (``Path.mkdir(parents=True)`` recurses
    once per missing level, and an output tree mirrors input trees of any depth)."""
    missing = [directory]
    while True:
        try:
            missing[-1].mkdir(exist_ok=True)
        except FileNotFoundError:
            if missing[-1].parent == missing[-1]:
                raise
            missing.append(missing[-1].parent)
            continue
        missing.pop()
        if not missing:
            return


@action("inspect")
def inspect_one(path: Path, relative: str, job: object = None) -> dict[str, Any]:
    """Inspect one file: its label fields and conformance."""
    result = inspect(path)
    found = result.label
    return {
        "conforms": result.ok,
        "labels": len(result.labels),
        "produce_id": found.produce_id if found else None,
        "problems": [p.code for p in result.problems],
    }


@action("verify")
def verify_one(path: Path, relative: str, job: object = None) -> dict[str, Any]:
    """Classify one file per Measures Art. 6 (fast path: trace detectors skipped when confirmed)."""
    from .verify import classify

    verdict = classify(path)
    return {
        "classification": verdict.classification.value,
        "produce_id": verdict.label.produce_id if verdict.label else None,
        "signatures": {role: check.state.value for role, check in verdict.signatures.items()},
        "evidence": [e.kind for e in verdict.evidence],
    }


def register_action(name: str, function: PerFile) -> None:
    """Make ``aigclabel batch NAME`` available; ``function(root, relative, job) -> record``."""
    ACTIONS[name] = function


def iter_files(root: Path, skip: Path | None = None) -> Iterator[str]:
    """Relative paths of regular files under ``root`` in a stable order (each directory's files by name,
    then its subdirectories by name), hidden files and directories, symlinks and ``skip`` left out.

    The directory entries say what each one is, so a file costs no ``stat`` here (a tree of a
    million files is listed before the first is labelled)."""
    skipped = os.fspath(skip) if skip is not None else None
    pending = [(os.fspath(root), "")]  # a stack, not recursion: a tree may nest deeper than Python's frame limit
    while pending:
        directory, prefix = pending.pop()
        subdirectories = []
        for entry in _listing(directory):
            if entry.path == skipped:
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    yield prefix + entry.name
                elif entry.is_dir(follow_symlinks=False):
                    subdirectories.append((entry.path, prefix + entry.name + os.sep))
            except OSError:
                continue
        pending.extend(reversed(subdirectories))


def _listing(directory: str) -> list[os.DirEntry[str]]:
    """The visible entries of ``directory`` by name; none when it cannot be read (as ``os.walk`` skips it) or
    was removed meanwhile."""
    try:
        with os.scandir(directory) as listing:
            return sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        return []


def load_done(report: Path, root: Path, action: str) -> set[str]:
    """Files a previous run of ``action`` finished and that have not changed since."""
    done: set[str] = set()
    if not report.exists():
        return done
    with open(report, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: that file is redone
            if record.get("action") != action or record.get("status") != "ok":
                continue
            path = root / record["path"]
            try:
                if _fingerprint(path) == (record.get("size"), record.get("mtime_ns")):
                    done.add(record["path"])
            except OSError:
                continue
    return done


class Progress(Protocol):
    """What :func:`run` reports progress to (a Rich progress bar in the CLI)."""

    def __call__(self, done: int, total: int, record: dict[str, Any]) -> None: ...


@dataclass
class BatchSummary:
    """Counts of one batch run."""

    total: int
    skipped: int
    ok: int
    errors: int
    seconds: float


def run(
    action: str,
    root: Path,
    report: Path,
    *,
    job: object = None,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    submit: Callable[[PerFile, str, str, object], Future[dict[str, Any]]] | None = None,
) -> BatchSummary:
    """Run ``action`` over every file under ``root``, appending one JSON line per file to ``report``.

    ``executor`` defaults to a process pool of ``workers`` processes. ``submit`` lets a Dask client
    (or any other scheduler) be used instead of an executor.
    """
    function = ACTIONS[action]
    root = root.resolve()
    report = report.resolve()
    started = time.perf_counter()
    done = load_done(report, root, action)
    todo = [rel for rel in iter_files(root, skip=report) if rel not in done]
    if job is not None and isinstance(job, LabelJob) and job.out_dir:
        inside = os.path.join(Path(job.out_dir).resolve(), "")  # what the job writes is not labelled again
        todo = [rel for rel in todo if not os.path.join(root, rel).startswith(inside)]
    summary = BatchSummary(total=len(todo) + len(done), skipped=len(done), ok=0, errors=0, seconds=0.0)
    _sweep(root, todo, job)
    own = executor is None and submit is None
    pool = ProcessPoolExecutor(max_workers=workers) if own else executor
    try:
        futures: list[Future[list[dict[str, Any]]]] | list[Future[dict[str, Any]]]
        if submit is None:
            assert pool is not None
            size = _chunk_size(len(todo), workers or os.cpu_count() or 1)
            chunks = [todo[start : start + size] for start in range(0, len(todo), size)]
            futures = [pool.submit(run_chunk, function, str(root), chunk, job) for chunk in chunks]
        else:
            futures = [submit(function, str(root), rel, job) for rel in todo]
        with open(report, "a", encoding="utf-8") as sink:
            if _ends_mid_line(report):
                sink.write("\n")
            count = 0
            for future in _completed(futures):  # type: ignore[arg-type]
                result = future.result()
                records = result if isinstance(result, list) else [result]
                # A chunk's files are all durable when it returns: its lines go out together, at once.
                sink.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
                sink.flush()
                for record in records:
                    count += 1
                    if record.get("status") == "ok":
                        summary.ok += 1
                    else:
                        summary.errors += 1
                    if progress is not None:
                        progress(count, len(todo), record)
    finally:
        if own and pool is not None:
            pool.shutdown(cancel_futures=True)
    summary.seconds = time.perf_counter() - started
    return summary


def run_on_dask(
    action: str,
    root: Path,
    report: Path,
    scheduler: str,
    *,
    job: object = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> BatchSummary:
    """:func:`run` on a Dask cluster: ``scheduler`` is a scheduler's address, or ``"local"`` for a cluster
    of ``workers`` (default 2) single-threaded processes on this machine, started here and closed after."""
    with needs_extra("distributed"):
        from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1) if scheduler == "local" else None  # type: ignore[no-untyped-call]
    try:
        with Client(cluster if cluster is not None else scheduler) as client:  # type: ignore[no-untyped-call]

            def submit(function: PerFile, *args: object) -> Future[dict[str, Any]]:
                future: Future[dict[str, Any]] = client.submit(function, *args, pure=False)
                return future

            return run(action, root, report, job=job, progress=progress, submit=submit)
    finally:
        if cluster is not None:
            cluster.close()


def _sweep(root: Path, todo: list[str], job: object) -> None:
    """Remove the temporary files a killed earlier run left where this one writes."""
    out = Path(job.out_dir) if isinstance(job, LabelJob) and job.out_dir else None
    for parent in {os.path.dirname(rel) for rel in todo}:
        sweep_stale(root / parent)
        if out is not None and (out / parent).is_dir():
            sweep_stale(out / parent)


#: Files a worker writes in one durability group: a report line waits for its group, and a group
#: holds one lock and descriptor per file.
CHUNK = 64


def _chunk_size(files: int, workers: int) -> int:
    """Up to :data:`CHUNK` files per task, but at least four tasks per worker so none idles at the end."""
    return max(1, min(CHUNK, math.ceil(files / (workers * 4))))


def run_chunk(function: PerFile, root: str, relatives: list[str], job: Any = None) -> list[dict[str, Any]]:
    """Run ``function`` on each file of ``relatives`` in one durability group; one record per file.

    Records are returned only once the group has made every written file durable; a file whose
    fsync or rename failed gets an ``error`` record (its target unchanged). The size/mtime
    fingerprint is taken again after the renames, since an in-place label changes it.
    """
    records: list[dict[str, Any]] = []
    once = {"fingerprint": False} if getattr(function, "_fingerprints", False) else {}
    token = _made.set(set())
    try:
        with durability_group(limit=max(CHUNK, len(relatives))) as group:
            for relative in relatives:
                group.owner = relative
                records.append(function(root, relative, job, **once))
    finally:
        _made.reset(token)
    for record in records:
        failure = group.failed.get(record["path"])
        if failure is not None and record.get("status") == "ok":
            record.update(status="error", error=str(failure), error_type=type(failure).__name__)
        with contextlib.suppress(OSError):
            record["size"], record["mtime_ns"] = _fingerprint(Path(root) / record["path"])
    return records


def _ends_mid_line(report: Path) -> bool:
    """A crash can leave the report ending mid-line; the next record must not be glued to that
    fragment, or it would be unreadable too and its file redone on every later resume."""
    with open(report, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        return size > 0 and handle.seek(size - 1) >= 0 and handle.read(1) != b"\n"


def _completed(futures: list[Future[dict[str, Any]]]) -> Iterable[Future[dict[str, Any]]]:
    if futures and not isinstance(futures[0], Future):  # dask futures
        with needs_extra("distributed"):
            from distributed import as_completed as dask_completed

        return dask_completed(futures)
    return as_completed(futures)


def write_csv(report: Path, destination: Path) -> int:
    """Convert the JSONL report to CSV (latest line per file wins); returns the number of rows."""
    latest: dict[str, dict[str, Any]] = {}
    with open(report, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            latest[record["path"]] = record
    columns = sorted({key for record in latest.values() for key in record})
    with open(destination, "w", newline="", encoding="utf-8") as sink:
        writer = csv.DictWriter(sink, fieldnames=columns)
        writer.writeheader()
        for path in sorted(latest):
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in latest[path].items()})
    return len(latest)
