"""Invisible audio watermark: keyed spread spectrum in the 500 Hz-4 kHz band, periodic for sync.

Why this design: lossy codecs (MP3, AAC) at usual bitrates keep the speech band's waveform well
enough for a correlation detector, and the band survives resampling to 16 kHz. The mark is one keyed
2.048 s block (32,768 samples at 16 kHz) that repeats over the whole signal. The block is built in the
frequency domain: each of its 7,168 in-band DFT bins has a keyed random phase; a quarter of the bins
form the sync pattern, the rest are dealt out (keyed) to the 172 convolutionally coded payload bits of
:mod:`.payload`, whose value flips their sign. Consequences:

* an excerpt can be read whatever its start: the detector folds the signal modulo the block length and
  finds the offset as the peak of one FFT cross-correlation with the sync bins; the peak's z-score over
  all 32,768 offsets is the detection score. Evidence grows with length: at the default 24 dB SNR, 6 s
  of speech decode reliably (through MP3 too), 4 s about 60% of the time;
* the detector works at 16 kHz, so 16/22.05/44.1/48 kHz input and resampled copies read the same;
* the embedder scales the mark by the host's short-term envelope (masking), so silence stays silent and
  loud passages carry more; the detector divides that envelope back out.

* a playback-speed change (resampling: time and pitch scaled together by the same factor, as
  ``asetrate`` or a sped-up re-upload does) is searched for when the unscaled read fails: the scaled
  mark's lines are read straight off one long FFT at every candidate factor in
  :data:`SPEED_RANGE` (grid finer than the line width, so no loss), with a threshold raised for the
  number of factors tried (:data:`Z_SCALED`).

Not robust to pitch shifting or tempo changes that keep the other axis (phase vocoder, WSOLA): they
break the waveform's long-range phase coherence this detector integrates over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .._extras import needs_extra
from .payload import CODED_BITS, DEMO_KEY, Payload, decode_soft, encode_payload, keyed_rng

with needs_extra("media"):
    from scipy import fft as sp_fft
    from scipy import signal

__all__ = [
    "SPEED_RANGE",
    "Z_PRESENT",
    "Z_SCALED",
    "Z_SCALED_WITH_MAC",
    "Z_WITH_MAC",
    "AudioDetection",
    "detect_audio",
    "embed_audio",
    "snr_db",
]


_SR = 16000
_BLOCK = 1 << 15
_LO_HZ, _HI_HZ = 500.0, 4000.0
_SYNC_FRACTION = 0.25
#: z-score over all block offsets above which the mark is declared present on its own.
Z_PRESENT = 6.8
#: Lower z-score that suffices when the payload's keyed MAC also verifies.
Z_WITH_MAC = 5.0
_ENV_S = 0.02
#: Playback-speed factors searched when the unscaled read fails (1.1 = played 10 % fast).
SPEED_RANGE = (0.88, 1.13)
#: Seconds (at 16 kHz) the speed search reads: the grid step shrinks as 1/length, so this bounds its cost.
_SPEED_SPAN_S = 12.0
#: Shorter clips are not searched: below ~5 s the mark cannot reach :data:`Z_SCALED` anyway.
_SPEED_MIN_S = 5.0
#: Thresholds for the speed search: it tries ~2e4 factors x 32,768 offsets (~8e8 tests, union bound
#: 8e8 * Q(8.0) ~ 5e-7; the MAC path 8e8 * Q(6.5) * 2**-16 ~ 5e-7).
Z_SCALED = 8.0
_SPEED_CANDIDATES = 24
Z_SCALED_WITH_MAC = 6.5

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AudioDetection:
    """What the audio detector found."""

    present: bool
    z: float
    payload: Payload | None
    mac_ok: bool
    offset_s: float
    elapsed_ms: float
    #: The best-effort decoded payload even when absent or unverified (for bit-accuracy statistics only).
    decoded: Payload | None = None
    #: Playback-speed factor the mark was found at (1.0 unless the speed search found it).
    speed: float = 1.0
    #: Best z-score of the playback-speed search (0.0 when it did not run).
    speed_search_z: float = 0.0


@dataclass(frozen=True)
class _Layout:
    bins: npt.NDArray[np.int64]  # in-band rfft bins of the block
    phase: npt.NDArray[np.complex128]  # keyed unit phasor per in-band bin
    sync: npt.NDArray[np.bool_]  # which in-band bins are sync
    data_bit: npt.NDArray[np.int64]  # coded-bit index of each non-sync in-band bin


@lru_cache(maxsize=8)
def _layout(key: bytes) -> _Layout:
    rng = keyed_rng(key, "audio-layout-v2")
    freqs = np.fft.rfftfreq(_BLOCK, 1.0 / _SR)
    bins = np.flatnonzero((freqs >= _LO_HZ) & (freqs <= _HI_HZ))
    phase = np.exp(2j * np.pi * rng.random(len(bins)))
    perm = rng.permutation(len(bins))
    sync = np.zeros(len(bins), dtype=bool)
    sync[perm[: int(len(bins) * _SYNC_FRACTION)]] = True
    n_data = int((~sync).sum())
    return _Layout(bins, phase, sync, rng.permutation(np.arange(n_data) % CODED_BITS))


@lru_cache(maxsize=16)
def _block(payload: Payload, key: bytes) -> FloatArray:
    lay = _layout(key)
    coded = encode_payload(payload, key)
    sign = np.ones(len(lay.bins))
    sign[~lay.sync] = 1.0 - 2.0 * coded[lay.data_bit]
    spec = np.zeros(_BLOCK // 2 + 1, dtype=np.complex128)
    spec[lay.bins] = lay.phase * sign
    block = np.fft.irfft(spec, n=_BLOCK)
    return np.asarray(block / np.sqrt(np.mean(block**2)), dtype=np.float64)


def _as_2d(samples: npt.ArrayLike) -> FloatArray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError("expected samples shaped (n,) or (n, channels)")
    return x


def _ratio(sample_rate: int) -> tuple[int, int]:
    frac = Fraction(sample_rate, _SR).limit_denominator(1000)
    return frac.numerator, frac.denominator


def _envelope(x: FloatArray, sample_rate: int) -> FloatArray:
    n = max(int(_ENV_S * sample_rate), 1)
    k = np.ones(n) / n
    return np.sqrt(np.maximum(np.convolve(x * x, k, mode="same"), 0.0))


def _bandpass(x: FloatArray, sample_rate: int) -> FloatArray:
    sos = signal.butter(4, [_LO_HZ, min(_HI_HZ, 0.45 * sample_rate)], btype="band", fs=sample_rate, output="sos")
    return np.asarray(signal.sosfiltfilt(sos, x), dtype=np.float64)


def embed_audio(
    samples: npt.ArrayLike, sample_rate: int, payload: Payload, key: bytes = DEMO_KEY, target_snr_db: float = 24.0
) -> FloatArray:
    """Return watermarked float samples (same shape and rate); input is float in [-1, 1]."""
    x = _as_2d(samples)
    if sample_rate < 8000:
        raise ValueError("sample rate must be at least 8 kHz (the mark lives in 500 Hz-4 kHz)")
    n = x.shape[0]
    up, down = _ratio(sample_rate)
    n16 = int(np.ceil(n * down / up)) + 64
    mark16 = np.tile(_block(payload, key), -(-n16 // _BLOCK))[:n16]
    mark = signal.resample_poly(mark16, up, down)[:n]
    if len(mark) < n:
        mark = np.pad(mark, (0, n - len(mark)))
    mono = x.mean(axis=1)
    shaped = mark * _envelope(_bandpass(mono, sample_rate), sample_rate)
    power = float(np.mean(shaped**2))
    if power <= 0:
        return np.array(samples, dtype=np.float64, copy=True)
    gain = np.sqrt(float(np.mean(x**2)) / power) * 10 ** (-target_snr_db / 20.0)
    out = np.clip(x + (gain * shaped)[:, None], -1.0, 1.0)
    return np.asarray(out[:, 0] if np.ndim(samples) == 1 else out, dtype=np.float64)


def _prepare(x: FloatArray, sample_rate: int) -> FloatArray:
    mono = x.mean(axis=1)
    if sample_rate != _SR:
        up, down = _ratio(sample_rate)
        mono = np.asarray(signal.resample_poly(mono, down, up), dtype=np.float64)
    bp = _bandpass(mono, _SR)
    env = _envelope(bp, _SR)
    floor = max(float(np.percentile(env, 90)) * 1e-3, 1e-9)
    r = bp / (env + floor)
    return np.clip(r, -3.0, 3.0)


def _sync_z(corr: FloatArray) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Best offset and its z-score over all offsets, per row of ``corr``."""
    off = np.argmax(corr, axis=-1)
    peak = np.take_along_axis(corr, off[..., None], axis=-1)[..., 0]
    return off, (peak - corr.mean(axis=-1)) / (corr.std(axis=-1) + 1e-12)


