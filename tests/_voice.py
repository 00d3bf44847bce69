"""Voices for the voice-matching tests and bench: a deterministic synthetic signal and espeak-ng speakers.

espeak-ng's voices and variants are a weak proxy for distinct people (one synthesiser, formant sets that
differ by design); real speech is fetched, never committed (``tests/corpus/fetch.py``). numpy only, so the
torch reference script (``bench/voice_reference.py``) can import it from a throwaway environment.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: Two utterances per synthetic speaker (different words, so "same speaker" is not "same clip").
SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the rain falls softly on the roof of the old house.",
    "Please remember to bring your passport and two photographs when you come to the office next Tuesday.",
    "Seven ships sailed north along the rocky coast before the winter storms closed the harbour for months.",
)

#: espeak-ng voice+variant names used as distinct "speakers".
ESPEAK_SPEAKERS = ("en", "en+f3", "en-us+m7", "en+f5", "de", "fr+m3")


def reference_signal(seconds: float = 3.2, rate: int = 16000) -> npt.NDArray[np.float32]:
    """A voiced-speech-like test signal from a formula (no randomness, no file): a glottal pulse train
    gliding 110-160 Hz through two formant-like resonances, cut into 4 Hz syllables."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 135 + 25 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    harmonics = sum(
        (np.exp(-(((k * 135) - 700) ** 2) / 2e5) + 0.5 * np.exp(-(((k * 135) - 1200) ** 2) / 3e5) + 0.05)
        * np.sin(k * phase)
        / k
        for k in range(1, 30)
    )
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.1 * harmonics * syllables).astype(np.float32)


def espeak(folder: Path, voice: str, sentence: int) -> Path:
    """``SENTENCES[sentence]`` spoken by espeak-ng ``voice`` into a WAV under ``folder`` (made once)."""
    path = folder / f"{voice.replace('+', '_')}-{sentence}.wav"
    if not path.exists():
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise FileNotFoundError("espeak-ng is not installed")
        subprocess.run([exe, "-v", voice, "-w", str(path), SENTENCES[sentence]], check=True, capture_output=True)
    return path
