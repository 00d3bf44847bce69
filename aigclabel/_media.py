"""What a file holds (:func:`media_of`), and one upload's decoded media shared by the trace detectors
of one ``classify`` call (:class:`MediaSample`).

:func:`media_of` is the one media probe (``check``, ``mark``, the watermark): the container registry
first, a content probe only for files no container claims. It imports Pillow and PyAV only when it
needs them, so reading a label stays light.

The visible-label and watermark detectors each decoded the same picture (about 10 ms per 2 MP
JPEG, more with the EXIF transpose); a :class:`MediaSample` decodes it once, lazily (a file whose
label confirms it is never decoded), at analysis size (:func:`aigclabel._decode.decode_for_analysis`),
and hands every detector the same image. A failed decode is remembered and raised again to each
detector that asks, so each reports it in its own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._extras import needs_extra
from .containers import Container, MediaKind, container_for_suffix, open_container
from .errors import AIGCLabelError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

_T = TypeVar("_T")

#: The FFmpeg muxer for each output suffix a video is re-encoded to (H.264: the visible video label and
#: the video watermark), by container; ``{}`` declares a container we do not re-encode into. A test
#: keeps every video container listed, so a new one is a decision, not an omission.
VIDEO_OUTPUTS: dict[str, dict[str, str]] = {
    "mp4": {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"},
    "matroska": {".mkv": "matroska"},  # not .webm: WebM allows no H.264
    "avi": {},
    "flv": {},
}

#: Media no content probe here decodes (text has no magic bytes; Pillow and FFmpeg open no scene), so a
#: file named as one of their formats is taken as one even when its container does not accept it.
_KNOWN_BY_SUFFIX = frozenset({MediaKind.TEXT, MediaKind.SCENE})

#: Media whose containers hold either: an ``.m4a`` is MP4 without video, an ``.ogv`` is Ogg with it.
_TIMED = frozenset({MediaKind.AUDIO, MediaKind.VIDEO})


def media_of(path: Path) -> MediaKind | None:
    """What ``path`` holds, or ``None`` when nothing here can decode it.

    A file a container claims has that container's :attr:`~aigclabel.containers.Container.media`
    (text and scene formats, which nothing here decodes otherwise, also by suffix alone); for an audio or video
    container its streams decide between the two. A file no container claims is an image if Pillow
    identifies it (BMP, say), else audio or video by its PyAV streams.
    """
    container = claimed_by(path)
    if container is not None:
        return _streams_of(path) if container.media in _TIMED else container.media
    if _is_picture(path):
        return MediaKind.IMAGE
    return _streams_of(path)


def output_for(table: Mapping[str, Mapping[str, _T]], path: Path) -> _T | None:
    """The entry of a per-container output table (suffix -> how to write it) for ``path``; ``None``
    when its container is not listed or takes no output of that suffix."""
    container = container_for_suffix(path.suffix) if path.suffix else None
    return table.get(container.name, {}).get(path.suffix.lower()) if container is not None else None


def output_suffixes(table: Mapping[str, Mapping[str, object]]) -> list[str]:
    """Every output suffix of a per-container output table, sorted (for messages)."""
    return sorted(suffix for outputs in table.values() for suffix in outputs)


def claimed_by(path: Path) -> type[Container] | None:
    """The container that claims ``path``: by content, or for a text or scene format by suffix (``None``: none)."""
    try:
        return type(open_container(path))
    except AIGCLabelError:
        by_suffix = container_for_suffix(path.suffix) if path.suffix else None
        return by_suffix if by_suffix is not None and by_suffix.media in _KNOWN_BY_SUFFIX else None


def _is_picture(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Image.DecompressionBombError:
        return True  # identified as an image, just too large to decode: its decoder reports the limit
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


#: FFmpeg demuxers that read one still picture as a one-frame "video" (besides the ``*_pipe`` ones, which
#: probe a picture's content). ``image2`` takes any file by its suffix, garbage named ``.jpg`` included.
_STILL_DEMUXERS = frozenset({"image2"})


def _still_without_size(container: Any) -> bool:
    """Whether FFmpeg opened the file as a still picture whose size it could not read: a damaged or
    unknown picture (a still it does read, EXR say, stays a one-frame video for the detectors)."""
    name = str(container.format.name)
    still = name in _STILL_DEMUXERS or name.endswith("_pipe")
    return still and not any(stream.codec_context.width for stream in container.streams.video)


def _streams_of(path: Path) -> MediaKind | None:
    """Video when PyAV finds a moving picture (cover art does not count), audio when only sound."""
    with needs_extra("media"):
        import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            if _still_without_size(container):
                return None
            moving = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if moving:
                return MediaKind.VIDEO
            if container.streams.audio:
                return MediaKind.AUDIO
    except (av.error.FFmpegError, OSError, ValueError):
        pass
    return None


class MediaSample:
    """The decoded media of the file at ``path`` (container ``container``), decoded on first use."""

    def __init__(self, path: Path, container: str | None = None) -> None:
        self.path = path
        self.container = container
        self._image: tuple[Image.Image, int] | None = None
        self._image_error: BaseException | None = None
        self._pixels: npt.NDArray[np.uint8] | None = None

    def analysis_image(self) -> tuple[Image.Image, int]:
        """The upright picture (RGB, or RGBA when it has alpha) at analysis size, and the factor it
        was reduced by; raises what :func:`decode_for_analysis` raises (every time it is asked)."""
        if self._image_error is not None:
            raise self._image_error
        if self._image is None:
            from ._decode import decode_for_analysis
            from .api import vet

            try:
                vet(self.path)  # a file over our parsers' limits never reaches Pillow
                self._image = decode_for_analysis(self.path, keep_alpha=True)
            except Exception as exc:  # typed by the guard; BudgetExceeded and LimitExceeded included
                self._image_error = exc
                raise
        return self._image

    def analysis_pixels(self) -> npt.NDArray[np.uint8]:
        """:meth:`analysis_image` as an array (H x W x 3 or 4), copied out of Pillow once for every detector that
        reads pixels (~0.8 ms for 2 MP); raises what :meth:`analysis_image` raises."""
        if self._pixels is None:
            import numpy as np

            self._pixels = np.asarray(self.analysis_image()[0])
        return self._pixels
