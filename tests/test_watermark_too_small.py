"""Media too small or too short for the invisible mark: a typed refusal through the CLI, never a traceback."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigclabel.errors import CannotCarryMarkError
from aigclabel.watermark import DEMO_KEY, Payload, embed_audio, embed_image


def _wav(path: Path, frames: int, rate: int = 44100) -> Path:
    """A mono 16-bit sine written by the standard library's ``wave`` module."""
    tone = (np.sin(np.arange(frames) * 2 * np.pi * 440 / rate) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(tone.tobytes())
    return path


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("blip.wav", lambda p: _wav(p, 100), "too short to watermark"),
        ("click.wav", lambda p: _wav(p, 2000), "too short to watermark"),
        ("low-rate.wav", lambda p: _wav(p, 8000, rate=4000), "too low to watermark"),
        ("icon.png", lambda p: Image.new("RGB", (16, 16), "red").save(p), "too small to watermark"),
    ],
)
def test_cli_refuses_media_too_small_for_the_mark(tmp_path: Path, name: str, make: object, message: str) -> None:
    src = tmp_path / name
    make(src)  # type: ignore[operator]
    before = src.read_bytes()
    out = tmp_path / f"marked-{name}"
    run = subprocess.run(
        [sys.executable, "-m", "aigclabel", "watermark", "embed", str(src), "-o", str(out), "--produce-id", "P1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 3, run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not out.exists() and src.read_bytes() == before


def test_array_embedders_raise_the_typed_error() -> None:
    payload = Payload.for_produce_id("P1")
    with pytest.raises(CannotCarryMarkError):
        embed_image(np.zeros((20, 64, 3), np.uint8), payload, DEMO_KEY)
    with pytest.raises(CannotCarryMarkError):
        embed_audio(np.zeros(1000), 16000, payload, DEMO_KEY)
    # still a ValueError for callers written before the typed error
    with pytest.raises(ValueError):
        embed_audio(np.zeros(1000), 16000, payload, DEMO_KEY)
