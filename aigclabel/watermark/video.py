"""Video watermark: the image mark on every frame (PyAV), detected on the average of sampled frames.

Why: a platform re-encodes every upload, so the video mark must be in the pixels like the image one.
Every frame gets the same tile at the same position; the detector whitens a handful of frames spread
over the video and averages them before the usual lattice/fold/sync search. The mark is identical in
each frame while the host content moves, so averaging raises the signal-to-noise ratio and keeps a
single statistical test (the false-positive rate is that of one image).

Embedding re-encodes the video stream (H.264, CRF 18, yuv420p) and copies every audio stream packet for
packet; subtitles and data streams are dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .. import _budget
from .._decode import check_video_pixels
from .._extras import needs_extra
from ..errors import LimitExceededError, MalformedFileError
from .image import ImageDetection, _check_image, _detect_whitened, _luma, _whiten, embed_image
from .payload import DEMO_KEY, Payload

with needs_extra("media"):
    import av

__all__ = ["detect_video", "embed_video"]

_MAX_FRAMES = 200_000
_SAMPLE_FRAMES = 8
#: Videos with more than this many frames per sample are sampled by seeking instead of decoding through.
_SEEK_AFTER = 30


def embed_video(
    src: Path,
    dst: Path,
    payload: Payload,
    key: bytes = DEMO_KEY,
    *,
    container_format: str | None = None,
    crf: int = 18,
    target_psnr: float = 40.0,
) -> None:
    """Watermark every frame of ``src`` into ``dst`` (H.264); audio streams are copied unchanged."""
    try:
        with av.open(str(src)) as inp, av.open(str(dst), "w", format=container_format) as out:
            if not inp.streams.video:
                raise MalformedFileError(f"{src}: no video stream")
            vin = inp.streams.video[0]
            rate = vin.average_rate or vin.guessed_rate or 25
            vout = out.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "veryfast"})
            assert isinstance(vout, av.VideoStream)
            vout.width = vin.codec_context.width
            vout.height = vin.codec_context.height
            vout.pix_fmt = "yuv420p"
            vout.time_base = vin.time_base
            audio = {s.index: out.add_stream_from_template(s) for s in inp.streams.audio}
            count = 0
            for packet in inp.demux(vin, *inp.streams.audio):
                if packet.stream.index in audio:
                    if packet.dts is None:
                        continue
                    packet.stream = audio[packet.stream.index]
                    out.mux(packet)
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    count += 1
                    if count > _MAX_FRAMES:
                        raise LimitExceededError(f"{src}: more than {_MAX_FRAMES} frames")
                    rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
                    out_rgb = embed_image(rgb, payload, key, target_psnr, bind=False)
                    marked = av.VideoFrame.from_ndarray(out_rgb, format="rgb24")
                    marked.pts = frame.pts
                    marked.time_base = frame.time_base
                    for pkt in vout.encode(marked):
                        out.mux(pkt)
            for pkt in vout.encode(None):
                out.mux(pkt)
    except av.error.FFmpegError as exc:
        raise MalformedFileError(f"{src}: cannot transcode video: {exc}") from exc


def detect_video(path: Path, key: bytes = DEMO_KEY, frames: int = _SAMPLE_FRAMES) -> ImageDetection:
    """Average the whitened luminance of up to ``frames`` frames spread over the video, then detect.

    A long video is sampled by seeking (one keyframe per sample), not decoded whole: a four-minute
    1080p upload costs ``frames`` decodes, not 6,000.
    """
    try:
        with av.open(str(path)) as inp:
            if not inp.streams.video:
                raise MalformedFileError(f"{path}: no video stream")
            stream = inp.streams.video[0]
            check_video_pixels(path, stream)
            total = stream.frames or 0
            if total > frames * _SEEK_AFTER and stream.duration and stream.time_base:
                picked = _seek_sampled(inp, stream, frames)
            else:
                picked = _decode_sampled(inp, stream, frames, total)
            acc: npt.NDArray[np.float32] | None = None
            used = 0
            for rgb in picked:
                _check_image(rgb)
                r = _whiten(_luma(rgb))
                if acc is None:
                    acc = r
                elif acc.shape == r.shape:
                    acc = acc + r
                used += 1
                if used >= frames:
                    break
    except av.error.FFmpegError as exc:
        raise MalformedFileError(f"{path}: cannot decode video: {exc}") from exc
    if acc is None:
        raise MalformedFileError(f"{path}: no decodable video frames")
    return _detect_whitened(acc / np.float32(used), key)


def _decode_sampled(
    inp: av.container.InputContainer, stream: av.VideoStream, frames: int, total: int
) -> Iterator[npt.NDArray[np.uint8]]:
    """Every ``total // frames``-th frame, decoding from the start (short videos)."""
    step = max(total // frames, 1) if total else 1
    for i, frame in enumerate(inp.decode(stream)):
        _budget.charge_frames(1, "the video")
        if i % step == 0:
            yield np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)


def _seek_sampled(
    inp: av.container.InputContainer, stream: av.VideoStream, frames: int
) -> Iterator[npt.NDArray[np.uint8]]:
    """The first frame decoded after seeking to each of ``frames`` evenly spaced points (long videos)."""
    assert stream.duration is not None
    seen: set[int | None] = set()
    for k in range(frames):
        inp.seek(int(stream.duration * (k + 0.5) / frames), stream=stream)
        for frame in inp.decode(stream):
            _budget.charge_frames(1, "the video")
            if frame.pts not in seen:
                seen.add(frame.pts)
                yield np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
            break
