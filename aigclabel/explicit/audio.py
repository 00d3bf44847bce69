"""Audible labels (GB 45438 §5.3): the spoken prompt and the Morse "AI" rhythm cue, and its detector.

§5.3 allows a speech label or the rhythm "short-long-short-short" (Morse "·− ··" = "AI") at the
start, the end or a suitable middle position. **The standard gives no tone frequency, durations or
level**; we use standard Morse proportions (dash = 3 dots, gap = 1 dot) with a 120 ms dot at 1 kHz,
all configurable through :class:`CueTiming`.

The spoken clip "人工智能生成" is generated once with espeak-ng (``scripts/make-spoken-label.sh``) and
shipped in ``aigclabel/data``; it lasts ~2.5 s, i.e. ~140 characters/min, inside the 120–160
characters/min §5.3 note 4 calls normal speed.

Input and output go through PyAV (bundled FFmpeg): WAV, MP3, FLAC, OGG (Opus) and M4A (AAC). The
audio is processed as a stream of decoded frames, so a long file is never held in memory; only the
label-length tail is held back when the label goes at the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import numpy as np
import numpy.typing as npt

from .. import _budget
from .._audio_options import AudioPosition, LabelKind, Mode, PcmFormat, TurnPosition
from .._extras import needs_extra
from .._io import atomic_output
from .._media import output_for, output_suffixes
from ..errors import InvalidLabelError, LimitExceededError, MalformedFileError, UnsupportedFormatError
from ._implicit import ImplicitPolicy, read_implicit, restore_implicit

with needs_extra("media"):
    import av
    from scipy import ndimage, signal
    from scipy.ndimage import uniform_filter1d

Floats = npt.NDArray[np.float32]

#: The shipped spoken label and its text.
SPOKEN_LABEL_FILE = "spoken-label-zh.flac"
SPOKEN_LABEL_TEXT = "人工智能生成"
#: Rate the detector works at: enough for the cue (1 kHz) and cheap for hour-long files.
ANALYSIS_RATE = 8000
#: Longest input the detector decodes (at 8 kHz mono float32 this is ~460 MB).
MAX_ANALYSIS_SECONDS = 4 * 3600
#: How labelled audio is written, per output suffix, by container: (codec, FFmpeg muxer, forced sample
#: rate or None). A test keeps every audio container listed.
AUDIO_OUTPUTS: dict[str, dict[str, tuple[str, str, int | None]]] = {
    "wav": {".wav": ("pcm_s16le", "wav", None)},
    "mp3": {".mp3": ("libmp3lame", "mp3", None)},
    "flac": {".flac": ("flac", "flac", None)},
    "ogg": {".ogg": ("libopus", "ogg", 48000), ".opus": ("libopus", "ogg", 48000)},
    "mp4": {".m4a": ("aac", "ipod", None)},
}
_MP3_RATES = (48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


@dataclass(frozen=True)
class CueTiming:
    """Rhythm cue parameters. Not set by GB 45438; Morse proportions with a 120 ms dot by default."""

    dot: float = 0.12
    dash: float = 0.36
    gap: float = 0.12
    frequency: float = 1000.0
    amplitude: float = 0.5

    def __post_init__(self) -> None:
        if not (0.03 <= self.dot < self.dash <= 2.0) or self.dash < 2 * self.dot or not (0.03 <= self.gap <= 2.0):
            raise InvalidLabelError("cue timing must have 30 ms <= dot, dash >= 2 x dot, gap >= 30 ms")
        if not (0 < self.amplitude <= 1.0) or not (200.0 <= self.frequency <= 3500.0):
            raise InvalidLabelError("cue amplitude must be in (0, 1] and frequency in 200..3500 Hz")

    @property
    def pattern(self) -> tuple[float, ...]:
        """Tone durations: short, long, short, short (Morse "A" then "I")."""
        return (self.dot, self.dash, self.dot, self.dot)

    @property
    def duration(self) -> float:
        """Total length of the cue in seconds."""
        return sum(self.pattern) + 3 * self.gap


def make_cue(rate: int, timing: CueTiming | None = None) -> Floats:
    """The rhythm cue as mono float32 samples at ``rate``, with 5 ms ramps so the tones do not click."""
    timing = timing or CueTiming()
    ramp = max(1, int(0.005 * rate))
    parts: list[Floats] = []
    for i, seconds in enumerate(timing.pattern):
        n = round(seconds * rate)
        t = np.arange(n, dtype=np.float64) / rate
        tone = timing.amplitude * np.sin(2 * np.pi * timing.frequency * t)
        env = np.ones(n)
        env[:ramp] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        env[-ramp:] = env[:ramp][::-1]
        parts.append((tone * env).astype(np.float32))
        if i < 3:
            parts.append(np.zeros(round(timing.gap * rate), dtype=np.float32))
    return np.concatenate(parts)


def _decode(path: Path | str, rate: int | None, layout: str | None, what: str) -> tuple[Iterator[Floats], int, int]:
    """Iterator of (channels, n) float32 blocks of the first audio stream, its rate and channel count."""
    try:
        container = av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, OSError) as exc:
        raise MalformedFileError(f"{path}: cannot open {what} ({exc})") from exc
    if not container.streams.audio:
        container.close()
        raise UnsupportedFormatError(f"{path}: no audio stream")
    stream = container.streams.audio[0]
    out_rate = rate or stream.rate or 0
    out_layout = layout or stream.layout.name
    if out_rate <= 0:
        container.close()
        raise MalformedFileError(f"{path}: audio stream declares no sample rate")
    resampler = av.AudioResampler(format="fltp", layout=out_layout, rate=out_rate)
    channels = len(av.AudioLayout(out_layout).channels)

    def blocks() -> Iterator[Floats]:
        try:
            for frame in container.decode(stream):
                _budget.charge_samples(frame.samples * len(frame.layout.channels), f"the {what}")
                for out in resampler.resample(frame):
                    yield out.to_ndarray().astype(np.float32, copy=False)
            for out in resampler.resample(None):
                yield out.to_ndarray().astype(np.float32, copy=False)
        except av.error.FFmpegError as exc:
            raise MalformedFileError(f"{path}: corrupt {what} ({exc})") from exc
        finally:
            container.close()

    return blocks(), out_rate, channels


def spoken_label(rate: int) -> Floats:
    """The shipped spoken label, mono float32 at ``rate``."""
    ref = resources.files("aigclabel") / "data" / SPOKEN_LABEL_FILE
    with resources.as_file(ref) as path:
        blocks, _, _ = _decode(path, rate, "mono", "spoken label")
        return np.concatenate([b[0] for b in blocks])


def _label_signal(kind: LabelKind, rate: int, timing: CueTiming) -> Floats:
    silence = np.zeros(round(0.25 * rate), dtype=np.float32)
    parts: list[Floats] = [silence]
    if kind in ("cue", "both"):
        parts += [make_cue(rate, timing), silence]
    if kind in ("speech", "both"):
        parts += [spoken_label(rate), silence]
    return np.concatenate(parts)


#: Where a streamed voice turn may get its label (the values of :data:`TurnPosition`, checked at run time).
TURN_POSITIONS: tuple[TurnPosition, ...] = get_args(TurnPosition)


def label_pcm_stream(
    chunks: Iterable[npt.ArrayLike],
    rate: int,
    *,
    channels: int = 1,
    kind: LabelKind = "cue",
    position: TurnPosition = "start",
    timing: CueTiming | None = None,
) -> Iterator[Floats]:
    """Label streamed PCM (e.g. TTS output of one voice-assistant turn, §5.3 note 3) without buffering.

    ``chunks`` are float arrays shaped ``(channels, n)`` (or ``(n,)`` for mono) at ``rate``; the label
    is yielded before the first chunk is requested and/or after the last one.
    """
    if rate < 8000 or channels < 1:
        raise InvalidLabelError("rate must be >= 8000 Hz and channels >= 1")
    if position not in TURN_POSITIONS:
        raise InvalidLabelError(f"position must be start, end or both, not {position!r}")
    label = np.tile(_label_signal(kind, rate, timing or CueTiming()), (channels, 1))
    if position in ("start", "both"):
        yield label
    for chunk in chunks:
        block = np.asarray(chunk, dtype=np.float32)
        yield block.reshape(1, -1) if block.ndim == 1 else block
    if position in ("end", "both"):
        yield label


#: Raw PCM sample formats :class:`PcmTurnLabeller` handles (what TTS engines stream), with NumPy dtypes.
PCM_FORMATS: dict[PcmFormat, str] = {"s16le": "<i2", "f32le": "<f4"}


class PcmTurnLabeller:
    """Labels one voice-assistant turn of raw, interleaved PCM bytes as they stream (GB 45438 §5.3 note 3:
    in voice assistants "start" and "end" mean those of each turn).

    The turn's own bytes pass through untouched and unbuffered; :meth:`head` is the label to send before
    them and :meth:`tail` the one after (the content is padded with silence to a whole sample frame first).
    """

    def __init__(
        self,
        rate: int,
        *,
        channels: int = 1,
        sample_format: PcmFormat = "s16le",
        kind: LabelKind = "cue",
        position: TurnPosition = "start",
        timing: CueTiming | None = None,
    ) -> None:
        if sample_format not in PCM_FORMATS:
            raise InvalidLabelError(f"PCM format must be one of {', '.join(PCM_FORMATS)}, not {sample_format!r}")
        if position not in TURN_POSITIONS:
            raise InvalidLabelError(f"position must be start, end or both, not {position!r}")
        if not 1 <= channels <= 8:
            raise InvalidLabelError(f"channels must be 1 to 8, not {channels}")
        (signal_,) = label_pcm_stream((), rate, channels=channels, kind=kind, position="start", timing=timing)
        dtype = np.dtype(PCM_FORMATS[sample_format])
        samples = signal_.T.reshape(-1)  # interleaved
        if dtype.kind == "i":
            samples = np.round(np.clip(samples, -1, 1) * 32767)
        self.label = samples.astype(dtype).tobytes()
        self.frame = dtype.itemsize * channels
        self.position = position
        self.content_bytes = 0

    def head(self) -> bytes:
        """What goes before the turn's first byte."""
        return self.label if self.position in ("start", "both") else b""

    def feed(self, data: bytes) -> bytes:
        """The turn's bytes, passed on as they are."""
        self.content_bytes += len(data)
        return data

    def tail(self) -> bytes:
        """What goes after the turn's last byte (silence completing a cut sample frame, then the label)."""
        if self.position not in ("end", "both"):
            return b""
        return b"\0" * (-self.content_bytes % self.frame) + self.label

    def label_stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The labelled turn, chunk by chunk: head, the chunks as they come, tail."""
        if head := self.head():
            yield head
        for chunk in chunks:
            yield self.feed(chunk)
        if tail := self.tail():
            yield tail


@dataclass
class AudioLabelResult:
    """What :func:`add_audio_label` wrote: where each label starts in the output, in seconds."""

    path: Path
    sample_rate: int
    label_seconds: float
    offsets: list[float] = field(default_factory=list)
    implicit_label_kept: bool = False


class _Splicer:
    """Streams blocks through while inserting or mixing the label at given input sample offsets."""

    #: Level of the programme under a mixed label, so the label stays intelligible.
    DUCK = 0.3

    def __init__(self, label: Floats, channels: int, offsets: list[int | None], mode: Mode) -> None:
        self.label = np.tile(label, (channels, 1))
        self.mode = mode
        self.points = sorted(o for o in offsets if o is not None)
        self.at_end = None in offsets
        self.position = 0  # input samples consumed
        self.out_samples = 0
        self.out_offsets: list[int] = []
        self.pending: Floats | None = None  # remainder of a mixed label still to lay over input

    def _mix(self, block: Floats) -> Floats:
        if self.pending is None:
            return block
        n = min(block.shape[1], self.pending.shape[1])
        block = block.copy()
        block[:, :n] = np.clip(block[:, :n] * self.DUCK + self.pending[:, :n], -1.0, 1.0)
        self.pending = self.pending[:, n:] if n < self.pending.shape[1] else None
        return block

    def _emit(self, block: Floats) -> Iterator[Floats]:
        if block.shape[1]:
            block = self._mix(block)
            self.out_samples += block.shape[1]
            yield block

    def _start_label(self) -> Iterator[Floats]:
        self.out_offsets.append(self.out_samples)
        if self.mode == "insert":
            self.out_samples += self.label.shape[1]
            yield self.label
        else:
            self.pending = self.label if self.pending is None else self.pending

    def feed(self, block: Floats) -> Iterator[Floats]:
        while self.points and self.points[0] < self.position + block.shape[1]:
            cut = self.points.pop(0) - self.position
            yield from self._emit(block[:, :cut])
            self.position += cut
            block = block[:, cut:]
            yield from self._start_label()
        self.position += block.shape[1]
        yield from self._emit(block)

    def finish(self, tail: Floats) -> Iterator[Floats]:
        """Flush ``tail`` (the held-back end of the input) and any end label."""
        if self.at_end:
            if self.mode == "insert":
                yield from self.feed(tail)
                yield from self._start_label()
                return
            # mix: lay the label over the held-back tail, extending past it if the input is shorter
            self.points = []
            self.out_offsets.append(self.out_samples)
            extra = max(0, self.label.shape[1] - tail.shape[1])
            tail = np.concatenate([tail, np.zeros((tail.shape[0], extra), dtype=np.float32)], axis=1)
            tail[:, : self.label.shape[1]] = np.clip(tail[:, : self.label.shape[1]] * self.DUCK + self.label, -1.0, 1.0)
            self.out_samples += tail.shape[1]
            yield tail
            return
        yield from self.feed(tail)
        if self.pending is not None:  # mixed label longer than what followed: finish it alone
            yield from self._emit(np.zeros((self.label.shape[0], self.pending.shape[1]), dtype=np.float32))


def _duration_samples(path: Path, rate: int) -> int:
    with av.open(str(path), metadata_errors="replace") as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return int(stream.duration * stream.time_base * rate)
        if container.duration is not None:
            return int(container.duration / 1_000_000 * rate)
    blocks, _, _ = _decode(path, rate, "mono", "audio")
    return sum(b.shape[1] for b in blocks)


def _output_spec(dst: Path, rate: int) -> tuple[str, str, int]:
    spec = output_for(AUDIO_OUTPUTS, dst)
    if spec is None:
        suffixes = ", ".join(output_suffixes(AUDIO_OUTPUTS))
        raise UnsupportedFormatError(f"{dst}: audio output must end in one of {suffixes}")
    codec, fmt, forced = spec
    if forced:
        return codec, fmt, forced
    if codec == "libmp3lame" and rate not in _MP3_RATES:
        rate = 48000 if rate > 48000 else 44100
    return codec, fmt, rate


def add_audio_label(
    src: Path | str,
    dst: Path | str,
    *,
    kind: LabelKind = "both",
    positions: tuple[AudioPosition, ...] = ("start",),
    mode: Mode = "insert",
    timing: CueTiming | None = None,
    implicit: ImplicitPolicy = "require",
) -> AudioLabelResult:
    """Write ``src`` to ``dst`` with the audible label at ``positions``, inserted or mixed in.

    The output format follows ``dst``'s suffix (.wav .mp3 .flac .ogg .opus .m4a); sample rate and
    channel layout follow the input (Opus is always 48 kHz). Container tags are copied and the
    implicit label is carried over through :mod:`aigclabel.api`.
    """
    src, dst = Path(src), Path(dst)
    if not positions or any(p not in ("start", "end", "middle") for p in positions):
        raise InvalidLabelError(f"positions must be a non-empty subset of start/end/middle, got {positions!r}")
    timing = timing or CueTiming()
    before = read_implicit(src, implicit)
    try:
        with av.open(str(src), metadata_errors="replace") as probe:
            if not probe.streams.audio:
                raise UnsupportedFormatError(f"{src}: no audio stream")
            in_stream = probe.streams.audio[0]
            in_rate, layout = in_stream.rate, in_stream.layout.name
            tags = dict(probe.metadata)
            stream_tags = dict(in_stream.metadata)
    except av.error.FFmpegError as exc:
        raise MalformedFileError(f"{src}: cannot open audio ({exc})") from exc
    if not in_rate:
        raise MalformedFileError(f"{src}: audio stream declares no sample rate")
    codec, fmt, rate = _output_spec(dst, in_rate)
    if layout not in ("mono", "stereo"):
        layout = "stereo"  # the encoders we ship all take mono/stereo; downmix wider layouts
    label = _label_signal(kind, rate, timing)
    offsets: list[int | None] = []
    if mode == "mix" and len(set(positions)) > 1:
        need = len(set(positions)) * label.shape[0]
        if _duration_samples(src, rate) < need:
            raise InvalidLabelError(
                f"{src} is shorter than the {len(set(positions))} mixed labels ({need / rate:.1f} s); use mode='insert'"
            )
    for pos in dict.fromkeys(positions):
        if pos == "start":
            offsets.append(0)
        elif pos == "end":
            offsets.append(None)
        else:
            offsets.append(_duration_samples(src, rate) // 2)
    blocks, rate, channels = _decode(src, rate, layout, "audio")
    splicer = _Splicer(label, channels, offsets, mode)
    hold = label.shape[0] if (None in offsets and mode == "mix") else 0
    try:
        with atomic_output(dst, mode_from=src) as tmp, av.open(str(tmp), mode="w", format=fmt) as out:
            for key, value in tags.items():
                out.metadata[key] = value
            stream: Any = out.add_stream(codec, rate=rate, layout=layout)
            if codec in ("libmp3lame", "aac", "libopus"):
                stream.bit_rate = 192_000 if channels > 1 else 128_000
            for key, value in stream_tags.items():
                if key.lower() not in ("encoder", "handler_name", "vendor_id"):
                    stream.metadata[key] = value
            pts = 0

            def encode(chunk: Floats) -> None:
                nonlocal pts
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=layout)
                frame.sample_rate = rate
                frame.pts = pts
                frame.time_base = Fraction(1, rate)
                pts += chunk.shape[1]
                for packet in stream.encode(frame):
                    out.mux(packet)

            backlog = np.zeros((channels, 0), dtype=np.float32)
            for block in blocks:
                if hold:
                    backlog = np.concatenate([backlog, block], axis=1)
                    if backlog.shape[1] <= hold:
                        continue
                    block, backlog = backlog[:, :-hold], backlog[:, -hold:]
                for chunk in splicer.feed(block):
                    encode(chunk)
            for chunk in splicer.finish(backlog):
                encode(chunk)
            for packet in stream.encode(None):
                out.mux(packet)
    except av.error.FFmpegError as exc:
        raise MalformedFileError(f"{src}: audio processing failed ({exc})") from exc
    kept = restore_implicit(dst, before, implicit)
    return AudioLabelResult(
        path=dst,
        sample_rate=rate,
        label_seconds=label.shape[0] / rate,
        offsets=[o / rate for o in splicer.out_offsets],
        implicit_label_kept=kept,
    )


# --- detection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CueMatch:
    """One short-long-short-short cue found in audio."""

    start: float
    tones: tuple[float, ...]
    gaps: tuple[float, ...]
    #: Tone frequency in Hz (0 when unknown).
    frequency: float = 0.0

    @property
    def dot(self) -> float:
        """The short tone's duration in seconds (median of the three)."""
        return float(np.median([self.tones[0], *self.tones[2:]]))

    @property
    def end(self) -> float:
        """End time of the last tone in seconds."""
        return self.start + sum(self.tones) + sum(self.gaps)


