"""Voices for the voice-matching tests and bench: a deterministic synthetic signal and espeak-ng speakers.

espeak-ng's voices and variants are a weak proxy for distinct people (one synthesiser, formant sets that
differ by design); real speech is fetched, never committed (``tests/corpus/fetch.py``). numpy only, so the
torch reference script (``bench/voice_reference.py``) can import it from a throwaway environment.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: Two utterances per synthetic speaker (different words, so "same speaker" is not "same clip").
SENTENCES = (
    "The quick brown fox jumps over the lazy dog while the rain falls softly on the roof of the old house.",
    "Please remember to bring your passport and two photographs when you come to the office next Tuesday.",
    "Seven ships sailed north along the rocky coast before the winter storms closed the harbour for months.",
)

#: Real speech in the pocketsphinx sdist (``tests/corpus/fetch.py`` VOICE_SDISTS), by speaker: the LibriVox
#: reader of "Sense and Sensibility" ch. 1 and the speaker of the "cards" test (its 001.wav, 1.1 s, has too
#: little speech). ``SINGLE_CLIPS`` are of other speakers whose relation to each other is unknown: they are
#: impostors for the two known speakers only.
SPEAKERS = {
    "librivox": tuple(
        f"test/data/librivox/sense_and_sensibility_01_austen_64kb-{n}.wav"
        for n in ("0870", "0880", "0890", "0920", "0930")
    ),
    "cards": tuple(f"test/data/cards/00{n}.wav" for n in (2, 3, 4, 5)),
}
SINGLE_CLIPS = (
    "test/data/forever/input_2_16k.wav",
    "test/regression/chan3.wav",
    "test/data/vad/leak-test.wav",
    "test/data/goforward.raw",
    "test/data/numbers.raw",
    "test/data/tidigits/dhd.2934z.raw",
)
VOICES = Path(__file__).resolve().parent / "corpus" / ".cache" / "voices" / "pocketsphinx-5.1.1"


def read_speech(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Mono float32 samples and rate of a 16-bit PCM WAV, or of a headerless 16 kHz ``.raw`` (pocketsphinx's)."""
    if path.suffix == ".raw":
        return (np.fromfile(path, dtype="<i2") / 32768.0).astype(np.float32), 16000
    with wave.open(str(path)) as reader:
        if reader.getsampwidth() != 2:
            raise ValueError(f"{path.name}: not 16-bit PCM")
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").reshape(-1, reader.getnchannels())
        return (pcm.mean(axis=1) / 32768.0).astype(np.float32), reader.getframerate()


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
