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
  ``asetrate`` or a sped-up re-upload does) is found by the scale layer below, whose search covers
  :data:`SPEED_RANGE`; on request the block itself is searched too (marks made before the scale
  layer): the scaled mark's lines are read straight off one long FFT at every candidate factor in
  :data:`SPEED_RANGE` (grid finer than the line width, so no loss), with a threshold raised for the
  number of factors tried (:data:`Z_SCALED`).

Pitch shifting and tempo changes that keep the other axis (phase vocoder, WSOLA) break the long-range
phase coherence the block mark needs, so since version 3 a second layer is embedded with it, in the
short-time magnitude spectrum, where those changes are simple:

* **scale layer (v3)**: the 16 kHz STFT (1,024 points, hop 256) is cut into cells of 1/24 octave
  (500 Hz-6 kHz, 86 bands) by two frames (32 ms); a keyed +-1 pattern over 86 bands x 64 slots
  (2.048 s, repeating) scales each cell's magnitudes by ``1 +- depth`` (a quarter of the cells sync,
  the rest the same 172 coded bits as the block), the depth set by masking: what a cell gains or loses
  stays 18 dB below the energy of its neighbourhood (1/3 octave x 160 ms), up to 0.8 of a quiet cell
  between loud ones, less on a loud partial, nothing in silence. A pitch shift moves the pattern along the
  log-frequency axis; a tempo change stretches its time axis. The detector whitens the log-magnitude
  spectrogram cell by cell, folds it modulo the period at every tempo factor 0.88-1.13 (step finer
  than one frame of drift over the span read) and correlates with the sync pattern at every
  1/48-octave shift within +-3 semitones and every frame offset; the mark is present when the best
  z-score clears :data:`Z_SCALE` and the payload's MAC verifies (read at the search's pitch or half a
  step either side, whichever shows the stronger sync: a speed change of 1.1x falls between two steps).
  The tempo range is the playback-speed
  range, so a speed change (tempo 1.1 with pitch +1.65 semitones) is found without the block's speed
  search. It is read when the block mark is not found (~0.2-0.4 s of CPU per clip: the first
  :data:`_SC_SPAN_S` seconds are read).

When the block finds its offset but its payload does not verify (reverb, excerpts of 1-4 s), the scale
layer is read at the same place (both start with the signal) and the two layers' soft bits, each weighted
by the SNR its sync units show, are decoded together; an excerpt shorter than the 2.048 s period gives
the scale layer's slots it reaches, the rest are erasures. So the payload of any clip whose block syncs
(z >= :data:`Z_WITH_MAC`) is usually read: of the bench's 48 excerpts per length, the sync reached 5.0 on
26 at 1 s, 33 at 1.5 s and 45 at 2 s, and the payload decoded on 17, 28 and 43 (48 from 2.5 s).

Marks made before version 3 (block only) read as before: the block mark is unchanged and read first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .._extras import needs_extra
from ..errors import CannotCarryMarkError
from .payload import CODED_BITS, DEMO_KEY, Payload, decode_soft, encode_payload, keyed_rng

with needs_extra("media"):
    from scipy import fft as sp_fft
    from scipy import signal

