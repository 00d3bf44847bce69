"""The small public API: read, write, strip and inspect the implicit label of any supported file."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import as_path, durability_group
from .containers import FoundLabel, open_container, read_found
from .errors import (
    AIGCLabelError,
    LimitExceededError,
    MalformedFileError,
    NeedsRepairError,
    NotRegularFileError,
    UnsupportedFormatError,
)
from .label import AIGCLabel, Problem


def read_labels(path: Path | str) -> list[FoundLabel]:
    """Every implicit-label placement found in the file (empty when it carries none)."""
    return read_found(as_path(path))[1]


def vet(path: Path | str) -> None:
    """Raise :class:`LimitExceededError` when the file is over one of our parsers' limits.

    Call it before handing a file to an unbounded decoder (FFmpeg, Pillow): FFmpeg allocates what a
    compressed ID3 frame declares, 1 GiB from a 1 MB file. Any other finding (no label, damaged,
    unsupported format) is left for the decoder and the caller to report.
    """
    try:
        read_labels(path)
    except LimitExceededError:
        raise
    except AIGCLabelError:
        pass


def read_label(path: Path | str) -> AIGCLabel | None:
    """The file's label, or ``None``. When several placements exist, the first parsable one wins;
    use :func:`inspect` to see the conflict."""
    for found in read_labels(path):
        if found.label is not None:
            return found.label
    return None


def _write_or_repair(write: Callable[[], str], repair: Callable[[], None]) -> str:
    try:
        return write()
    except NeedsRepairError:
        repair()
        return "copy"


def write_label(path: Path | str, label: AIGCLabel, output: Path | str | None = None, *, repair: bool = False) -> Path:
    """Label ``path`` (in place, atomically, unless ``output`` is given); returns the written path.

    Any existing label in any placement is replaced, so the result carries exactly one (§6.1 c).
    With ``repair``, a file refused with :class:`NeedsRepairError` (a damaged PDF that qpdf recovers)
    is rewritten whole, repaired, instead; earlier revisions and digital signatures do not survive that.
    """
    dst = as_path(output) if output is not None else as_path(path)
    write_label_how(path, label, output, repair=repair)
    return dst


def write_label_how(
    path: Path | str, label: AIGCLabel, output: Path | str | None = None, *, repair: bool = False
) -> str:
    """:func:`write_label`, returning how the file was written: ``"in-place"`` (only the changed
    metadata, under an undo journal; see :mod:`aigclabel._journal`) or ``"copy"`` (a new file
    renamed over the old one). Either way a crash leaves the old file or the new one."""
    src = as_path(path)
    dst = as_path(output) if output is not None else src
    container = open_container(src)
    if repair:
        label.validate()
        return _write_or_repair(lambda: container.write(src, dst, label), lambda: container.repair(src, dst, label))
    return container.write(src, dst, label)


def recover(path: Path | str) -> str | None:
    """Roll back an interrupted in-place write of ``path`` from its undo journal, or cut the bytes an
    interrupted append without a journal left past the file's end (any read or write of the file
    through aigclabel does this first anyway). Returns ``"rolled back"``, ``"completed"``,
    ``"discarded"`` (a journal whose writer died before changing the file), ``"trimmed"`` or None
    when there was nothing to do."""
    from ._journal import recover as _recover

    path = as_path(path)
    done = _recover(path)
    if done is None:
        try:
            container = open_container(path)
        except (UnsupportedFormatError, MalformedFileError, NotRegularFileError):
            return None  # no file, or none aigclabel writes: nothing of ours to finish
        done = container.recover(path)
    return done


@dataclass(frozen=True)
class Written:
    """One file of :func:`write_many`: where the labelled copy went, or why it was not written."""

    path: Path
    output: Path
    error: AIGCLabelError | None = None

    @property
    def ok(self) -> bool:
        """True when the file was labelled (and is durable)."""
        return self.error is None


def write_many(
    items: Iterable[tuple[Path | str, AIGCLabel] | tuple[Path | str, AIGCLabel, Path | str | None]],
    *,
    group: int = 64,
) -> list[Written]:
    """Label many files, each like :func:`write_label` (``(path, label)`` in place, or
    ``(path, label, output)``), with their fsyncs grouped ``group`` files at a time.

    Every file is as durable when this returns as after :func:`write_label`, and a crash leaves
    each target old or new, but the files share one write-back round per group instead of one
    each. A file that cannot be labelled gets its error in the result and does not stop the others.
    A path listed twice is written twice, in order.
    """
    results: list[Written] = []
    with durability_group(limit=group) as pending:
        for index, item in enumerate(items):
            src, label = as_path(item[0]), item[1]
            output = item[2] if len(item) > 2 else None
            dst = as_path(output) if output is not None else src
            pending.owner = index
            try:
                write_label(src, label, dst)
            except AIGCLabelError as exc:
                results.append(Written(src, dst, exc))
            else:
                results.append(Written(src, dst))
    return [
        Written(done.path, done.output, pending.failed[index]) if index in pending.failed else done
        for index, done in enumerate(results)
    ]


def strip_label(path: Path | str, output: Path | str | None = None, *, repair: bool = False) -> Path:
    """Remove every implicit label from ``path`` (in place unless ``output`` is given); ``repair`` as
    for :func:`write_label`.

    Measures Art. 10 forbids removing labels maliciously; this exists for producers re-issuing
    their own content and for test fixtures.
    """
    src = as_path(path)
    dst = as_path(output) if output is not None else src
    container = open_container(src)
    if repair:
        _write_or_repair(lambda: container.strip(src, dst), lambda: container.repair(src, dst, None))
    else:
        container.strip(src, dst)
    return dst


@dataclass
class Inspection:
    """What :func:`inspect` found in one file."""

    path: Path
    format: str
    description: str
    labels: list[FoundLabel] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: Further reports attached by callers (``"watermark"``, ``"c2pa"``), JSON-ready.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> AIGCLabel | None:
        """The first parsable label, if any."""
        return next((f.label for f in self.labels if f.label is not None), None)

    @property
    def ok(self) -> bool:
        """True when the file carries exactly one conforming label."""
        return self.label is not None and not any(p.severity == "error" for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``inspect --json`` output for one file)."""
        return {
            "path": str(self.path),
            "format": self.format,
            "ok": self.ok,
            "labels": [
                {
                    "location": f.location,
                    "shape": f.parsed.shape if f.parsed else None,
                    "fields": f.label.to_dict() if f.label else None,
                    "raw": f.raw if f.label is None else None,
                    "error": f.error,
                    "problems": [p.to_dict() for p in f.parsed.problems] if f.parsed else [],
                }
                for f in self.labels
            ],
            "problems": [p.to_dict() for p in self.problems],
            **self.extras,
        }


def inspect(path: Path | str) -> Inspection:
    """Read every label placement of a file and judge it against GB 45438 §6.1 and Annex E."""
    path = as_path(path)
    container, labels = read_found(path)
    result = Inspection(path, container.name, container.description, labels)
    if not labels:
        result.problems.append(Problem("no-label", "no implicit AIGC label found", "warning"))
    for found in labels:
        if found.error:
            result.problems.append(Problem("unreadable-label", f"{found.location}: {found.error}"))
        elif found.parsed is not None:
            for problem in found.parsed.problems:
                result.problems.append(
                    Problem(problem.code, f"{found.location}: {problem.message}", problem.severity, problem.field)
                )
    if len(labels) > 1:
        labels = container.distinct_labels(labels)  # one label the format stores twice by design counts once
    if len(labels) > 1:
        distinct = {f.label for f in result.labels if f.label is not None}
        kind = "conflicting labels" if len(distinct) > 1 else "labels"
        result.problems.append(
            Problem(
                "multiple-labels",
                f"{len(labels)} {kind} found ({', '.join(f.location for f in labels)}); "
                "GB 45438 §6.1 c) allows one per file",
            )
        )
    return result
