"""Whatever a parser raises on a damaged file, a container's public methods raise only typed errors.

The conversion lives in the base :class:`~aigclabel.containers.Container` (every public method is
guarded), so a caller of ``open_container(p).read(p)`` never sees ``struct.error``, ``IndexError``,
``KeyError``, ``UnicodeDecodeError``, ``zlib.error``, ``EOFError``... Each registered format is
damaged here from its bundled sample: cut short at several points, and overwritten with random bytes.
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pytest

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
from aigclabel.containers import Container, FoundLabel, open_container, registered
from aigclabel.errors import AIGCLabelError, MalformedFileError

from .conftest import SAMPLES


def _sample_of(name: str) -> Path:
    for sample in sorted(SAMPLES.iterdir()):
        if open_container(sample).name == name:
            return sample
    raise AssertionError(f"format {name!r} has no sample in aigclabel/samples/")


def _damaged(data: bytes, seed: int) -> list[tuple[str, bytes]]:
    """Truncated copies (the header kept, so the format is still recognised) and garbage-overwritten ones."""
    rng = random.Random(seed)
    cuts = sorted({16, 64, len(data) // 4, len(data) // 2, 3 * len(data) // 4, len(data) - 1})
    copies = [(f"cut at {cut}", data[:cut]) for cut in cuts if 0 < cut < len(data)]
    for round_ in range(4):
        start = rng.randrange(8, max(9, len(data) - 8))
        size = rng.randrange(1, 64)
        garbage = bytes(rng.randrange(256) for _ in range(size))
        copies.append((f"garbage {round_} at {start}", data[:start] + garbage + data[start + size :]))
    noisy = bytearray(data)
    for _ in range(max(1, len(data) // 50)):  # scattered single-byte damage, header included after byte 4
        noisy[rng.randrange(4, len(data))] = rng.randrange(256)
    copies.append(("scattered bytes", bytes(noisy)))
    return copies


def _typed_only(what: str, container: Container, method: str, *args: object) -> None:
    try:
        getattr(container, method)(*args)
    except AIGCLabelError:
        pass
    except Exception as exc:
        pytest.fail(f"{what}: {method} leaked {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("name", sorted(registered()))
def test_damaged_samples_raise_only_typed_errors(tmp_path: Path, name: str) -> None:
    sample = _sample_of(name)
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "guard")
    for index, (how, data) in enumerate(_damaged(sample.read_bytes(), seed=sum(map(ord, name)))):
        path = tmp_path / f"{index}{sample.suffix}"
        path.write_bytes(data)
        try:
            container: Container = open_container(path)
        except AIGCLabelError:
            continue  # no longer recognised, or empty: typed too
        what = f"{name} sample {how}"
        _typed_only(what, container, "read", path)
        _typed_only(what, container, "payload_digest", path)
        _typed_only(what, container, "write", path, tmp_path / f"out{index}{sample.suffix}", label)


class _Careless(Container):
    """A format module that forgot every check: each method fails the way raw parsers do."""

    name = "careless"
    description = "careless test format"

    @classmethod
    def accept(cls, head: bytes, path: Path) -> bool:
        return False

    def read(self, path: Path) -> list[FoundLabel]:
        return [FoundLabel("header", str(struct.unpack(">I", path.read_bytes()[:2])))]

    def rewrite(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        {}["tEXt"]  # a parser's KeyError

    def payload_digest(self, path: Path) -> bytes:
        return zlib.decompress(path.read_bytes())

    def repair(self, src: Path, dst: Path, label: AIGCLabel | None) -> None:
        Path(src).read_bytes().decode("ascii")

    def write_full(self, src: Path, dst: Path) -> None:
        raise EOFError


def test_every_public_method_of_a_container_converts_parser_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(b"\x89\xff\x00garbage")
    out = tmp_path / "out.bin"
    careless = _Careless()
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "guard")
    calls = {
        "read": lambda: careless.read(path),
        "write": lambda: careless.write(path, out, label),
        "strip": lambda: careless.strip(path, out),
        "payload_digest": lambda: careless.payload_digest(path),
        "repair": lambda: careless.repair(path, out, None),
        "write_full": lambda: careless.write_full(path, out),
        "check_written": lambda: careless.check_written(path, None),
    }
    for method, call in calls.items():
        with pytest.raises(MalformedFileError) as caught:
            call()
        assert str(path) in str(caught.value), method
        assert "careless test format" in str(caught.value), method
    assert not out.exists()
    assert path.read_bytes() == b"\x89\xff\x00garbage"