def _sync_corr(white_sync: npt.NDArray[np.complex128], lay: _Layout) -> FloatArray:
    """Cross-correlation with the sync pattern over all block offsets (rows of ``white_sync``)."""
    ref = np.zeros((*white_sync.shape[:-1], _BLOCK // 2 + 1), dtype=np.complex128)
    ref[..., lay.bins[lay.sync]] = white_sync * np.conj(lay.phase[lay.sync])
    return np.asarray(np.fft.irfft(ref, n=_BLOCK, axis=-1), dtype=np.float64)


def _decode_at(white: npt.NDArray[np.complex128], off: int, lay: _Layout, key: bytes) -> tuple[Payload | None, bool]:
    shift = np.exp(-2j * np.pi * lay.bins * off / _BLOCK)
    vals = np.real(white * np.conj(lay.phase) * np.conj(shift))
    soft = np.bincount(lay.data_bit, weights=vals[~lay.sync], minlength=CODED_BITS)
    return decode_soft(soft.astype(np.float64), key)


def _speed_search(r: FloatArray, lay: _Layout) -> tuple[float, int, float, npt.NDArray[np.complex128]]:
    """Best playback-speed factor: its offset, z-score and whitened in-band lines (read off one long FFT).

    Every factor on a grid finer than a line's width is ranked by the envelope of its sync correlation
    at a 4-sample offset step (a short complex FFT of the band moved to 0 Hz), then the best few get
    the exact correlation over all offsets.
    """
    seg = r[: int(_SPEED_SPAN_S * _SR)]
    nfft = 2 * len(seg)  # zero padding: a line between two bins loses <= 0.9 dB
    spec = np.fft.rfft(seg, nfft)
    # Whitening over ~31 mark lines of spectrum, as the unscaled read does over the folded block.
    width = 31 * nfft // _BLOCK | 1
    csum = np.concatenate(([0.0], np.cumsum(np.abs(spec))))
    lo = np.clip(np.arange(len(spec)) - width // 2, 0, len(spec))
    hi = np.clip(np.arange(len(spec)) + width // 2 + 1, 0, len(spec))
    white_all = spec / ((csum[hi] - csum[lo]) / (hi - lo) + 1e-12)
    # A factor error d moves the top line by HI_HZ * d * T cycles over the span T: keep it <= 1/2.
    step = 0.5 * _SR / (_HI_HZ * len(seg))
    factors = np.arange(SPEED_RANGE[0], SPEED_RANGE[1] + step, step)
    sync_bins = lay.bins[lay.sync]
    base = sync_bins - lay.bins[0]  # band moved to 0 Hz: 7,168 lines fit an 8,192-point complex FFT
    conj_sync = np.conj(lay.phase[lay.sync]).astype(np.complex64)

    def lines(fs: FloatArray, which: npt.NDArray[np.int64]) -> npt.NDArray[np.complex128]:
        idx = np.rint(which[None, :].astype(np.float64) * fs[:, None] * (nfft / _BLOCK)).astype(np.int64)
        return np.asarray(white_all[np.minimum(idx, len(spec) - 1)], dtype=np.complex128)

    rank = np.empty(len(factors))
    for i in range(0, len(factors), 256):
        fs = factors[i : i + 256]
        ref = np.zeros((len(fs), _BLOCK // 4), dtype=np.complex64)
        ref[:, base] = lines(fs, sync_bins) * conj_sync
        env = np.abs(sp_fft.ifft(ref, axis=1))
        rank[i : i + 256] = env.max(axis=1) / (np.sqrt(np.mean(env**2, axis=1)) + 1e-12)
    top = factors[np.sort(np.argsort(rank)[-_SPEED_CANDIDATES:])]
    w_top = lines(top, lay.bins)
    offs, zs = _sync_z(_sync_corr(w_top[:, lay.sync], lay))
    j = int(np.argmax(zs))
    return float(top[j]), int(offs[j]), float(zs[j]), w_top[j]


def detect_audio(
    samples: npt.ArrayLike, sample_rate: int, key: bytes = DEMO_KEY, *, search_speed: bool = False
) -> AudioDetection:
    """Look for the watermark in float samples at any rate >= 8 kHz (6 s or more of speech for the payload).

    With ``search_speed``, when the unscaled read finds nothing, playback-speed factors in
    :data:`SPEED_RANGE` are searched (with the stricter :data:`Z_SCALED` thresholds). The search costs
    5-10 s of CPU per clip, so it is for an investigation (``watermark detect --search-speed``), not for
    every upload a platform verifies.
    """
    started = time.perf_counter()
    x = _as_2d(samples)
    r = _prepare(x, sample_rate)
    pad = -(-len(r) // _BLOCK) * _BLOCK
    acc = np.zeros(pad)
    acc[: len(r)] = r
    acc = acc.reshape(-1, _BLOCK).sum(axis=0)
    spec = np.fft.rfft(acc)
    lay = _layout(key)
    inband = spec[lay.bins]
    # Spectral whitening: host harmonics would otherwise dominate the correlation.
    mag = np.convolve(np.abs(inband), np.ones(31) / 31, mode="same") + 1e-12
    white = inband / mag
    offs, zs = _sync_z(_sync_corr(white[lay.sync], lay))
    off, zscore = int(offs), float(zs)
    payload, mac_ok = _decode_at(white, off, lay, key)
    present = zscore >= Z_PRESENT or (mac_ok and zscore >= Z_WITH_MAC)
    factor = 1.0
    z_search = 0.0
    if search_speed and not present and len(r) >= _SPEED_MIN_S * _SR:
        f_s, off_s, z_s, white_s = _speed_search(r, lay)
        z_search = z_s
        if z_s >= Z_SCALED_WITH_MAC:
            pay_s, mac_s = _decode_at(white_s, off_s, lay, key)
            if z_s >= Z_SCALED or mac_s:
                factor, off, zscore, payload, mac_ok, present = f_s, off_s, z_s, pay_s, mac_s, True
    return AudioDetection(
        present=present,
        z=zscore,
        payload=payload if present and mac_ok else None,
        mac_ok=mac_ok,
        offset_s=off / _SR,
        elapsed_ms=(time.perf_counter() - started) * 1000.0,
        decoded=payload,
        speed=factor,
        speed_search_z=z_search,
    )


def snr_db(original: npt.ArrayLike, marked: npt.ArrayLike) -> float:
    """Signal-to-watermark ratio in dB."""
    a = np.asarray(original, dtype=np.float64)
    d = np.asarray(marked, dtype=np.float64) - a
    return float(10.0 * np.log10(np.sum(a**2) / max(float(np.sum(d**2)), 1e-20)))
