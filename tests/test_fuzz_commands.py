"""Mutants of every registered format through every command: only documented exit codes, no traceback.

Each format gets a small labelled seed file; seeded mutations (truncation, bit flips, inserted bytes,
mostly in the first 4 KB where the structure lives) go through ``label``, ``inspect --json`` and
``strip`` (the container parsers: 200 mutants per format) and through ``check``, ``verify``, ``inspect
--watermark`` and ``watermark detect`` (the decoders: 15 per format, they are slower) and ``mark`` (3 per
format, it re-encodes media). About 20 s. ``make fuzz`` runs
many more with ``AIGCLABEL_FUZZ_SCALE`` (a multiplier) and ``AIGCLABEL_FUZZ_SEED``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from click.testing import CliRunner

import aigclabel._io
from aigclabel import AIGCLabel, api
from aigclabel.cli import app
from aigclabel.containers import registered

from .test_hostile import DOCUMENTED, PRODUCER
from .test_text_documents import make_epub

pytestmark = pytest.mark.interop  # slow (~20 s idle: thousands of CLI runs) and ffmpeg-made seeds

SAMPLES = Path(__file__).resolve().parent.parent / "aigclabel" / "samples"
SCALE = float(os.environ.get("AIGCLABEL_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("AIGCLABEL_FUZZ_SEED", "45438"))
#: Mutants per format through the container commands, and through the decoding commands.
PARSER_MUTANTS = max(1, int(200 * SCALE))
DECODER_MUTANTS = max(1, int(15 * SCALE))
#: Mutants per format through ``mark`` (it re-encodes images, audio and video: the slowest command).
MARK_MUTANTS = max(1, int(3 * SCALE))
runner = CliRunner()
#: The click command built once: typer rebuilds it on every invoke, 80 % of a fast command's time.
COMMAND = typer.main.get_command(app)


def _ffmpeg_copy(src: Path, dst: Path) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy", str(dst)], check=True)
    return dst


def _avif(dst: Path) -> Path:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    Image.new("RGB", (32, 24), (200, 80, 20)).save(dst, quality=60)
    return dst


@pytest.fixture(scope="module", autouse=True)
def no_fsync() -> Iterator[None]:
    """Mutant outputs are scratch files: skip the fsync of every atomic write."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aigclabel._io, "DURABLE", False)
        yield


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One labelled seed file per registered format."""
    folder = tmp_path_factory.mktemp("seeds")
    made: dict[str, Path] = {}
    for sample in SAMPLES.iterdir():
        made[sample.suffix] = shutil.copy(sample, folder / sample.name)
    made[".avi"] = _ffmpeg_copy(SAMPLES / "sample.mp4", folder / "sample.avi")
    made[".flv"] = _ffmpeg_copy(SAMPLES / "sample.mp4", folder / "sample.flv")
    made[".avif"] = _avif(folder / "sample.avif")
    made[".epub"] = make_epub(folder / "sample.epub")
    made[".txt"] = folder / "sample.txt"
    made[".txt"].write_text("人工智能生成的文本。\n" * 20, encoding="utf-8")
    label = AIGCLabel.for_producer(PRODUCER, "fuzz-seed")
    by_format: dict[str, Path] = {}
    for path in made.values():
        try:
            api.write_label(path, label)
            by_format[api.inspect(path).format] = path
        except Exception:  # a sample the registry cannot label (e.g. .opus is Ogg, already covered)
            continue
    missing = set(registered()) - set(by_format)
    assert not missing, f"no seed for {sorted(missing)}"
    return by_format


def mutants(data: bytes, count: int, rng: random.Random) -> Iterator[bytes]:
    """``count`` mutants of ``data``: truncations, bit flips, byte insertions (mostly in the header)."""
    for _ in range(count):
        out = bytearray(data)
        span = min(len(out), 4096) if rng.random() < 0.8 else len(out)
        kind = rng.choice(("cut", "flip", "insert", "flip+cut"))
        if kind in ("flip", "flip+cut"):
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(span)] ^= 1 << rng.randrange(8)
        if kind == "insert":
            at = rng.randrange(span)
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        if kind in ("cut", "flip+cut"):
            del out[rng.randrange(1, len(out)) :]
        yield bytes(out)


def run(args: list[str], path: Path) -> None:
    result = runner.invoke(COMMAND, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"{args[:2]} on {path.name} (AIGCLABEL_FUZZ_SEED={SEED}): {result.exception!r}"
        ) from result.exception
    assert result.exit_code in DOCUMENTED, (args, SEED, result.exit_code, result.output[-500:])


def _fuzz(seeds: dict[str, Path], tmp_path: Path, name: str, count: int, commands: list[list[str]]) -> None:
    rng = random.Random(f"{SEED}-{name}-{commands[0][0]}")
    seed = seeds[name]
    path, out = tmp_path / f"mutant{seed.suffix}", tmp_path / f"out{seed.suffix}"
    for number, data in enumerate(mutants(seed.read_bytes(), count, rng)):
        path.write_bytes(data)
        for args in commands:
            run([a.format(file=path, out=out, db=tmp_path / "audit.sqlite") for a in args], path)
            out.unlink(missing_ok=True)
        assert path.read_bytes() == data, f"mutant {number} of {name} was changed"


PARSER_COMMANDS = [
    ["label", "-p", PRODUCER, "-o", "{out}", "{file}"],
    ["inspect", "--json", "{file}"],
    ["strip", "-o", "{out}", "--db", "{db}", "{file}"],  # reads every mutant; the Art. 10 guard refuses most
]
DECODER_COMMANDS = [
    ["check", "--json", "{file}"],
    ["verify", "--json", "{file}"],
    ["inspect", "--watermark", "{file}"],
    ["watermark", "detect", "{file}"],
    # past the guard to the container's strip and the audit record (~50 ms each, so on the smaller set)
    ["strip", "-o", "{out}", "--force-remove-label", "--reason", "fuzz", "--db", "{db}", "{file}"],
]


@pytest.mark.parametrize("name", sorted(registered()))
def test_parser_commands_on_mutants(seeds: dict[str, Path], tmp_path: Path, name: str) -> None:
    _fuzz(seeds, tmp_path, name, PARSER_MUTANTS, PARSER_COMMANDS)


@pytest.mark.parametrize("name", sorted(registered()))
def test_decoder_commands_on_mutants(seeds: dict[str, Path], tmp_path: Path, name: str) -> None:
    _fuzz(seeds, tmp_path, name, DECODER_MUTANTS, DECODER_COMMANDS)


MARK_COMMANDS = [["mark", "-o", "{out}", "{file}"]]


@pytest.mark.parametrize("name", sorted(registered()))
def test_mark_on_mutants(seeds: dict[str, Path], tmp_path: Path, name: str) -> None:
    _fuzz(seeds, tmp_path, name, MARK_MUTANTS, MARK_COMMANDS)