def tone_bursts(samples: Floats, rate: int, frequency: float) -> list[tuple[float, float]]:
    """(start, duration) in seconds of every burst where a tone at ``frequency`` dominates the signal.

    Band energy (±6 % around the frequency) over total energy in 4 ms windows, with hysteresis:
    speech and music rarely keep 60 % of their energy in such a narrow band.
    """
    if samples.size < rate // 20:
        return []
    nyq = rate / 2
    lo, hi = frequency * 0.94 / nyq, min(frequency * 1.06 / nyq, 0.99)
    sos = signal.butter(4, [lo, hi], btype="bandpass", output="sos")
    band = signal.sosfiltfilt(sos, samples.astype(np.float64))
    win = max(1, int(0.004 * rate))
    band_power = np.maximum(uniform_filter1d(band * band, win), 0.0)
    total_power = uniform_filter1d(samples.astype(np.float64) ** 2, win) + 1e-12
    ratio = band_power / total_power
    loud = band_power > 10 ** (-45 / 10)  # tone louder than -45 dBFS (power of a sine of amplitude ~0.008)
    active = loud & (ratio > 0.6)
    release = loud & (ratio > 0.3)
    # Hysteresis: a burst is a run where the tone still dominates that somewhere clearly dominates.
    runs, count = ndimage.label(release)
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(runs[active])] = True
    keep[0] = False
    on = keep[runs]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    bursts: list[tuple[float, float]] = []
    amplitude = np.sqrt(band_power)
    slack = int(0.03 * rate)
    for s, e in zip(edges[::2], edges[1::2], strict=True):
        if e - s < 0.015 * rate:
            continue
        # The zero-phase filter smears each edge symmetrically, so the half-amplitude crossing of the
        # band envelope sits on the true edge: refine the burst to it.
        half = 0.5 * float(np.median(amplitude[s:e]))
        lo_i, hi_i = max(0, s - slack), min(samples.size, e + slack)
        above = np.flatnonzero(amplitude[lo_i:hi_i] >= half)
        rs, re_ = lo_i + int(above[0]), lo_i + int(above[-1]) + 1
        bursts.append((rs / rate, (re_ - rs) / rate))
    return bursts


