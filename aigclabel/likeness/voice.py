"""Voices: resemblyzer 0.1.4's speaker encoder (GE2E, 256-d, Apache-2.0) run on numpy.

The weights are the ``pretrained.pt`` that resemblyzer's wheel ships (the ``[likeness]`` extra installs the
wheel without its dependencies; resemblyzer itself is never imported, it would import torch). They are read
by a restricted unpickler that cannot execute code (:mod:`._torchload`) and run by a numpy LSTM
(:mod:`._ge2e`) that follows resemblyzer's preprocessing and reproduces torch's output to about 1e-7
(measured against resemblyzer on torch 2.13.0: 9e-8 at most; ``tests/test_likeness_voice.py`` pins a
reference vector that ``bench/voice_reference.py`` computed with torch).

:meth:`VoiceEncoder.find` keeps the voiced 30 ms windows of the first :data:`MAX_SECONDS` (an energy
detector: it tells sound from silence, not speech from music), cuts the speech into spans of at most
:data:`SPAN_SECONDS` and embeds each span. Two embeddings of one speaker are at cosine distance below
:data:`THRESHOLD`; ``bench/likeness.py --voice`` measures how often that holds and how little a pitch shift
takes to defeat it.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .. import _budget
from .._extras import FEATURES
from ..errors import MalformedFileError, MissingExtraError
from . import _ge2e
from ._torchload import load_tensors
from .types import Likeness, Modality

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["MAX_SECONDS", "MODEL", "SPAN_SECONDS", "THRESHOLD", "VoiceEncoder", "find_in_file", "weights_path"]

#: Names the weights and the preprocessing; recorded with every decision.
MODEL = "resemblyzer-0.1.4-ge2e-256/numpy-energy-vad"
#: Cosine distance (1 - cosine similarity) at or below which two voices are taken to be one speaker. On the real
#: speech available offline (bench/likeness.py --voice): no false accept, 6 % false rejects, EER 1.4 % at 0.298.
THRESHOLD = 0.25
#: Seconds of sound analysed from the start of a clip or file; the rest is not listened to.
MAX_SECONDS = 120.0
#: Seconds of speech one embedding covers at most (a long monologue gives several).
SPAN_SECONDS = 10.0
#: Less speech than this in a span gives no embedding (resemblyzer's partials are 1.6 s long).
MIN_SPEECH_SECONDS = 1.0
#: Sample rates accepted for raw samples.
MIN_RATE, MAX_RATE = 4000, 384000

Floats = npt.NDArray[np.float32]


def weights_path() -> Path:
    """Where resemblyzer's wheel put ``pretrained.pt``; :class:`MissingExtraError` when it is not installed."""
    spec = importlib.util.find_spec("resemblyzer")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "pretrained.pt"
        if path.is_file():
            return path
    raise MissingExtraError(FEATURES["likeness"], "likeness", "resemblyzer")


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> _ge2e.Weights:
    state = load_tensors(path)
    try:
        return _ge2e.Weights.from_state(state["model_state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedFileError(f"{path.name}: not resemblyzer's speaker encoder ({exc})") from exc


def _mono(samples: npt.ArrayLike, rate: int) -> Floats:
    """``samples`` as finite mono float32, checked; (n, channels) arrays are averaged."""
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or not MIN_RATE <= rate <= MAX_RATE:
        raise MalformedFileError(f"audio: sample rate {rate!r} is not between {MIN_RATE} and {MAX_RATE} Hz")
    array = np.asarray(samples)
    if array.ndim == 2:
        array = array.mean(axis=1)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise MalformedFileError(f"audio: expected mono samples, got an array of shape {array.shape} {array.dtype}")
    if np.issubdtype(array.dtype, np.integer):
        array = array / float(np.iinfo(array.dtype).max)
    array = array[: int(MAX_SECONDS * rate)].astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise MalformedFileError("audio: samples contain NaN or infinity")
    return array


class VoiceEncoder:
    """Finds voices in sound and compares them (the :class:`~aigclabel.likeness.types.Encoder` protocol)."""

    modality: Modality = "voice"
    model: str = MODEL
    threshold: float = THRESHOLD

    def __init__(self, weights: Path | None = None) -> None:
        self._path = weights

    @property
    def weights(self) -> _ge2e.Weights:
        """The network's parameters, loaded on first use and cached per process."""
        return _load(self._path or weights_path())

    def _speech(self, samples: npt.ArrayLike, rate: int) -> tuple[Floats, npt.NDArray[np.bool_]]:
        wav = _ge2e.resample(_mono(samples, rate), int(rate))
        mask = _ge2e.voice_mask(wav)  # on the level as recorded: the floor is absolute
        wav = _ge2e.normalize_volume(wav[: mask.size * _ge2e.VAD_WINDOW])
        return wav, mask

    def find(self, samples: npt.ArrayLike, rate: int) -> list[Likeness]:
        """One :class:`Likeness` per span of up to :data:`SPAN_SECONDS` of speech, ``where=(start, end)`` in
        seconds; ``quality`` is the share of the span that is speech. Silence gives an empty list."""
        wav, mask = self._speech(samples, rate)
        spans = _spans(np.flatnonzero(mask))
        _budget.check("voice matching")
        pieces = [_windows(wav, span) for span in spans]
        vectors = _ge2e.embed_utterances(self.weights, pieces)
        step = _ge2e.VAD_WINDOW / _ge2e.SAMPLING_RATE
        return [
            Likeness(
                modality="voice",
                vector=vector,
                where=(round(float(span[0]) * step, 3), round(float(span[-1] + 1) * step, 3)),
                model=self.model,
                quality=round(span.size / float(span[-1] - span[0] + 1), 3),
            )
            for span, vector in zip(spans, vectors, strict=True)
        ]

    def embed(self, samples: npt.ArrayLike, rate: int) -> Floats | None:
        """One embedding of all the speech in the clip (enrolment), or ``None`` when there is too little."""
        wav, mask = self._speech(samples, rate)
        voiced = np.flatnonzero(mask)
        if voiced.size * _ge2e.VAD_WINDOW < MIN_SPEECH_SECONDS * _ge2e.SAMPLING_RATE:
            return None
        vector: Floats = _ge2e.embed_utterances(self.weights, [_windows(wav, voiced)])[0]
        return vector

    def distance(self, a: Floats, b: Floats) -> float:
        """Cosine distance of two embeddings (0 = same direction; the vectors are L2-normalised)."""
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        return float(1.0 - np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))

    def find_in_file(self, path: Path | str) -> list[Likeness]:
        """:meth:`find` on the first audio stream of an audio or video file (its first :data:`MAX_SECONDS`).

        A file without sound raises :class:`~aigclabel.errors.UnsupportedFormatError`; one that does not
        decode, :class:`~aigclabel.errors.MalformedFileError`.
        """
        from .._decode import decode_audio

        samples, _ = decode_audio(Path(path), rate=_ge2e.SAMPLING_RATE, max_seconds=MAX_SECONDS)
        return self.find(samples, _ge2e.SAMPLING_RATE)


def _spans(voiced: npt.NDArray[np.intp]) -> Sequence[npt.NDArray[np.intp]]:
    """The voiced window indices cut into runs of at most SPAN_SECONDS; a short tail joins the run before."""
    per_span = int(SPAN_SECONDS * _ge2e.SAMPLING_RATE / _ge2e.VAD_WINDOW)
    least = MIN_SPEECH_SECONDS * _ge2e.SAMPLING_RATE / _ge2e.VAD_WINDOW
    spans = [voiced[i : i + per_span] for i in range(0, voiced.size, per_span)]
    if len(spans) > 1 and spans[-1].size < least:
        spans[-2:] = [np.concatenate(spans[-2:])]
    return [s for s in spans if s.size >= least]


def _windows(wav: Floats, windows: npt.NDArray[np.intp]) -> Floats:
    """The samples of the given 30 ms windows, joined (long silences between them are left out)."""
    frames = wav.reshape(-1, _ge2e.VAD_WINDOW)
    return np.ascontiguousarray(frames[windows].reshape(-1))


def find_in_file(path: Path | str) -> list[Likeness]:
    """The voices in an audio file or a video's sound track (:meth:`VoiceEncoder.find_in_file`)."""
    return VoiceEncoder().find_in_file(path)