__all__ = [
    "SPEED_RANGE",
    "Z_PRESENT",
    "Z_SCALE",
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
#: Shortest clip (seconds) the embedder marks and the detector reads.
_MIN_S = 0.25
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
    #: Which mark was read: 2 = the waveform block, 3 = the scale layer (pitch/tempo search).
    version: int = 2
    #: Tempo factor (1.05 = 5 % faster, pitch kept) the scale layer was found at.
    tempo: float = 1.0
    #: Pitch shift in semitones the scale layer was found at.
    pitch_semitones: float = 0.0
    #: The block mark's own sync z-score (over its 32,768 offsets at the file's speed).
    block_z: float = 0.0
    #: Best z-score of the scale layer's tempo x pitch search (0.0 when it did not run: the block was found
    #: or the clip is shorter than one period).
    scale_z: float = 0.0


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
        raise CannotCarryMarkError(
            f"a {sample_rate} Hz sample rate is too low to watermark (the mark lives in 500 Hz-4 kHz)"
        )
    n = x.shape[0]
    if n < sample_rate * _MIN_S:
        # shorter than the short-time transform's window; detection needs about 1-2 s in any case
        raise CannotCarryMarkError(
            f"{n / sample_rate:.3f} s of audio is too short to watermark (needs at least 0.25 s)"
        )
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
    block = x + (gain * shaped)[:, None]
    # The scale layer modulates the block mark too: left unmodulated it would fill the gaps between a
    # tonal host's partials with cells that carry nothing.
    layer = signal.resample_poly(_scale_delta(_mono16(block, sample_rate), payload, key), up, down)[:n]
    out = np.clip(block + np.pad(layer, (0, n - len(layer)))[:, None], -1.0, 1.0)
    return np.asarray(out[:, 0] if np.ndim(samples) == 1 else out, dtype=np.float64)


def _mono16(x: FloatArray, sample_rate: int) -> FloatArray:
    mono = x.mean(axis=1)
    if sample_rate != _SR:
        up, down = _ratio(sample_rate)
        mono = np.asarray(signal.resample_poly(mono, down, up), dtype=np.float64)
    return np.asarray(mono, dtype=np.float64)


def _prepare(mono: FloatArray) -> FloatArray:
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


def _mrc_soft(
    vals: FloatArray,
    sync: npt.NDArray[np.bool_],
    data_bit: npt.NDArray[np.int64],
    group: npt.NDArray[np.int64] | None = None,
) -> FloatArray:
    """Soft coded bits from per-unit values (sign-corrected), weighted by the SNR the sync units show.

    Each unit's value is ``a * bit + noise``; the sync units (bit = +1) estimate ``a`` and the noise
    variance, so the sums are scaled to log-likelihood ratios and two layers' soft bits can be added.
    With ``group`` (a group index per unit) ``a`` and the variance are estimated per group: a codec
    that spares some frequencies and not others leaves units of unequal worth.
    """
    g = np.zeros(len(vals), dtype=np.int64) if group is None else group
    n = int(g.max()) + 1
    count = np.maximum(np.bincount(g[sync], minlength=n), 1)
    mean = np.bincount(g[sync], weights=vals[sync], minlength=n) / count
    var = np.bincount(g[sync], weights=vals[sync] ** 2, minlength=n) / count - mean**2
    weight = np.maximum(mean, 0.0) / (np.maximum(var, 0.0) + 1e-12)
    soft = np.bincount(data_bit, weights=vals[~sync] * weight[g[~sync]], minlength=CODED_BITS)
    return np.asarray(soft, dtype=np.float64)


def _block_soft(white: npt.NDArray[np.complex128], off: int, lay: _Layout) -> FloatArray:
    shift = np.exp(-2j * np.pi * lay.bins * off / _BLOCK)
    vals = np.real(white * np.conj(lay.phase) * np.conj(shift))
    return _mrc_soft(vals, lay.sync, lay.data_bit)


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


# --- Scale layer (v3): magnitude cells on a log-frequency grid, searched over pitch shift and tempo. ---
_SC_NFFT, _SC_HOP = 1024, 256
_SC_LO_HZ, _SC_HI_HZ = 500.0, 6000.0
_SC_BPO = 24  # bands per octave
_SC_SUB = 2  # the detector's finer grid (1/48 octave) per band
_SC_BANDS = int(np.log2(_SC_HI_HZ / _SC_LO_HZ) * _SC_BPO)
_SC_SLOT = 2  # STFT frames per cell
_SC_PERIOD = 64  # slots per repetition (2.048 s)
# A cell's magnitudes are scaled by 1 +- depth, with depth = min(DMAX, BETA * sqrt(local / cell energy)):
# what the layer adds stays BETA**2 (-18 dB) below the energy of the cell's neighbourhood (a third of an
# octave by 5 cells, ~160 ms), which masks it; a cell well below its neighbours (between partials, a
# formant's skirt) is modulated deeply, a loud partial gently. Evidence per cell is in the log domain
# (the same for a quiet and a loud cell) while the cost is energy, so this buys both: less added energy
# than a flat modulation (3.5 dB less than 1 +- 0.2 at -20 dB) and a larger z after tempo, pitch and codecs.
# -18 dB rather than -20 (the first v3): on real recordings of 5-10 s (the bench's ``--others``) a tempo or
# pitch change followed by a codec or a 4 s excerpt found the sync (z 7-8) but lost the payload in 22 of
# 217 attacked clips, 9 at -18 dB, for 0.5 dB of SNR. Only the embedder changes: marks of either depth
# read with the same detector.
_SC_BETA = 0.125
_SC_DMAX = 0.8
_SC_MASK_BANDS = _SC_BPO // 3 + 1
_SC_MASK_CELLS = 5
_SC_SILENT = 1e-6  # cells whose neighbourhood is this far below the loudest one are left alone
_SC_CELLS_HP = 5  # cells the detector's high-pass averages over, along each axis
_SC_SHIFT = 3 * _SC_BPO * _SC_SUB // 12  # fine bands searched either way: +-3 semitones
#: Tempo factors the scale layer is searched over: the playback-speed range, so a speed change (tempo and
#: pitch moved together, at most 2.2 semitones here) is found by default, not only by the block's search.
_SC_TEMPO = SPEED_RANGE
#: Seconds (at 16 kHz) the scale search reads: the tempo grid step shrinks as 1/length.
_SC_SPAN_S = 20.0
#: z-score (per tempo factor, over its pitch shifts x offsets; ~310 factors x 25 x 128 tests on 20 s) the
#: scale layer needs, together with its MAC (2**-16): on unmarked windows the best z is ~4.5 +- 0.3.
Z_SCALE = 6.0
#: Weightings the scale layer's payload is decoded with, in turn, until one verifies: one SNR for all
#: cells, then one per quarter of the bands (an Opus or MP3 encoder spares some bands and not others).
#: Each try is one more chance for a MAC to pass by luck: 2 * 2**-16 at a sync of z >= 6.0.
_SC_WEIGHTINGS = (1, 4)


@dataclass(frozen=True)
class _ScaleLayout:
    sign: npt.NDArray[np.float64]  # keyed +-1 per (band, slot)
    sync: npt.NDArray[np.bool_]
    data_bit: npt.NDArray[np.int64]  # coded-bit index of each non-sync cell, in row-major order


@lru_cache(maxsize=8)
def _scale_layout(key: bytes) -> _ScaleLayout:
    rng = keyed_rng(key, "audio-scale-v3")
    sign = rng.choice(np.array([-1.0, 1.0]), size=(_SC_BANDS, _SC_PERIOD))
    cells = _SC_BANDS * _SC_PERIOD
    sync = np.zeros(cells, dtype=bool)
    sync[rng.permutation(cells)[: int(cells * _SYNC_FRACTION)]] = True
    n_data = cells - int(sync.sum())
    return _ScaleLayout(sign, sync.reshape(_SC_BANDS, _SC_PERIOD), rng.permutation(np.arange(n_data) % CODED_BITS))


def _stft(x: FloatArray) -> npt.NDArray[np.complex128]:
    return np.asarray(signal.stft(x, _SR, nperseg=_SC_NFFT, noverlap=_SC_NFFT - _SC_HOP)[2], dtype=np.complex128)


def _scale_delta(mono16: FloatArray, payload: Payload, key: bytes) -> FloatArray:
    """What the scale layer adds to a 16 kHz signal: its in-band STFT cells scaled by ``1 +- depth`` (masked)."""
    lay = _scale_layout(key)
    coded = encode_payload(payload, key)
    pattern = lay.sign.copy()
    pattern[~lay.sync] *= 1.0 - 2.0 * coded[lay.data_bit]
    spec = _stft(mono16)
    freqs = np.fft.rfftfreq(_SC_NFFT, 1.0 / _SR)
    with np.errstate(divide="ignore"):
        band = np.floor(np.log2(np.maximum(freqs, 1e-9) / _SC_LO_HZ) * _SC_BPO).astype(np.int64)
    rows = np.flatnonzero((band >= 0) & (band < _SC_BANDS))
    frames = spec.shape[1]
    cell = np.arange(frames) // _SC_SLOT
    n_cells = int(cell[-1]) + 1 if frames else 0
    slot = cell % _SC_PERIOD
    # Each cell's energy and the energy around it (a third of an octave, two cells either way).
    power = np.abs(spec[rows]) ** 2
    where = band[rows][:, None] * n_cells + cell[None, :]
    energy = np.bincount(where.ravel(), power.ravel(), _SC_BANDS * n_cells).reshape(_SC_BANDS, n_cells)
    box = np.ones((_SC_MASK_BANDS, _SC_MASK_CELLS)) / (_SC_MASK_BANDS * _SC_MASK_CELLS)
    local = signal.convolve2d(energy, box, mode="same", boundary="symm")
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = np.minimum(_SC_DMAX, _SC_BETA * np.sqrt(local / energy))
    depth[~np.isfinite(depth)] = 0.0
    depth[local < _SC_SILENT * (float(local.max()) if local.size else 0.0)] = 0.0
    gain = np.zeros(spec.shape)
    gain[rows] = (depth * pattern[:, slot[::_SC_SLOT]][:, :n_cells])[band[rows]][:, cell]
    out = signal.istft(spec * gain, _SR, nperseg=_SC_NFFT, noverlap=_SC_NFFT - _SC_HOP)[1]
    delta = np.zeros(len(mono16))
    delta[: min(len(out), len(mono16))] = out[: len(mono16)]
    return delta


def _scale_features(mono16: FloatArray, nudge: float = 0.0) -> FloatArray:
    """Whitened log-power on the 1/48-octave grid (with room for the shifts) x STFT frames.

    ``nudge`` moves the grid up by that fraction of a fine band (the payload is read half a band off
    when a pitch change fell between two of the search's shifts).
    """
    power = np.abs(_stft(mono16)) ** 2
    fine = _SC_BPO * _SC_SUB
    rows = np.arange(_SC_BANDS * _SC_SUB + 2 * _SC_SHIFT) - _SC_SHIFT + 0.5 + nudge
    centres = _SC_LO_HZ * 2 ** (rows / fine)
    pos = centres / (_SR / _SC_NFFT)
    i0 = np.floor(pos).astype(np.int64)
    frac = (pos - i0)[:, None]
    level = power[i0] * (1.0 - frac) + power[i0 + 1] * frac
    loud = level.sum(axis=0)
    log = np.log(level + 1e-10 * (float(power.mean()) + 1e-20))
    # High-pass along each axis separately (the pattern is random at the cell scale): a steady partial is
    # a row, an onset or drum hit a column, and a 2-D box would leave both as ridges.
    t_box = np.ones((1, _SC_CELLS_HP * _SC_SLOT + 1)) / (_SC_CELLS_HP * _SC_SLOT + 1)
    f_box = np.ones((_SC_CELLS_HP * _SC_SUB + 1, 1)) / (_SC_CELLS_HP * _SC_SUB + 1)
    resid = log - signal.convolve2d(log, t_box, mode="same", boundary="symm")
    resid -= signal.convolve2d(resid, f_box, mode="same", boundary="symm")
    box = np.ones((3 * _SC_SUB + 1, 3 * _SC_SLOT + 1)) / ((3 * _SC_SUB + 1) * (3 * _SC_SLOT + 1))
    spread = np.sqrt(signal.convolve2d(resid**2, box, mode="same", boundary="symm")) + 1e-9
    white = np.clip(resid / spread, -3.0, 3.0)
    if (loud > 0).any():
        white[:, loud < 1e-4 * float(np.median(loud[loud > 0]))] = 0.0  # digital silence carries nothing
    return np.asarray(white, dtype=np.float64)


def _scale_columns(frames: int, tempo: float) -> npt.NDArray[np.int64]:
    """The fold column (frame of the period) each STFT frame lands in, time scaled by ``tempo``."""
    return np.asarray(np.floor(np.arange(frames) * tempo).astype(np.int64) % (_SC_PERIOD * _SC_SLOT))


def _scale_fold(feat: FloatArray, tempo: float) -> FloatArray:
    """The features summed modulo the pattern's period (in frames), time scaled by ``tempo``."""
    n_fine, frames = feat.shape
    period = _SC_PERIOD * _SC_SLOT
    rows = np.arange(n_fine)[:, None] * period
    col = _scale_columns(frames, tempo)
    fold = np.bincount((rows + col[None, :]).ravel(), weights=feat.ravel(), minlength=n_fine * period)
    return np.asarray(fold.reshape(n_fine, period), dtype=np.float64)


def _scale_cells(fold: FloatArray, shift_index: int, off: int, lay: _ScaleLayout) -> FloatArray:
    """The folded features summed per cell at one pitch shift (row index) and frame offset, sign-corrected."""
    sel = np.roll(fold[shift_index : shift_index + _SC_BANDS * _SC_SUB], -off, axis=1)
    return np.asarray(sel.reshape(_SC_BANDS, _SC_SUB, _SC_PERIOD, _SC_SLOT).sum(axis=(1, 3)) * lay.sign)


def _scale_soft(
    fold: FloatArray,
    shift_index: int,
    off: int,
    lay: _ScaleLayout,
    groups: int = 1,
    slots: npt.NDArray[np.bool_] | None = None,
) -> FloatArray:
    """Soft coded bits of the folded scale layer at one pitch shift (row index) and frame offset.

    ``groups`` > 1 weights each of that many runs of bands by its own sync SNR. ``slots`` (one flag per
    slot of the period) leaves out the slots a clip shorter than the period never reached: their bits
    get no evidence from them (an erasure for the Viterbi decoder), and their zeros stay out of the SNR.
    """
    band = np.repeat(np.arange(_SC_BANDS) * groups // _SC_BANDS, _SC_PERIOD)
    cells = _scale_cells(fold, shift_index, off, lay).ravel()
    sync = lay.sync.ravel()
    if slots is None:
        return _mrc_soft(cells, sync, lay.data_bit, band if groups > 1 else None)
    keep = np.tile(slots, _SC_BANDS)
    return _mrc_soft(cells[keep], sync[keep], lay.data_bit[keep[~sync]], band[keep] if groups > 1 else None)


def _scale_pick(
    feat_half: FloatArray, fold: FloatArray, tempo: float, si: int, off: int, lay: _ScaleLayout
) -> tuple[FloatArray, int, int, float]:
    """The fold, shift row, offset and pitch (in fine bands, from the top of the search's range) to read the
    payload at: the search's own, or half a fine band either side.

    The search steps the pitch by 1/48 octave (a quarter semitone); a change between two steps (a speed
    change of 1.1x moves it 1.65 semitones) blurs each cell over two rows. The grid moved by half a band
    is tried, and the read whose sync cells show the larger SNR is kept: the choice looks at the sync
    cells only, so the payload still has its two decodes (no more chances for a MAC to pass by luck).
    """
    half = _scale_fold(feat_half, tempo)  # row i of ``half`` is row i + 1/2 of ``fold``
    period = _SC_PERIOD * _SC_SLOT
    reads = [
        (f, s, (off + d) % period, s + nudge)
        for f, s, nudge in ((fold, si, 0.0), (half, si - 1, 0.5), (half, si, 0.5))
        if s >= 0
        for d in (-1, 0, 1)
    ]

    def snr(read: tuple[FloatArray, int, int, float]) -> float:
        sync = _scale_cells(read[0], read[1], read[2], lay)[lay.sync]
        return float(sync.mean() / (sync.std() + 1e-12))

    return max(reads, key=snr)


def _scale_aligned_soft(mono16: FloatArray, block_off: int, key: bytes) -> FloatArray:
    """The scale layer's soft bits where the block mark says it is (no pitch or tempo change).

    Both layers start with the signal (the pattern's slot 0 and the block's sample 0 coincide), so the
    block's offset gives the layer's; the frame next to it with the stronger sync is read. A clip
    shorter than the period (2.048 s) reaches only some slots: the others are left out (erasures).
    """
    lay = _scale_layout(key)
    feat = _scale_features(mono16[: int(_SC_SPAN_S * _SR)])
    fold = _scale_fold(feat, 1.0)
    period = fold.shape[1]
    frames = np.bincount(_scale_columns(feat.shape[1], 1.0), minlength=period)
    base = block_off / _SC_HOP
    offs = {int(np.floor(base)) % period, int(np.ceil(base)) % period}
    off = max(offs, key=lambda o: float(_scale_cells(fold, _SC_SHIFT, o, lay)[lay.sync].mean()))
    slots = np.roll(frames, -off).reshape(_SC_PERIOD, _SC_SLOT).sum(axis=1) > 0
    return _scale_soft(fold, _SC_SHIFT, off, lay, slots=slots)


def _scale_search(mono16: FloatArray, key: bytes) -> tuple[float, float, float, Payload, bool]:
    """Best (z, tempo, semitones, payload, MAC verified) of the scale layer over tempo x pitch x offset."""
    lay = _scale_layout(key)
    span = mono16[: int(_SC_SPAN_S * _SR)]
    feat = _scale_features(span)
    frames = feat.shape[1]
    period = _SC_PERIOD * _SC_SLOT  # in nominal frames
    sync_fine = np.repeat(np.repeat(np.where(lay.sync, lay.sign, 0.0), _SC_SUB, axis=0), _SC_SLOT, axis=1)
    conj_ref = np.conj(np.fft.rfft(sync_fine, axis=1))
    step = 1.0 / max(frames, 1)  # one frame of drift over the span
    tempos = np.arange(_SC_TEMPO[0], _SC_TEMPO[1] + step, step)
    shifts = np.arange(-_SC_SHIFT, _SC_SHIFT + 1)
    width = _SC_BANDS * _SC_SUB
    corr = np.empty((len(tempos), len(shifts), period))
    for i, tempo in enumerate(tempos):
        spec = np.fft.rfft(_scale_fold(feat, tempo), axis=1)
        # Every shift at once: the fine rows windowed at each shift, times the reference, summed over rows.
        win = np.lib.stride_tricks.sliding_window_view(spec, width, axis=0)[: len(shifts)]  # (shift, bin, row)
        corr[i] = np.fft.irfft(np.einsum("sbr,rb->sb", win, conj_ref), n=period, axis=1)
    # Per tempo factor: at a factor where the host's own beat folds coherently (steady music) the
    # correlations are large everywhere, and a global scale would let that factor win.
    flat = corr.reshape(len(tempos), -1)
    z = ((flat - flat.mean(axis=1, keepdims=True)) / (flat.std(axis=1, keepdims=True) + 1e-12)).reshape(corr.shape)
    ti, si, off = np.unravel_index(int(np.argmax(z)), z.shape)
    tempo = float(tempos[ti])
    fold, row, at, pitch = _scale_fold(feat, tempo), int(si), int(off), float(si)
    if z[ti, si, off] >= Z_SCALE:
        fold, row, at, pitch = _scale_pick(_scale_features(span, 0.5), fold, tempo, row, at, lay)
    for groups in _SC_WEIGHTINGS:
        payload, mac_ok = decode_soft(_scale_soft(fold, row, at, lay, groups), key)
        if mac_ok:
            break
    semitones = (pitch - _SC_SHIFT) * 12.0 / (_SC_BPO * _SC_SUB)
    return float(z[ti, si, off]), tempo, semitones, payload, mac_ok


def detect_audio(
    samples: npt.ArrayLike, sample_rate: int, key: bytes = DEMO_KEY, *, search_speed: bool = False
) -> AudioDetection:
    """Look for the watermark in float samples at any rate >= 8 kHz (~2 s or more of speech for the payload).

    A playback-speed change in :data:`SPEED_RANGE` is found by the scale layer's search, which runs
    whenever the block is not found. With ``search_speed``, when neither layer is found, the block is
    searched over those factors too (with the stricter :data:`Z_SCALED` thresholds): that reads marks
    made before the scale layer, costs ~1.5 s of CPU per clip (four times the rest of the detector), and
    is for an investigation (``watermark detect --search-speed``), not for every upload a platform verifies.
    """
    started = time.perf_counter()
    x = _as_2d(samples)
    if x.shape[0] < sample_rate * _MIN_S:  # nothing this short is marked (and the envelope needs 20 ms)
        return AudioDetection(False, 0.0, None, False, 0.0, (time.perf_counter() - started) * 1000.0)
    mono = _mono16(x, sample_rate)
    r = _prepare(mono)
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
    if not mac_ok and zscore >= Z_WITH_MAC and len(mono) >= _SC_NFFT:
        # Synced but not decoded (reverb, a short cut): the scale layer carries the same coded bits at
        # the same place, so its soft values are added to the block's before decoding again.
        soft = _block_soft(white, off, lay) + _scale_aligned_soft(mono, off, key)
        both, both_ok = decode_soft(soft, key)
        if both_ok:
            payload, mac_ok = both, True
    present = zscore >= Z_PRESENT or (mac_ok and zscore >= Z_WITH_MAC)
    version, tempo, semitones, block_z, z_sc = 2, 1.0, 0.0, zscore, 0.0
    if not present and len(mono) >= _SC_SLOT * _SC_PERIOD * _SC_HOP:
        z_sc, tempo_sc, semis_sc, pay_sc, mac_sc = _scale_search(mono, key)
        if mac_sc and z_sc >= Z_SCALE:
            version, tempo, semitones = 3, tempo_sc, semis_sc
            zscore, payload, mac_ok, present, off = z_sc, pay_sc, True, True, 0
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
        version=version,
        tempo=tempo,
        pitch_semitones=semitones,
        block_z=block_z,
        scale_z=z_sc,
    )


def snr_db(original: npt.ArrayLike, marked: npt.ArrayLike) -> float:
    """Signal-to-watermark ratio in dB."""
    a = np.asarray(original, dtype=np.float64)
    d = np.asarray(marked, dtype=np.float64) - a
    return float(10.0 * np.log10(np.sum(a**2) / max(float(np.sum(d**2)), 1e-20)))
