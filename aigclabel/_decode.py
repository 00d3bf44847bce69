"""Bounded decoding for analysis: images (``check``, the verify detectors, the watermark reader) and,
with :func:`decode_audio`, the sound the voice matcher listens to (its first minutes only).

A few hundred KB of PNG can declare 49 megapixels; decoding that at full size and running the
detectors on it cost 1.2 GB. Analysis needs neither: the watermark detector works from half scale
(its search covers scales 0.4-2) and the visible-label locator measures glyph height relative to
the shortest side. So :func:`decode_for_analysis`

* refuses, before decoding, an image over :data:`aigclabel._io.MAX_DECODE_PIXELS` (width x height
  from the header, :class:`LimitExceededError`, "not searched");
* scales an image over :data:`ANALYSIS_PIXELS` down by 2 (at most ``max_factor``): a JPEG is decoded
  at that scale directly (``draft``: the IDCT skips the detail), any other format is decoded and
  box-reduced at once, so only one full-size buffer ever exists;
* applies the EXIF orientation after scaling (cheaper, same result).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from . import _budget
from ._extras import needs_extra
from ._guard import hostile_input
from ._io import MAX_DECODE_PIXELS
from .errors import LimitExceededError, MalformedFileError


def register_heif() -> None:
    """Let Pillow open HEIC/AVIF, for every module that decodes with it (this one registers on import;
    pillow-heif is a declared dependency and registration is idempotent)."""
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - declared dependency
        return
    pillow_heif.register_heif_opener()


register_heif()

#: Images above this many pixels are analysed at reduced scale.
ANALYSIS_PIXELS = 16_000_000

# EXIF Orientation -> the transpose that shows the picture upright (as PIL.ImageOps.exif_transpose).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def check_pixels(path: Path | str, width: int, height: int, what: str = "image") -> None:
    """Raise :class:`LimitExceededError` when ``width`` x ``height`` is over the decode limit."""
    if width * height > MAX_DECODE_PIXELS:
        raise LimitExceededError(
            f"{path}: {width}x{height} {what} is over the {MAX_DECODE_PIXELS // 1_000_000} MP scan limit; not searched"
        )


def check_video_pixels(path: Path | str, stream: Any) -> None:
    """:func:`check_pixels` on a PyAV video stream's declared frame size, and inside a budget the pixel budget
    (each frame must fit it, like an image), before any frame is decoded."""
    context = stream.codec_context
    width, height = int(context.width or stream.width or 0), int(context.height or stream.height or 0)
    check_pixels(path, width, height, "video")
    _budget.require_pixels(width * height, f"the {width}x{height} video's frames")


def check_video_file(path: Path) -> None:
    """:func:`check_video_pixels` on the first video stream of the file at ``path``, from its header alone (nothing
    is decoded; a file PyAV does not open is left to the decoders to report)."""
    with needs_extra("media"):
        import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if container.streams.video:
                check_video_pixels(path, container.streams.video[0])
    except (av.error.FFmpegError, OSError, ValueError):
        return


def charge_frame(frame: Any) -> None:
    """Charge one decoded video frame to the budget: a frame and its pixels (no-op outside a budget)."""
    _budget.charge_frames(1, "the video", width=int(frame.width), height=int(frame.height))


def frame_image(path: Path | str, frame: Any) -> Image.Image:
    """A decoded PyAV video frame in RGB as it is displayed (rotated), its actual size checked first (a stream may
    declare a smaller one than its frames have)."""
    check_pixels(path, frame.width, frame.height, "video frame")
    image: Image.Image = frame.to_image()
    angle = round(float(getattr(frame, "rotation", 0) or 0)) % 360
    return image.rotate(angle, expand=True) if angle in (90, 180, 270) else image


def decode_for_analysis(
    path: Path, *, max_pixels: int = ANALYSIS_PIXELS, max_factor: int = 2, keep_alpha: bool = False
) -> tuple[Image.Image, int]:
    """The upright image at ``path`` in RGB (RGBA with ``keep_alpha`` when it has alpha), at most
    ``max_pixels`` where a power-of-two factor up to ``max_factor`` allows, and that factor."""
    with hostile_input(path, "image"), Image.open(path) as opened:
        width, height = opened.size
        check_pixels(path, width, height)
        factor = 1
        while factor < max_factor and (width // factor) * (height // factor) > max_pixels:
            factor *= 2
        orientation = opened.getexif().get(0x0112)
        if factor > 1 and opened.format == "JPEG":
            opened.draft("RGB", (width // factor, height // factor))
        _budget.charge_pixels(opened.width * opened.height, f"the {width}x{height} image")  # no-op outside the service
        opened.load()
        mode = "RGBA" if keep_alpha and "A" in opened.getbands() else "RGB"
        # Leaving the ``with`` closes only the file: the loaded image stays usable, so no 2 MP copy is made.
        image = opened if opened.mode == mode else opened.convert(mode)
        done = round(width / image.width)  # what draft() already did
        if factor > done:
            image = image.reduce(factor // done)
        transpose = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
        return (image.transpose(transpose) if transpose is not None else image), factor


_SAMPLED: ContextVar[list[float] | None] = ContextVar("aigclabel_sampled", default=None)


@contextmanager
def sampled_times() -> Iterator[list[float]]:
    """Collect the times of the video frames :func:`video_frames` takes inside the block (a scan reports them:
    a frame budget may leave part of a video unsampled, and the report must say which part was seen)."""
    times: list[float] = []
    token = _SAMPLED.set(times)
    try:
        yield times
    finally:
        _SAMPLED.reset(token)


def video_frames(path: Path, *, every: float = 1.0, limit: int = 30) -> Iterator[tuple[float, Image.Image]]:
    """(time in seconds, the frame as displayed in RGB) for one frame per ``every`` seconds, at most ``limit``.

    For a video longer than ``every`` x ``limit`` the sample times are spread evenly over its whole length (a
    face that appears late is not missed). The packets are first indexed without decoding (where the keyframes
    are, how many frames lie between); each sample is then reached by the cheaper of decoding on or seeking to
    the keyframe before it, and when that would cost more frames than the budget leaves per remaining sample,
    the nearest keyframe is taken instead (decoded alone), so a phone video or a 250-frame GOP is covered within
    the service's frame budget. The times yielded are those of the frames actually taken; every decoded frame
    is charged to the budget (as a frame and as its pixels), and the declared and actual frame sizes are checked
    before decoding.
    """

    def plan(first: int, end: int, base: float) -> list[_Target]:
        span = (end - first) * base
        count = max(1, min(limit, int(span / every + 1e-9) + 1))
        step = every if count < limit or count == 1 else max(every, span / (count - 1))
        return [_Target(first + round(i * step / base)) for i in range(count)]

    yield from _sampled(path, plan)


def video_spread(path: Path, count: int, *, max_cost: int) -> Iterator[tuple[float, Image.Image]]:
    """Up to ``count`` frames, one from each of ``count`` equal parts of the video, for an analysis that needs
    frames spread over it but at no exact time (the video watermark): a keyframe in the part (the one nearest its
    middle, decoded alone) when it has one; else the frame at its middle when decoding to it costs at most
    ``max_cost`` frames (and the budget's share, as in :func:`video_frames`); else the nearest keyframe not
    taken yet. Short videos are thus decoded through, long ones cost about one frame per part.
    """

    def plan(first: int, end: int, base: float) -> list[_Target]:
        bounds = [first + (end - first) * k / count for k in range(count + 1)]
        return [_Target(round((lo + hi) / 2), math.ceil(lo), math.floor(hi)) for lo, hi in itertools.pairwise(bounds)]

    yield from _sampled(path, plan, max_cost=max_cost)


@dataclass(frozen=True)
class _Target:
    """A sample: the frame at ``at`` (stream time base), or any keyframe from ``lo`` to ``hi`` when they differ."""

    at: int
    lo: int = -1
    hi: int = -1


def _sampled(
    path: Path, plan: Callable[[int, int, float], list[_Target]], *, max_cost: float = math.inf
) -> Iterator[tuple[float, Image.Image]]:
    """Open and index the video at ``path``, then take the samples ``plan`` (first and last frame time, time base)
    asks for; yields (seconds from the first frame, image) and records the times for :func:`sampled_times`."""
    with needs_extra("media"):
        import av

    with hostile_input(path, "video"):
        try:
            with av.open(str(path), metadata_errors="replace") as container:
                if not container.streams.video:
                    raise MalformedFileError(f"{path}: no video stream")
                stream = container.streams.video[0]
                check_video_pixels(path, stream)
                base = float(stream.time_base) if stream.time_base else 0.0
                index = _index(container, stream) if base else _Index([], [])
                if not index.times:
                    raise MalformedFileError(f"{path}: no timed video frames to sample")
                first = index.times[0]
                record = _SAMPLED.get()
                sampler = _Sampler(path, container, stream, index, max_cost)
                for pts, image in sampler.take(plan(first, index.times[-1], base)):
                    if record is not None:
                        record.append((pts - first) * base)
                    yield (pts - first) * base, image
        except av.error.FFmpegError as exc:
            raise MalformedFileError(f"{path}: cannot decode video ({exc})") from exc


#: Packets :func:`video_frames` indexes before sampling; a stream with more is sampled over its indexed part.
_INDEX_PACKETS = 200_000


@dataclass
class _Index:
    """A video stream's packet presentation times and keyframe times (stream time base), sorted."""

    times: list[int]
    keys: list[int]

    def between(self, start: int, stop: int) -> int:
        """Frames with ``start`` <= time <= ``stop``: what decoding from ``start`` to ``stop`` costs."""
        return bisect.bisect_right(self.times, stop) - bisect.bisect_left(self.times, start)

    def key_before(self, at: int) -> int:
        """The last keyframe at or before ``at`` (the first frame when none is)."""
        i = bisect.bisect_right(self.keys, at)
        return self.keys[i - 1] if i else self.times[0]

    def key_nearest(self, at: int) -> int:
        """The keyframe closest to ``at``."""
        i = bisect.bisect_left(self.keys, at)
        near = self.keys[max(i - 1, 0) : i + 1] or [self.times[0]]
        return min(near, key=lambda key: abs(key - at))

    def keys_within(self, lo: int, hi: int) -> list[int]:
        """The keyframes with ``lo`` <= time <= ``hi``."""
        return self.keys[bisect.bisect_left(self.keys, lo) : bisect.bisect_right(self.keys, hi)]


def _index(container: Any, stream: Any) -> _Index:
    """Demux (no decoding) the stream's packets, at most :data:`_INDEX_PACKETS`, then rewind."""
    times: list[int] = []
    keys: list[int] = []
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        if len(times) % 4096 == 0:
            _budget.check("indexing the video")
        times.append(int(packet.pts))
        if packet.is_keyframe:
            keys.append(int(packet.pts))
        if len(times) >= _INDEX_PACKETS:
            break
    times.sort()
    keys.sort()
    if times:
        container.seek(times[0], stream=stream, backward=True)
    return _Index(times, keys)


class _Sampler:
    """Takes frames at given times with as few decoded frames as the budget needs (see :func:`video_frames`)."""

    def __init__(self, path: Path, container: Any, stream: Any, index: _Index, max_cost: float) -> None:
        self.path, self.container, self.stream, self.index = path, container, stream, index
        self.max_cost = max_cost
        context = stream.codec_context
        self.frame_pixels = max(int(context.width or stream.width or 0) * int(context.height or stream.height or 0), 1)
        self.frames: Iterator[Any] | None = None  # the decoder, positioned after ``self.at``
        self.at = -1  # time of the last frame decoded in order (not keyframe-only)
        self.taken: set[int] = set()

    def take(self, targets: list[_Target]) -> Iterator[tuple[int, Image.Image]]:
        """(frame time, image) for each target: that frame, or the nearest keyframe when it costs too much."""
        for i, sample in enumerate(targets):
            target = sample.at
            keys = [key for key in self.index.keys_within(sample.lo, sample.hi) if key not in self.taken]
            if sample.lo < sample.hi and keys:
                got = self._keyframe(min(keys, key=lambda key: abs(key - target)))
            else:
                key = self.index.key_before(target)
                on = self.frames is not None and key <= self.at
                onward = self.index.between(self.at + 1, target) if on else None
                from_key = self.index.between(key, target)
                cost = min(from_key, onward) if onward is not None else from_key
                if cost <= self._allowance(len(targets) - i):
                    got = self._decode_to(target, seek=None if onward is not None and onward <= from_key else key)
                else:
                    got = self._keyframe(self.index.key_nearest(target))
            if got is not None and got[0] not in self.taken:
                self.taken.add(got[0])
                yield got

    def _allowance(self, samples: int) -> float:
        """Frames one of the ``samples`` remaining samples may cost: ``max_cost``, and the budget's share."""
        limits = _budget.current()
        if limits is None:
            return self.max_cost
        pixels_left = limits.video_pixels - limits.used_video_pixels
        left = min(limits.frames - limits.used_frames, pixels_left // self.frame_pixels)
        return min(self.max_cost, left / samples)

    def _decode_to(self, target: int, seek: int | None) -> tuple[int, Image.Image] | None:
        """The first frame at or after ``target``, decoding on (``seek`` None) or from the keyframe ``seek``."""
        if seek is not None or self.frames is None:
            self._restart(self.index.times[0] if seek is None else seek, keys_only=False)
        assert self.frames is not None
        for frame in self.frames:
            charge_frame(frame)
            at = int(frame.pts) if frame.pts is not None else self.at + 1
            self.at = at
            if at >= target:
                return at, frame_image(self.path, frame)
        return None

    def _keyframe(self, key: int) -> tuple[int, Image.Image] | None:
        """The keyframe at ``key`` alone (the decoder skips every other frame)."""
        if key in self.taken:
            return None
        self._restart(key, keys_only=True)
        assert self.frames is not None
        for frame in self.frames:
            charge_frame(frame)
            self.frames = None  # keyframe-only: the next in-order sample seeks again
            return (int(frame.pts) if frame.pts is not None else key), frame_image(self.path, frame)
        return None

    def _restart(self, at: int, *, keys_only: bool) -> None:
        self.stream.codec_context.skip_frame = "NONKEY" if keys_only else "DEFAULT"
        self.container.seek(at, stream=self.stream, backward=True)
        self.frames = self.container.decode(self.stream)
        self.at = -1 if keys_only else at - 1


def decode_audio(path: Path, *, rate: int, max_seconds: float) -> tuple[npt.NDArray[np.float32], bool]:
    """The first audio stream of ``path`` (an audio file or a video's sound track) as mono float32 at ``rate``,
    at most its first ``max_seconds``, and whether there was more. Decoding stops at the cap, so a long or
    lying file costs no more than the cap; a stream that is not audio or does not decode is a typed error."""
    from .explicit.audio import _decode as decode_blocks  # PyAV: the [media] extra

    limit = int(max_seconds * rate)
    chunks: list[npt.NDArray[np.float32]] = []
    total = 0
    with hostile_input(path, "audio"):
        blocks, _, _ = decode_blocks(path, rate, "mono", "audio")
        try:
            for block in blocks:
                chunks.append(block[0][: limit - total])
                total += chunks[-1].size
                if total >= limit:
                    break
            more = next(blocks, None) is not None if total >= limit else False
        finally:
            blocks.close()  # type: ignore[attr-defined]  # a generator: closing it closes the container
    return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)), more
