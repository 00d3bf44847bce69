"""The GE2E speaker encoder of resemblyzer 0.1.4 on numpy: mel frames, voice activity, partials, the LSTM.

Why numpy: the weights are three LSTM layers and a linear layer (17 MB); PyTorch would add gigabytes to
the install for a few matrix products. Everything here follows resemblyzer's ``audio.py``,
``hparams.py`` and ``voice_encoder.py`` step by step, with two stated differences:

* the mel spectrogram is librosa's (``melspectrogram``: periodic Hann window of 400 samples, hop 160,
  centred frames with reflect padding as librosa had when the model was trained, power 2, Slaney mel
  filterbank of 40 bands with Slaney area normalisation), rebuilt here on numpy since librosa is not a
  dependency; resampling is scipy's polyphase filter instead of librosa's;
* voice activity is an energy detector (webrtcvad is not available): a 30 ms window is voiced when it is
  no more than :data:`VAD_RANGE_DB` below the loudest windows and above :data:`VAD_FLOOR_DBFS`; the same
  moving average and dilation as resemblyzer then smooth it. It tells sound from silence, not speech
  from other sound: music or a tone counts as "voice" and yields an embedding that matches nobody well.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from math import gcd
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage, signal, special
from threadpoolctl import threadpool_limits

Floats = npt.NDArray[np.float32]

# resemblyzer/hparams.py
SAMPLING_RATE = 16000
MEL_WINDOW = 400  # 25 ms
MEL_HOP = 160  # 10 ms
MEL_CHANNELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
VAD_WINDOW = 480  # 30 ms
VAD_AVERAGE_WIDTH = 8
VAD_MAX_SILENCE = 6
NORM_TARGET_DBFS = -30.0
HIDDEN = 256
LAYERS = 3
#: Partials run through the LSTM at once (bounds memory at ~30 MB; 120 s of speech is ~160 partials).
BATCH = 32
# voice_encoder.embed_utterance defaults
PARTIALS_PER_SECOND = 1.3
MIN_COVERAGE = 0.75

#: Energy VAD: a window is voiced within this many dB of the loudest windows (their 95th percentile) ...
VAD_RANGE_DB = 30.0
#: ... and above this absolute level (of the signal before volume normalisation).
VAD_FLOOR_DBFS = -55.0

_INT16_MAX = 2**15 - 1


def resample(samples: Floats, rate: int) -> Floats:
    """``samples`` at :data:`SAMPLING_RATE` (polyphase filter)."""
    if rate == SAMPLING_RATE:
        return samples.astype(np.float32, copy=False)
    g = gcd(SAMPLING_RATE, rate)
    resampled: Floats = np.asarray(signal.resample_poly(samples, SAMPLING_RATE // g, rate // g), dtype=np.float32)
    return resampled


def normalize_volume(wav: Floats) -> Floats:
    """Raise the level to -30 dBFS RMS if it is below (``increase_only`` as resemblyzer)."""
    rms = float(np.sqrt(np.mean(np.square(wav.astype(np.float64) * _INT16_MAX)))) if wav.size else 0.0
    if rms <= 0.0:
        return wav
    change = NORM_TARGET_DBFS - 20.0 * np.log10(rms / _INT16_MAX)
    return wav if change < 0 else (wav * np.float32(10 ** (change / 20))).astype(np.float32)


def voice_mask(wav: Floats) -> npt.NDArray[np.bool_]:
    """One flag per 30 ms window (the tail that does not fill one is dropped): voiced after smoothing."""
    n = wav.size // VAD_WINDOW
    if n == 0:
        return np.zeros(0, dtype=bool)
    power = np.mean(np.square(wav[: n * VAD_WINDOW].reshape(n, VAD_WINDOW), dtype=np.float64), axis=1)
    level = 10.0 * np.log10(np.maximum(power, 1e-20))
    flags = (level > VAD_FLOOR_DBFS) & (level > np.percentile(level, 95) - VAD_RANGE_DB)
    # resemblyzer's moving average (zero padded, centred like theirs), rounding and dilation
    width = VAD_AVERAGE_WIDTH
    padded = np.concatenate((np.zeros((width - 1) // 2), flags.astype(np.float64), np.zeros(width // 2)))
    total = np.cumsum(padded)
    total[width:] = total[width:] - total[:-width]
    mask = np.round(total[width - 1 :] / width).astype(bool)
    return np.asarray(ndimage.binary_dilation(mask, np.ones(VAD_MAX_SILENCE + 1)), dtype=bool)


def _mel_basis() -> Floats:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40): Slaney mel scale and area normalisation."""
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0

    def hz_to_mel(hz: float) -> float:
        return hz / f_sp if hz < min_log_hz else min_log_mel + float(np.log(hz / min_log_hz)) / logstep

    mels = np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLING_RATE / 2), MEL_CHANNELS + 2)
    hz = np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)
    fft_hz = np.linspace(0, SAMPLING_RATE / 2, 1 + MEL_WINDOW // 2)
    fdiff = np.diff(hz)
    ramps = np.subtract.outer(hz, fft_hz)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (hz[2:] - hz[:-2]))[:, None]
    return weights.astype(np.float32)


_MEL = _mel_basis()
_WINDOW = signal.get_window("hann", MEL_WINDOW, fftbins=True)


