"""Visible labels on video (GB 45438 §5.4): a text prompt on the opening frames for >= 2 s.

The label is drawn like the image label (§5.2 glyph height rule, contrast-aware plate) on every
frame whose presentation time is within ``seconds`` of the first frame, so that, measured by frame
timestamps, it is on screen for at least that long at normal playback speed. Optionally a
persistent corner label stays for the whole video (Measures Art. 4(4) "around the playback area").

Only the video stream is re-encoded (libx264, CRF 18 by default, same size, frame rate, timestamps
and pixel format where x264 supports it; a display rotation is kept and the label is drawn upright
as the viewer sees it). Audio streams are remuxed packet for packet, untouched; subtitle and data
streams are not carried over. Container tags are copied and the implicit label is carried over
through :mod:`aigclabel.api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._extras import needs_extra
from .._io import atomic_output
from .._media import VIDEO_OUTPUTS, output_for, output_suffixes
from ..errors import InvalidLabelError, MalformedFileError, UnsupportedFormatError
from ._implicit import ImplicitPolicy, read_implicit, restore_implicit
from .image import (
    MIN_HEIGHT_RATIO,
    LabelLayout,
    Placement,
    PlateColours,
    draw_label,
    plan_label,
)
from .text import DEFAULT_LABEL

with needs_extra("media"):
    import av

#: GB 45438 §5.4: the opening label lasts at least 2 s.
MIN_SECONDS = 2.0
_X264_PIX_FMTS = ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le")


@dataclass(frozen=True)
class VideoLabelResult:
    """What :func:`add_video_label` did; ``labelled_seconds`` is measured from frame timestamps."""

    path: Path
    layout: LabelLayout
    colours: PlateColours
    frames: int
    labelled_frames: int
    labelled_seconds: float
    audio_streams_copied: int
    implicit_label_kept: bool


def add_video_label(
    src: Path | str,
    dst: Path | str,
    *,
    text: str = DEFAULT_LABEL,
    placement: Placement = "bottom-right",
    seconds: float = 3.0,
    persistent: bool = False,
    height_ratio: float = MIN_HEIGHT_RATIO,
    crf: int = 18,
    implicit: ImplicitPolicy = "require",
    font_path: str | None = None,
) -> VideoLabelResult:
    """Write ``src`` to ``dst`` with the label on the opening ``seconds`` (or on every frame if
    ``persistent``), re-encoding only the video stream."""
    src, dst = Path(src), Path(dst)
    if seconds < MIN_SECONDS:
        raise InvalidLabelError(f"the opening label must last at least {MIN_SECONDS} s (GB 45438 §5.4)")
    if not 0 <= crf <= 51:
        raise InvalidLabelError("crf must be 0..51")
    fmt = output_for(VIDEO_OUTPUTS, dst)
    if fmt is None:
        suffixes = ", ".join(output_suffixes(VIDEO_OUTPUTS))
        raise UnsupportedFormatError(f"{dst}: video output must end in one of {suffixes}")
    before = read_implicit(src, implicit)
    try:
        rotation = _display_rotation(src)
        source = av.open(str(src), metadata_errors="replace")
    except (av.error.FFmpegError, OSError) as exc:
        raise MalformedFileError(f"{src}: cannot open video ({exc})") from exc
    try:
        with source, atomic_output(dst, mode_from=src) as tmp:
            result = _transcode(
                source, tmp, fmt, text, placement, seconds, persistent, height_ratio, crf, font_path, rotation
            )
    except av.error.FFmpegError as exc:
        raise MalformedFileError(f"{src}: video processing failed ({exc})") from exc
    kept = restore_implicit(dst, before, implicit)
    layout, colours, frames, labelled, covered, audio = result
    return VideoLabelResult(dst, layout, colours, frames, labelled, covered, audio, kept)


def _transcode(
    source: Any,
    tmp: Path,
    fmt: str,
    text: str,
    placement: Placement,
    seconds: float,
    persistent: bool,
    height_ratio: float,
    crf: int,
    font_path: str | None,
    rotation: int,
) -> tuple[LabelLayout, PlateColours, int, int, float, int]:
    if not source.streams.video:
        raise UnsupportedFormatError("no video stream")
    vin = source.streams.video[0]
    ain = list(source.streams.audio)
    width, height = vin.codec_context.width, vin.codec_context.height
    if not width or not height:
        raise MalformedFileError("video stream declares no frame size")
    # Phones store portrait video as landscape frames plus a display rotation: draw the label in the
    # orientation the viewer sees, and keep the rotation on the output stream.
    shown = (height, width) if rotation in (90, 270) else (width, height)
    layout = plan_label(shown, text=text, placement=placement, height_ratio=height_ratio, font_path=font_path)
    pix_fmt = vin.codec_context.pix_fmt if vin.codec_context.pix_fmt in _X264_PIX_FMTS else "yuv420p"
    rate = vin.average_rate or vin.guessed_rate or 25
    with av.open(str(tmp), mode="w", format=fmt) as out:
        for key, value in source.metadata.items():
            if key.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands"):
                out.metadata[key] = value
        vout: Any = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, pix_fmt
        vout.time_base = vin.time_base
        if rotation:
            vout.set_display_rotation(rotation)
        vout.codec_context.time_base = vin.time_base
        vout.options = {"crf": str(crf), "preset": "medium"}
        for key in ("language", "title"):
            if key in vin.metadata:
                vout.metadata[key] = vin.metadata[key]
        amap = {a.index: out.add_stream_from_template(a) for a in ain}
        colours: PlateColours | None = None
        t0: float | None = None
        frames = labelled = 0
        first_unlabelled: float | None = None
        last_time = 0.0
        for packet in source.demux(vin, *ain):
            if packet.stream.index in amap:
                if packet.dts is None:
                    continue
                packet.stream = amap[packet.stream.index]
                out.mux(packet)
                continue
            for frame in packet.decode():
                time = float(frame.pts * frame.time_base) if frame.pts is not None else last_time
                last_time = time
                if t0 is None:
                    t0 = time
                frames += 1
                if persistent or time - t0 < seconds:
                    image = frame.to_image()
                    if rotation:
                        image = image.rotate(rotation, expand=True)
                    colours = draw_label(image, layout, colours, font_path)
                    if rotation:
                        image = image.rotate(-rotation, expand=True)
                    new = av.VideoFrame.from_image(image).reformat(format=pix_fmt)  # type: ignore[no-untyped-call]
                    new.pts, new.time_base = frame.pts, frame.time_base
                    frame = new
                    labelled += 1
                elif first_unlabelled is None:
                    first_unlabelled = time
                    frame = frame.reformat(format=pix_fmt)
                else:
                    frame = frame.reformat(format=pix_fmt)
                for out_packet in vout.encode(frame):
                    out.mux(out_packet)
        for out_packet in vout.encode(None):
            out.mux(out_packet)
    if colours is None or t0 is None:
        raise MalformedFileError("the video stream has no decodable frames")
    end = first_unlabelled if first_unlabelled is not None else _end_time(vin, last_time, rate)
    return layout, colours, frames, labelled, end - t0, len(ain)


def _display_rotation(path: Path) -> int:
    """The first video stream's display rotation in degrees (0, 90, 180 or 270), from its first frame."""
    with av.open(str(path), metadata_errors="replace") as probe:
        if not probe.streams.video:
            return 0
        for frame in probe.decode(probe.streams.video[0]):
            angle = round(float(getattr(frame, "rotation", 0) or 0)) % 360
            return angle if angle in (0, 90, 180, 270) else 0
    return 0


def _end_time(stream: Any, last_time: float, rate: Any) -> float:
    """Presentation end of the last frame: its time plus one frame duration."""
    return last_time + (1.0 / float(rate) if rate else 0.0)
