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

from pathlib import Path

import numpy as np
import numpy.typing as npt

from .._decode import video_spread
from .._extras import needs_extra
from ..errors import LimitExceededError, MalformedFileError
from .image import ImageDetection, _check_image, _detect_whitened, _luma_whitened, embed_image
from .payload import DEMO_KEY, Payload

with needs_extra("media"):
    import av

__all__ = ["detect_video", "embed_video"]

_MAX_FRAMES = 200_000
_SAMPLE_FRAMES = 8
#: Frames a sample may cost to decode (else a keyframe stands in): short videos are decoded through.
_MAX_COST = 30


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

    The frames come from :func:`aigclabel._decode.video_spread`: one per equal part of the video, a keyframe
    where the part has one, so a four-minute 1080p upload costs about ``frames`` decodes, not 6,000.
    """
    acc: npt.NDArray[np.float32] | None = None
    used = 0
    for _time, image in video_spread(path, frames, max_cost=_MAX_COST):
        rgb = np.asarray(image, dtype=np.uint8)
        _check_image(rgb)
        r = _luma_whitened(rgb)[1]
        if acc is None:
            acc = r
        elif acc.shape == r.shape:
            acc = acc + r
        used += 1
    if acc is None:
        raise MalformedFileError(f"{path}: no decodable video frames")
    return _detect_whitened(acc / np.float32(used), key)