def detect_cue(samples: Floats, rate: int, timing: CueTiming | None = None) -> list[CueMatch]:
    """Every short-long-short-short tone pattern in mono ``samples``, classified by burst duration."""
    timing = timing or CueTiming()
    bursts = tone_bursts(samples, rate, timing.frequency)
    split = (timing.dot + timing.dash) / 2

    def kind(duration: float) -> str | None:
        if 0.5 * timing.dot <= duration < split:
            return "S"
        if split <= duration <= 1.6 * timing.dash:
            return "L"
        return None

    matches: list[CueMatch] = []
    i = 0
    while i + 4 <= len(bursts):
        group = bursts[i : i + 4]
        gaps = tuple(group[k + 1][0] - (group[k][0] + group[k][1]) for k in range(3))
        if "".join(kind(d) or "?" for _, d in group) == "SLSS" and all(0 < g <= 2.5 * timing.gap for g in gaps):
            matches.append(CueMatch(start=group[0][0], tones=tuple(d for _, d in group), gaps=gaps))
            i += 4
        else:
            i += 1
    return matches


#: GB 45438 §5.3 sets no tone or speed for the rhythm; what another producer's cue may use.
RHYTHM_MIN_HZ, RHYTHM_MAX_HZ = 300.0, 3000.0
RHYTHM_MIN_DOT, RHYTHM_MAX_DOT = 0.06, 0.25
#: The long tone is 3 dots (Morse); accepted from 3 / 1.5 to 3 x 1.5, and short tones within 1.5x of each other.
RHYTHM_RATIO_TOLERANCE = 1.5


