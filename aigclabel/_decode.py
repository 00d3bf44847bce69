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

from collections.abc import Iterator
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
    """:func:`check_pixels` on a PyAV video stream's declared frame size, before any frame is decoded."""
    context = stream.codec_context
    check_pixels(path, int(context.width or stream.width or 0), int(context.height or stream.height or 0), "video")


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


def video_frames(path: Path, *, every: float = 1.0, limit: int = 30) -> Iterator[tuple[float, Image.Image]]:
    """(time in seconds, the frame as displayed in RGB) for one frame per ``every`` seconds, at most ``limit``.

    For a video longer than ``every`` x ``limit`` the samples are spread evenly over its whole duration
    (a face that appears late is not missed). A gap of more than :data:`_SEEK_GAP` seconds to the next sample
    is skipped by seeking to the keyframe before it, so the frames decoded stay near the samples taken on a
    video with regular keyframes; every decoded frame is charged to the budget, and the declared and actual
    frame sizes are checked against the decode limit before decoding.
    """
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
                duration = float(stream.duration * base) if stream.duration and base else 0.0
                if not duration and container.duration:
                    duration = container.duration / 1_000_000
                step = max(every, duration / limit) if duration else every
                yield from _sampled(path, container, stream, step, limit, base)
        except av.error.FFmpegError as exc:
            raise MalformedFileError(f"{path}: cannot decode video ({exc})") from exc


#: Seconds to the next sample beyond which :func:`video_frames` seeks instead of decoding through.
_SEEK_GAP = 4.0


def _sampled(
    path: Path, container: Any, stream: Any, step: float, limit: int, base: float
) -> Iterator[tuple[float, Image.Image]]:
    """The frames :func:`video_frames` yields, timed from the stream's first frame."""
    taken = 0
    target = 0.0
    first: float | None = None
    last = -1.0
    while taken < limit:
        if first is not None and base and target - last > _SEEK_GAP:
            container.seek(int((first + target) / base), stream=stream, backward=True)
        found = False
        for frame in container.decode(stream):
            _budget.charge_frames(1, "the video")
            at = float(frame.time) if frame.time is not None else last + step
            first = at if first is None else first
            last = at - first
            if last + 1e-6 < target:
                continue
            check_pixels(path, frame.width, frame.height, "video frame")  # the stream may under-declare
            image = frame.to_image()
            angle = round(float(getattr(frame, "rotation", 0) or 0)) % 360
            if angle in (90, 180, 270):  # as displayed
                image = image.rotate(angle, expand=True)
            yield last, image
            taken += 1
            target = max(target + step, last + 1e-3)
            found = True
            break
        if not found:
            return


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
