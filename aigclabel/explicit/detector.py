"""Explicit-label detectors and visible labelers for :mod:`aigclabel.verify` (register themselves on import).

Detectors (each a trace for Art. 6 "suspected"):

* ``explicit-image-label``: an aigclabel visible label plate on an image (:func:`locate_label`);

Visible labelers (used by ``verify --apply --prompt burn`` only; each re-encodes the content): the
classification's prompt (人工智能生成 / 可能为人工智能生成 / 疑似人工智能生成) drawn on images and on
the opening of videos, written into text, Markdown and HTML, and for audio the rhythm cue (plus the
spoken prompt for *confirmed*) prepended.
"""

from __future__ import annotations

from pathlib import Path

from .._io import MAX_DECODE_PIXELS
from ..containers import open_container
from ..errors import AIGCLabelError
from ..verify import PROMPTS, Classification, Evidence, register_detector, register_visible_labeler

#: Container formats Pillow decodes as still images.
IMAGE_FORMATS = frozenset({"jpeg", "png", "webp", "tiff", "heif"})
DECODE_ERRORS = (OSError, ValueError, SyntaxError, IndexError, MemoryError)


def _format(path: Path) -> str | None:
    try:
        return open_container(path).name
    except AIGCLabelError:
        return None


def _too_large(detector: str, what: str) -> Evidence:
    return Evidence(
        "detector-skipped",
        f"{what} is over the {MAX_DECODE_PIXELS // 1_000_000} MP scan limit; not searched",
        "-",
        detector,
        "info",
    )


class ExplicitImageLabelDetector:
    """Finds the visible label plate aigclabel draws (other styles are not recognised)."""

    name = "explicit-image-label"
    formats = IMAGE_FORMATS
    #: One decode plus a colour-mask pass: tens of milliseconds per megapixel.
    cost = 20.0

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence of a visible label on a still image (empty for other files)."""
        if _format(path) not in IMAGE_FORMATS:
            return []
        from PIL import Image

        from . import locate_label

        try:
            with Image.open(path) as image:
                if image.width * image.height > MAX_DECODE_PIXELS:
                    return [_too_large(self.name, f"{image.width}x{image.height} image")]
                found = locate_label(image)
        except (*DECODE_ERRORS, Image.DecompressionBombError):
            return []
        if found is None:
            return []
        x0, y0, x1, y1 = found.plate
        return [
            Evidence(
                "explicit-label",
                f"visible label plate, glyphs {found.glyph_ratio:.1%} of the shortest side",
                f"pixels ({x0},{y0})-({x1},{y1})",
                self.name,
            )
        ]


class ExplicitImageLabeler:
    """Draws the classification's prompt on still images (re-encodes them)."""

    name = "explicit-image"

    def supports(self, path: Path) -> bool:
        """True for still-image formats."""
        return _format(path) in IMAGE_FORMATS

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with the visible prompt to ``dst``."""
        from . import add_image_label

        add_image_label(src, dst, text=PROMPTS[classification], implicit="if-supported")


class ExplicitVideoLabeler:
    """Overlays the classification's prompt on the first seconds of a video (re-encodes it)."""

    name = "explicit-video"

    def supports(self, path: Path) -> bool:
        """True for the video formats :func:`add_video_label` writes."""
        from .video import _FORMATS

        return path.suffix.lower() in _FORMATS and _format(path) is not None

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with the prompt on its opening seconds to ``dst``."""
        from .video import add_video_label

        add_video_label(src, dst, text=PROMPTS[classification], implicit="if-supported")


class ExplicitAudioLabeler:
    """Prepends the rhythm cue (and, for *confirmed*, the spoken prompt) to audio (re-encodes it)."""

    name = "explicit-audio"

    def supports(self, path: Path) -> bool:
        """True for the audio formats :func:`add_audio_label` writes."""
        from .audio import _OUTPUTS

        return path.suffix.lower() in _OUTPUTS

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with the audible prompt at its start to ``dst``."""
        from .audio import LabelKind, add_audio_label

        # The shipped spoken clip says 人工智能生成; for possible/suspected only the neutral cue fits.
        kind: LabelKind = "both" if classification is Classification.CONFIRMED else "cue"
        add_audio_label(src, dst, kind=kind, implicit="if-supported")


class ExplicitTextLabeler:
    """Writes the classification's prompt at the start of a text, Markdown or HTML file."""

    name = "explicit-text"

    def supports(self, path: Path) -> bool:
        """True for the text formats :func:`add_text_label` writes."""
        from .text import TEXT_SUFFIXES

        return path.suffix.lower() in TEXT_SUFFIXES

    def add_label(self, src: Path, dst: Path, classification: Classification) -> None:
        """Write ``src`` with the prompt at its start to ``dst``."""
        from .text import add_text_label

        add_text_label(src, dst, label=PROMPTS[classification], implicit="if-supported")


register_detector(ExplicitImageLabelDetector())
for _labeler in (ExplicitImageLabeler(), ExplicitVideoLabeler(), ExplicitAudioLabeler(), ExplicitTextLabeler()):
    register_visible_labeler(_labeler)