def tonal_frequencies(samples: Floats, rate: int, most: int = 10) -> list[float]:
    """The frequencies (Hz) of the steady tones in ``samples``, most frequent first.

    A 32 ms frame is tonal when one spectral peak between :data:`RHYTHM_MIN_HZ` and
    :data:`RHYTHM_MAX_HZ` holds over half its energy; the peaks of tonal frames are pooled by
    frequency (±3 %), and pools of at least 5 frames (~40 ms of tone) are returned.
    """
    nper = 256 if rate <= 16000 else 1024
    if samples.size < nper:
        return []
    freqs, _, spec = signal.stft(samples.astype(np.float64), rate, nperseg=nper, noverlap=nper * 3 // 4)
    power = np.abs(spec) ** 2
    total = power.sum(axis=0) + 1e-12
    band = (freqs >= RHYTHM_MIN_HZ) & (freqs <= min(RHYTHM_MAX_HZ, rate / 2 - 1))
    if not band.any():
        return []
    sub = power[band]
    peak = sub.argmax(axis=0)
    # The peak with its two neighbours holds a windowed sine's energy.
    padded = np.pad(sub, ((1, 1), (0, 0)))
    cols = np.arange(sub.shape[1])
    held = padded[peak, cols] + padded[peak + 1, cols] + padded[peak + 2, cols]
    tonal = (held / total > 0.5) & (total > (10 ** (-45 / 10)) * nper)
    if not tonal.any():
        return []
    # Refine each tonal frame's peak by parabolic interpolation, then pool.
    band_freqs = freqs[band]
    step = float(freqs[1] - freqs[0])
    picks: list[float] = []
    for col in np.flatnonzero(tonal):
        k = int(peak[col])
        a, b, c = (float(np.log(padded[k + j, col] + 1e-20)) for j in range(3))
        shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        picks.append(float(band_freqs[k]) + max(-0.5, min(0.5, shift)) * step)
    pools: list[list[float]] = []
    for f in sorted(picks):
        if pools and f <= pools[-1][0] * 1.03:
            pools[-1].append(f)
        else:
            pools.append([f])
    found = sorted((p for p in pools if len(p) >= 5), key=len, reverse=True)
    return [float(np.median(p)) for p in found[:most]]


def detect_rhythm(samples: Floats, rate: int) -> list[CueMatch]:
    """Every short-long-short-short cue at any tone and speed §5.3 plausibly allows.

    Tones from :func:`tonal_frequencies`; for each, the bursts of :func:`tone_bursts`; four in a row
    match when the three short ones agree within :data:`RHYTHM_RATIO_TOLERANCE`, the dot is
    60-250 ms, the long one is about three dots and no gap exceeds three dots.
    """
    matches: list[CueMatch] = []
    tol = RHYTHM_RATIO_TOLERANCE
    for frequency in tonal_frequencies(samples, rate):
        bursts = tone_bursts(samples, rate, frequency)
        i = 0
        while i + 4 <= len(bursts):
            group = bursts[i : i + 4]
            d = [dur for _, dur in group]
            shorts = [d[0], d[2], d[3]]
            dot = float(np.median(shorts))
            gaps = tuple(group[k + 1][0] - (group[k][0] + group[k][1]) for k in range(3))
            ok = (
                RHYTHM_MIN_DOT / 1.25 <= dot <= RHYTHM_MAX_DOT * 1.25
                and max(shorts) <= tol * min(shorts)
                and 3 / tol <= d[1] / dot <= 3 * tol
                and all(0 < g <= 3 * dot for g in gaps)
            )
            if ok:
                matches.append(CueMatch(group[0][0], tuple(float(v) for v in d), gaps, round(frequency, 1)))
                i += 4
            else:
                i += 1
    return sorted(matches, key=lambda m: m.start)


def speech_spans(samples: Floats, rate: int, min_seconds: float = 0.6) -> list[tuple[float, float]]:
    """(start, end) seconds of stretches that sound like speech: a voice-activity detector.

    A 32 ms frame is voice-like when it is loud, not a single tone (no peak holding half its
    energy), not noise (spectral flatness under 0.3) and has most energy in 100-4000 Hz; stretches of
    such frames (gaps under 0.3 s bridged) at least ``min_seconds`` long whose loudness moves by
    syllables (a frame-to-frame level spread over 6 dB) are speech. It cannot say what is said.
    """
    nper = max(64, int(0.032 * rate))
    if samples.size < nper * 4:
        return []
    freqs, times, spec = signal.stft(samples.astype(np.float64), rate, nperseg=nper, noverlap=nper // 2)
    power = np.abs(spec) ** 2 + 1e-20
    total = power.sum(axis=0)
    level = 10 * np.log10(total / nper)
    loud = level > max(-50.0, float(np.percentile(level, 20)) + 10)
    flatness = np.exp(np.log(power).mean(axis=0)) / power.mean(axis=0)
    voice_band = power[(freqs >= 100) & (freqs <= 4000)].sum(axis=0) / total
    padded = np.pad(power, ((1, 1), (0, 0)))
    peak = power.argmax(axis=0)
    cols = np.arange(power.shape[1])
    tonal = (padded[peak, cols] + padded[peak + 1, cols] + padded[peak + 2, cols]) / total > 0.5
    voiced = loud & (flatness < 0.3) & (voice_band > 0.7) & ~tonal
    bridge = max(1, int(0.3 / (times[1] - times[0]))) if times.size > 1 else 1
    closed = ndimage.binary_closing(voiced, structure=np.ones(bridge)) | voiced
    runs, _ = ndimage.label(closed)
    spans: list[tuple[float, float]] = []
    for index, found in enumerate(ndimage.find_objects(runs)):
        if found is None:
            continue
        s, e = found[0].start, found[0].stop
        start, end = float(times[s]), float(times[e - 1])
        inside = level[s:e][runs[s:e] == index + 1]
        if end - start >= min_seconds and float(np.std(np.diff(inside))) > 6.0 * 0.5 and np.ptp(inside) > 6.0:
            spans.append((start, end))
    return spans


def load_mono(path: Path | str, rate: int = ANALYSIS_RATE) -> Floats:
    """Decode ``path`` to mono float32 at ``rate`` (for analysis), refusing absurdly long inputs."""
    blocks, _, _ = _decode(path, rate, "mono", "audio")
    parts: list[Floats] = []
    total = 0
    for block in blocks:
        parts.append(block[0])
        total += block.shape[1]
        if total > MAX_ANALYSIS_SECONDS * rate:
            raise LimitExceededError(f"{path}: longer than {MAX_ANALYSIS_SECONDS} s; not analysed")
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class AudioScan:
    """What :func:`scan_audio` found in a file."""

    duration: float
    cues: list[CueMatch]
    spoken: list[float]
    #: (start, end) seconds of speech of any kind (:func:`speech_spans`): what it says needs a person.
    speech: list[tuple[float, float]] = field(default_factory=list)
    #: Seconds of audio analysed (the whole file unless it is longer than the analysis budget).
    analysed: float = 0.0
    #: (start, end) seconds of the middle not searched because the file is over the analysis budget.
    not_searched: tuple[float, float] | None = None


#: Seconds of audio analysed at once by :func:`scan_audio` (windows overlap by one label length).
SCAN_WINDOW_SECONDS = 60.0
#: Most seconds of audio :func:`scan_audio` analyses; a longer file is analysed at its start and end.
SCAN_BUDGET_SECONDS = 900.0
#: Of the budget, the seconds analysed at the very end of a long file (§5.3 labels go at the start or end).
SCAN_END_SECONDS = 300.0


def scan_audio(
    path: Path | str, timing: CueTiming | None = None, *, spoken: bool = True, budget: float | None = None
) -> AudioScan:
    """Find cues, our spoken clip and stretches of speech in a file of any length in bounded memory and time.

    With ``timing`` only cues of that exact timing count (:func:`detect_cue`); without, any
    short-long-short-short rhythm §5.3 plausibly allows (:func:`detect_rhythm`). The audio is
    decoded at 8 kHz mono and analysed in 60 s windows that overlap by more than one label, so a
    label straddling a window edge is still seen whole once; duplicates are merged. Analysis (not
    decoding, which is cheap) is what costs, so about ``budget`` seconds (default
    :data:`SCAN_BUDGET_SECONDS`) are analysed at most: a longer file is analysed over its first
    ``budget - SCAN_END_SECONDS`` and its last :data:`SCAN_END_SECONDS` seconds, and the span between
    is reported in :attr:`AudioScan.not_searched`.
    """
    exact = timing is not None
    timing = timing or CueTiming(dot=RHYTHM_MAX_DOT, dash=3 * RHYTHM_MAX_DOT * RHYTHM_RATIO_TOLERANCE)
    rate = ANALYSIS_RATE
    ref_seconds = spoken_label(rate).size / rate if spoken else 0.0
    overlap = int((max(timing.duration, ref_seconds) + 1.0) * rate)
    window = int(SCAN_WINDOW_SECONDS * rate)
    cues: list[CueMatch] = []
    hits: list[float] = []
    speech: list[tuple[float, float]] = []
    analysed = 0

    def analyse(chunk: Floats, base: int, fresh: int) -> None:
        nonlocal analysed
        analysed += fresh
        offset = base / rate
        for match in detect_cue(chunk, rate, timing) if exact else detect_rhythm(chunk, rate):
            start = match.start + offset
            if all(abs(start - c.start) > 0.05 for c in cues):
                cues.append(CueMatch(float(start), match.tones, match.gaps, match.frequency or timing.frequency))
        if spoken:
            for t in find_spoken_label(chunk, rate):
                if all(abs(t + offset - h) > 0.5 for h in hits):
                    hits.append(float(t + offset))
            for s, e in speech_spans(chunk, rate):
                if all(abs(s + offset - a) > 0.5 for a, _ in speech):
                    speech.append((s + offset, e + offset))

    budget = SCAN_BUDGET_SECONDS if budget is None else budget
    head = int(max(0.0, budget - SCAN_END_SECONDS) * rate)  # analysed from the start before skipping
    keep = int(min(SCAN_END_SECONDS, budget) * rate) + overlap  # held back once skipping, for the end
    blocks, _, _ = _decode(path, rate, "mono", "audio")
    pending: list[Floats] = []
    buffer = np.zeros(0, dtype=np.float32)
    base = total = 0
    skipped_from: int | None = None
    for block in blocks:
        pending.append(block[0])
        total += block.shape[1]
        if total - base < max(window + overlap, keep + window):
            continue
        buffer = np.concatenate([buffer, *pending])
        pending = []
        while base < head and buffer.size >= window + overlap:
            analyse(buffer[: window + overlap], base, window)
            buffer, base = buffer[window:], base + window
        if base >= head and buffer.size > keep:  # over budget: only the last part is kept
            skipped_from = base if skipped_from is None else skipped_from
            drop = buffer.size - keep
            buffer, base = buffer[drop:], base + drop
    buffer = np.concatenate([buffer, *pending])
    if base >= head and buffer.size > keep:
        skipped_from = base if skipped_from is None else skipped_from
        drop = buffer.size - keep
        buffer, base = buffer[drop:], base + drop
    gap = (skipped_from / rate, base / rate) if skipped_from is not None else None
    while buffer.size > window + overlap:
        analyse(buffer[: window + overlap], base, window)
        buffer, base = buffer[window:], base + window
    analyse(buffer, base, buffer.size)
    return AudioScan(
        duration=total / rate,
        cues=sorted(cues, key=lambda c: c.start),
        spoken=sorted(hits),
        speech=sorted(speech),
        analysed=analysed / rate,
        not_searched=gap,
    )


def detect_cue_in_file(path: Path | str, timing: CueTiming | None = None) -> list[CueMatch]:
    """Cues in the first audio stream of ``path`` (any format PyAV reads), in bounded memory."""
    return scan_audio(path, timing, spoken=False).cues


def find_spoken_label(samples: Floats, rate: int = ANALYSIS_RATE, threshold: float = 0.6) -> list[float]:
    """Start times (s) where our shipped spoken label occurs, by normalised cross-correlation.

    This recognises *our* clip (the one :func:`add_audio_label` inserts), not arbitrary speech.
    """
    ref = spoken_label(rate).astype(np.float64)
    if samples.size < ref.size:
        return []
    x = samples.astype(np.float64)
    corr = signal.fftconvolve(x, ref[::-1], mode="valid")
    power = np.concatenate([[0.0], np.cumsum(x * x)])
    window = np.maximum(power[ref.size :] - power[: -ref.size], 0.0)
    energy = np.sqrt(window) * math.sqrt(float(ref @ ref)) + 1e-12
    score = corr / energy
    hits: list[float] = []
    for peak in signal.find_peaks(score, height=threshold, distance=ref.size)[0]:
        hits.append(float(peak) / rate)
    return hits


__all__ = [
    "AudioLabelResult",
    "AudioPosition",
    "AudioScan",
    "CueMatch",
    "CueTiming",
    "LabelKind",
    "Mode",
    "PcmFormat",
    "TurnPosition",
    "add_audio_label",
    "detect_cue",
    "detect_cue_in_file",
    "detect_rhythm",
    "find_spoken_label",
    "label_pcm_stream",
    "load_mono",
    "make_cue",
    "scan_audio",
    "speech_spans",
    "spoken_label",
    "tonal_frequencies",
    "tone_bursts",
]
