"""The contract every registered format must pass, run on its bundled sample (``aigclabel/samples``).

Parametrised over :func:`aigclabel.containers.registered`, so a new format is checked the moment it is
registered, and fails here until it ships a sample: label round-trip, labelling again, payload digest
unchanged by labelling and strip, strip round-trip, truncated and garbage-overwritten copies (typed
errors only, input untouched), and the public CLI (``python -m aigclabel``) in place and with ``-o``.
Per-format modules keep what is particular to a format (rich fixtures, independent readers).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

import aigclabel._io
from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, AIGCLabelError, api
from aigclabel.cli import app
from aigclabel.containers import Container, container_for_suffix, open_container, registered

from ._tools import no_temp_files, run_every_action
from .conftest import SAMPLES

FORMATS = sorted(registered())
REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

#: Formats whose second identical write is not byte-identical: a rewrite appends a new metadata block
#: and blanks the old one rather than move the coded data (the sample grows ~640 bytes per write).
REWRITE_GROWS = {"heif", "tiff"}
#: Formats where strip after label does not give back the original bytes: the structure labelling
#: added stays (padding, an emptied box or part, a JUNK chunk, an incremental PDF update, GIF89a).
STRIP_KEEPS_STRUCTURE = {"avi", "gif", "heif", "matroska", "mp3", "mp4", "ogg", "ooxml", "pdf", "tiff", "webp"}


def _known(name: str, formats: set[str], reason: str) -> object:
    """``name`` as a parameter, a strict xfail when it is in ``formats``: fixing it forces the set's update."""
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if name in formats else []
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture(scope="module", autouse=True)
def no_fsync() -> Iterator[None]:
    """Outputs are scratch files: skip the fsync of every atomic write (the CLI children do theirs)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aigclabel._io, "DURABLE", False)
        yield


def _samples_by_format() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted(SAMPLES.iterdir()):
        found.setdefault(open_container(path).name, []).append(path)
    return found


BY_FORMAT = _samples_by_format()


def sample_of(name: str) -> Path:
    """The bundled sample of format ``name``; a registered format without one fails the contract."""
    assert name in BY_FORMAT, f"format {name!r} has no bundled sample in aigclabel/samples: add one"
    return BY_FORMAT[name][0]


def _label(produce_id: str) -> AIGCLabel:
    return AIGCLabel.for_producer(DEMO_PROVIDER_CODE, produce_id)


def _labels(container: Container, path: Path) -> list[AIGCLabel | None]:
    """The labels ``container`` reads, a format's mirrored copies (PDF Info and XMP) counted once."""
    return [found.label for found in container.distinct_labels(container.read(path))]