def mel_frames(wav: Floats) -> Floats:
    """(frames, 40) power mel spectrogram of 16 kHz ``wav`` (not logarithmic, as resemblyzer)."""
    half = MEL_WINDOW // 2
    padded = np.pad(wav.astype(np.float64), half, mode="reflect" if wav.size > half else "constant")
    n = 1 + wav.size // MEL_HOP
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_WINDOW)[::MEL_HOP][:n]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    return (power @ _MEL.T.astype(np.float64)).astype(np.float32)


def partial_slices(n_samples: int) -> list[tuple[int, int]]:
    """Frame ranges of the 160-frame partials covering ``n_samples`` (resemblyzer's compute_partial_slices)."""
    n_frames = int(np.ceil((n_samples + 1) / MEL_HOP))
    step = int(np.round((SAMPLING_RATE / PARTIALS_PER_SECOND) / MEL_HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + step + 1)
    slices = [(i, i + PARTIAL_FRAMES) for i in range(0, steps, step)]
    start, stop = slices[-1]
    coverage = (n_samples - start * MEL_HOP) / ((stop - start) * MEL_HOP)
    if coverage < MIN_COVERAGE and len(slices) > 1:
        slices.pop()
    return slices


@dataclass(frozen=True)
class Weights:
    """The encoder's parameters: per layer (W_ih, W_hh, b_ih + b_hh), then the linear layer."""

    layers: tuple[tuple[Floats, Floats, Floats], ...]
    linear_w: Floats
    linear_b: Floats

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Weights:
        """Pick and check the tensors of resemblyzer's ``model_state``."""

        def get(name: str, shape: tuple[int, ...]) -> Floats:
            value = state.get(name)
            if not isinstance(value, np.ndarray) or value.shape != shape:
                raise ValueError(f"{name}: expected a float tensor of shape {shape}")
            return np.ascontiguousarray(value, dtype=np.float32)

        layers = []
        for k in range(LAYERS):
            inputs = MEL_CHANNELS if k == 0 else HIDDEN
            w_ih = get(f"lstm.weight_ih_l{k}", (4 * HIDDEN, inputs))
            w_hh = get(f"lstm.weight_hh_l{k}", (4 * HIDDEN, HIDDEN))
            bias = get(f"lstm.bias_ih_l{k}", (4 * HIDDEN,)) + get(f"lstm.bias_hh_l{k}", (4 * HIDDEN,))
            layers.append((np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), bias))
        linear_w = np.ascontiguousarray(get("linear.weight", (HIDDEN, HIDDEN)).T)
        return cls(tuple(layers), linear_w, get("linear.bias", (HIDDEN,)))


def forward(weights: Weights, mels: Floats) -> Floats:
    """L2-normalised embeddings of a batch of partials, ``mels`` of shape (batch, frames, 40).

    torch's ``nn.LSTM`` (gates in the order input, forget, cell, output), the last layer's final hidden
    state, then linear, ReLU and L2 norm, all in float32.
    """
    with threadpool_limits(1, "blas"):  # small products: BLAS threads only spin (50x the CPU under load)
        embeddings = _forward(weights, mels.astype(np.float32, copy=False))
    return embeddings


def _forward(weights: Weights, x: Floats) -> Floats:
    batch, steps, _ = x.shape
    h = np.zeros((batch, HIDDEN), dtype=np.float32)
    for w_ih, w_hh, bias in weights.layers:
        projected = (x.reshape(batch * steps, -1) @ w_ih + bias).reshape(batch, steps, 4 * HIDDEN)
        h = np.zeros((batch, HIDDEN), dtype=np.float32)
        c = np.zeros((batch, HIDDEN), dtype=np.float32)
        outputs = np.empty((batch, steps, HIDDEN), dtype=np.float32)
        for t in range(steps):
            gates = projected[:, t] + h @ w_hh
            i, f, g, o = np.split(gates, 4, axis=1)
            c = special.expit(f) * c + special.expit(i) * np.tanh(g)
            h = special.expit(o) * np.tanh(c)
            outputs[:, t] = h
        x = outputs
    raw = np.maximum(h @ weights.linear_w + weights.linear_b, 0)
    norms = np.linalg.norm(raw, axis=1, keepdims=True)
    embeddings: Floats = (raw / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return embeddings


def utterance_partials(wav: Floats) -> Floats:
    """The (partials, 160, 40) mel frames resemblyzer's ``embed_utterance`` feeds the network for ``wav``."""
    slices = partial_slices(wav.size)
    stop = slices[-1][1] * MEL_HOP
    if stop >= wav.size:
        wav = np.pad(wav, (0, stop - wav.size))
    mel = mel_frames(wav)
    return np.stack([mel[a:b] for a, b in slices])


def embed_utterances(weights: Weights, wavs: list[Floats]) -> Floats:
    """One embedding per utterance, as resemblyzer's ``embed_utterance`` (the mean of the L2-normalised
    partial embeddings, L2-normalised), with the partials of all utterances run as one batch."""
    if not wavs:
        return np.zeros((0, HIDDEN), dtype=np.float32)
    stacks = [utterance_partials(w) for w in wavs]
    batch = np.concatenate(stacks)
    # in slices of BATCH partials: the gate inputs of one layer are 0.65 MB per partial
    partials = np.concatenate([forward(weights, batch[i : i + BATCH]) for i in range(0, len(batch), BATCH)])
    bounds = np.cumsum([0] + [len(s) for s in stacks])
    means = np.stack([partials[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)])
    embeddings: Floats = (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    return embeddings