def _files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` by name: a format's output includes its sidecar (plain text's ``.xmp``)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


class Work:
    """A format's sample copied into a scratch folder, and fresh single-output folders beside it."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.sample = sample_of(name)
        self.container = open_container(self.sample)
        self.root = tmp_path
        self.input = self.out("input")
        shutil.copy(self.sample, self.input)

    def out(self, folder: str) -> Path:
        """``folder/file<suffix>`` under the scratch folder, the folder created (one output per folder)."""
        (self.root / folder).mkdir()
        return self.root / folder / f"file{self.sample.suffix}"

    def labelled(self, folder: str = "labelled", produce_id: str = "first") -> Path:
        out = self.out(folder)
        self.container.write(self.input, out, _label(produce_id))
        return out


@pytest.fixture(params=FORMATS)
def work(request: pytest.FixtureRequest, tmp_path: Path) -> Work:
    return Work(request.param, tmp_path)


def test_every_sample_is_the_format_its_name_says() -> None:
    """Each sample is sniffed (by content) as the format its suffix names."""
    for name, paths in BY_FORMAT.items():
        for path in paths:
            assert container_for_suffix(path.suffix) is registered()[name], (path.name, name)


def test_label_round_trip(work: Work) -> None:
    assert _labels(work.container, work.input) == [], "bundled samples carry no label"
    before = _files(work.input.parent)
    out = work.labelled()
    assert _labels(work.container, out) == [_label("first")]
    inspection = api.inspect(out)  # the public API: container sniffed again, judged against the standard
    assert inspection.ok and inspection.label == _label("first") and inspection.format == work.container.name
    assert _files(work.input.parent) == before, "writing to another path leaves the input as it was"
    assert no_temp_files(out.parent) and no_temp_files(work.input.parent)


def test_labelling_again_leaves_exactly_one_label(work: Work) -> None:
    path = work.labelled()
    for produce_id in ("second", "first"):
        work.container.write(path, path, _label(produce_id))  # in place
        assert _labels(work.container, path) == [_label(produce_id)]
    assert no_temp_files(path.parent)


@pytest.mark.parametrize("name", [_known(n, REWRITE_GROWS, "a rewrite appends a new metadata block") for n in FORMATS])
def test_second_identical_write_is_byte_identical(name: str, tmp_path: Path) -> None:
    work = Work(name, tmp_path)
    once = work.labelled("once")
    twice = work.out("twice")
    work.container.write(once, twice, _label("first"))
    assert _files(twice.parent) == _files(once.parent)


def test_payload_digest_is_unchanged_by_label_and_strip(work: Work) -> None:
    digest = work.container.payload_digest
    original = digest(work.input)
    labelled = work.labelled()
    relabelled = work.labelled("relabelled", "second")
    stripped = work.out("stripped")
    work.container.strip(labelled, stripped)
    assert [digest(p) for p in (labelled, relabelled, stripped)] == [original] * 3


def test_strip_round_trip(work: Work) -> None:
    labelled = work.labelled()
    stripped, again, plain = work.out("stripped"), work.out("again"), work.out("plain")
    work.container.strip(labelled, stripped)
    assert _labels(work.container, stripped) == []
    assert api.inspect(stripped).labels == []
    work.container.strip(stripped, again)
    assert _files(again.parent) == _files(stripped.parent), "strip of a stripped file changes nothing"
    work.container.strip(work.input, plain)
    assert _files(plain.parent) == _files(work.input.parent), "strip of an unlabelled file changes nothing"


@pytest.mark.parametrize(
    "name", [_known(n, STRIP_KEEPS_STRUCTURE, "strip keeps what labelling added") for n in FORMATS]
)
def test_strip_after_label_gives_back_the_original_bytes(name: str, tmp_path: Path) -> None:
    work = Work(name, tmp_path)
    stripped = work.out("stripped")
    work.container.strip(work.labelled(), stripped)
    assert _files(stripped.parent) == _files(work.input.parent)


def _damaged(data: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """Truncated copies (header, body, end) and copies with a run of random bytes written over them."""
    for cut in sorted({1, 8, 32, len(data) // 8, len(data) // 2, len(data) - 16, len(data) - 1}):
        if 0 < cut < len(data):
            yield f"cut at {cut}", data[:cut]
    for _ in range(8):
        at = rng.randrange(min(len(data), 4096)) if rng.random() < 0.7 else rng.randrange(len(data))
        garbage = rng.randbytes(rng.choice((4, 16, 64)))
        yield f"garbage at {at}", data[:at] + garbage + data[at + len(garbage) :]


def test_damaged_copies_give_typed_errors_only(work: Work) -> None:
    """Through the container the registry chose for the sample and through the public API (which sniffs
    the damaged bytes again): every failure is an :class:`AIGCLabelError`, the input stays as it was."""
    seed = work.labelled().read_bytes()
    rng = random.Random(f"contract-{work.container.name}")
    folder = work.root / "damaged"
    folder.mkdir()
    path, out = folder / f"damaged{work.sample.suffix}", folder / f"out{work.sample.suffix}"
    for what, data in _damaged(seed, rng):
        path.write_bytes(data)
        for action in (
            lambda: work.container.read(path),
            lambda: work.container.write(path, out, _label("damaged")),
            lambda: work.container.strip(path, out),
            lambda: work.container.payload_digest(path),
        ):
            try:
                action()
            except AIGCLabelError:
                pass
            except Exception as exc:  # a traceback for a user
                raise AssertionError(f"{work.container.name} {what}: {exc!r}") from exc
        assert path.read_bytes() == data, what
        out.unlink(missing_ok=True)
        run_every_action(path, out, data, work.container)
        out.unlink(missing_ok=True)
        out.with_suffix(".xmp").unlink(missing_ok=True)
        assert no_temp_files(folder), what


# ---------------------------------------------------------------------------- the public CLI


def _cli_process(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aigclabel", *map(str, args)],
        capture_output=True, text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def cli_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, list[str]]]:
    """Every format labelled by ``python -m aigclabel label`` in place (ProduceID "in-place"), then with
    ``-o`` (ProduceID "copy"): (input, copy, errors) per format. Formats run side by side (a CLI process
    costs ~0.3 s of start-up), each format's two commands one after the other."""
    root = tmp_path_factory.mktemp("cli")

    def label(name: str) -> tuple[str, tuple[Path, Path, list[str]]]:
        sample = sample_of(name) if name in BY_FORMAT else None
        work, copy, errors = root / name / "in", root / name / "out", []
        if sample is None:
            return name, (work, copy, [f"no bundled sample for {name}"])
        work = work.with_suffix(sample.suffix)
        copy = copy.with_suffix(sample.suffix)
        work.parent.mkdir()
        shutil.copy(sample, work)
        for args in ((work, "--produce-id", "in-place"), (work, "--produce-id", "copy", "-o", copy)):
            done = _cli_process("label", "-p", DEMO_PROVIDER_CODE, *args)
            if done.returncode != 0:
                errors.append(f"label {args[1:]} exit {done.returncode}: {done.stdout}{done.stderr}")
        return name, (work, copy, errors)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(label, FORMATS))


@pytest.fixture(scope="module")
def cli_inspected(cli_outputs: dict[str, tuple[Path, Path, list[str]]]) -> dict[Path, dict[str, object]]:
    """One ``python -m aigclabel inspect --json`` over every file the CLI labelled, rows by path."""
    files = [p for work, copy, _ in cli_outputs.values() for p in (work, copy) if p.exists()]
    done = _cli_process("inspect", "--json", *files)
    assert done.returncode in (0, 1), done.stderr  # 1: some file did not conform, the rows say which
    return {Path(str(row["path"])): row for row in json.loads(done.stdout)}


def _produce_ids(row: dict[str, object]) -> set[str]:
    labels = row["labels"]  # a format may mirror one label in two places (PDF Info and XMP)
    assert isinstance(labels, list), row
    return {str(found["fields"]["ProduceID"]) for found in labels}


@pytest.mark.parametrize("name", FORMATS)
def test_the_public_cli_labels_in_place_and_with_output(
    name: str, cli_outputs: dict[str, tuple[Path, Path, list[str]]], cli_inspected: dict[Path, dict[str, object]]
) -> None:
    """The test no one had: label in place and with -o, read back with ``inspect``, for every format.

    The plain-text label was written beside the atomic write's temporary name, so ``label`` said
    "labelled" while no label existed; only reading back through the same CLI, per format, shows it.
    """
    work, copy, errors = cli_outputs[name]
    assert not errors, errors
    assert cli_inspected[work]["ok"] and _produce_ids(cli_inspected[work]) == {"in-place"}, "-o leaves the input"
    assert cli_inspected[copy]["ok"] and _produce_ids(cli_inspected[copy]) == {"copy"}
    assert cli_inspected[copy]["format"] == name
    assert [p.name for p in work.parent.iterdir() if p.name.startswith(".")] == [], "no temporary file is left"


def test_cli_strip_removes_the_label_and_leaves_nothing_behind(work: Work) -> None:
    """``strip`` past the Art. 10 guard (the label is unsigned) through the CLI, for every format."""
    labelled = work.labelled()
    stripped = work.out("stripped")
    forced = ("--force-remove-label", "--reason", "contract test", "--db", work.root / "audit.sqlite")
    done = runner.invoke(app, [str(a) for a in ("strip", labelled, "-o", stripped, *forced)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["inspect", "--json", str(stripped)])
    assert json.loads(done.output)[0]["labels"] == []
    assert [p.name for p in work.root.rglob(".*")] == [], "no temporary file or hidden sidecar is left behind"
