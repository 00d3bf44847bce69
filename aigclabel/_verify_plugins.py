"""Adapters plugging the explicit-label and watermark modules into :mod:`aigclabel.verify`.

Imported by :func:`aigclabel.verify.registered_detectors` (it is listed in ``PLUGIN_MODULES``). Each
adapter registers only if its module imports, so a slimmed-down install still verifies.

* ``explicit-image-label``: an aigclabel visible label plate on an image (``explicit.locate_label``);
* ``watermark``: an aigclabel invisible watermark (``watermark.detect_file``), keyed with
  ``$AIGCLABEL_WATERMARK_KEY`` (hex) or the public demo key; the decoded payload is carried as
  ``watermark_payload`` so the audit log can trace it;
* a visible labeler drawing the classification's prompt (人工智能生成 / 可能为人工智能生成 /
  疑似人工智能生成) with ``explicit.add_image_label``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._io import MAX_DECODE_PIXELS
from .containers import open_container
from .errors import AIGCLabelError, LimitExceededError
from .verify import Classification, Evidence, register_detector, register_visible_labeler

#: Container formats Pillow decodes as still images.
IMAGE_FORMATS = frozenset({"jpeg", "png", "webp", "tiff", "heif"})
#: Containers the watermark module can decode: still images (Pillow), plain text, and anything with
#: an audio or video stream (PyAV; GIF decodes as video). Documents (PDF, OOXML, EPUB, HTML, SVG) carry
#: no watermark of ours, so the detector is not called on them.
WATERMARK_FORMATS = frozenset(
    {
        *IMAGE_FORMATS,
        "gif",
        "text",
        "markdown",
        "wav",
        "flac",
        "mp3",
        "ogg",
        "mp4",
        "matroska",
        "avi",
        "flv",
    }
)
#: Visible prompt per classification; each has the AI element and the generation element (§5).
PROMPTS = {
    Classification.CONFIRMED: "人工智能生成",
    Classification.POSSIBLE: "可能为人工智能生成",
    Classification.SUSPECTED: "疑似人工智能生成",
}
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, IndexError, MemoryError)


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

        from .explicit import locate_label

        try:
            with Image.open(path) as image:
                if image.width * image.height > MAX_DECODE_PIXELS:
                    return [_too_large(self.name, f"{image.width}x{image.height} image")]
                found = locate_label(image)
        except (*_DECODE_ERRORS, Image.DecompressionBombError):
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


class WatermarkDetector:
    """Finds an aigclabel invisible watermark in an image, audio or text file."""

    name = "watermark"
    formats = WATERMARK_FORMATS
    #: Decodes the whole medium and correlates against the key: the dearest detector.
    cost = 100.0

    def detect(self, path: Path) -> list[Evidence]:
        """Evidence of a watermark, with its payload when the keyed MAC verifies."""
        from .watermark import DEMO_KEY, detect_file

        key_hex = os.environ.get("AIGCLABEL_WATERMARK_KEY")
        try:
            key = bytes.fromhex(key_hex) if key_hex else DEMO_KEY
            result = detect_file(path, key=key)
        except LimitExceededError as exc:
            return [Evidence("detector-skipped", f"not searched: {exc}", "-", self.name, "info")]
        except (AIGCLabelError, *_DECODE_ERRORS):
            return []
        if result is None or not result.present:
            return []
        payload = result.payload.hex() if result.payload is not None and result.verified else None
        detail = f"{result.media} watermark, score {result.score:.1f} (threshold {result.threshold})"
        return [
            Evidence(
                "watermark",
                detail + (f", payload {payload}" if payload else ", payload not verified with this key"),
                result.media,
                self.name,
                data={"watermark_payload": payload} if payload else {},
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
        from .explicit import add_image_label

        add_image_label(src, dst, text=PROMPTS[classification], implicit="if-supported")


try:
    import aigclabel.explicit
except ImportError:  # pragma: no cover - explicit labels are part of the core install
    pass
else:
    register_detector(ExplicitImageLabelDetector())
    register_visible_labeler(ExplicitImageLabeler())

try:
    import aigclabel.watermark  # noqa: F401
except ImportError:  # pragma: no cover
    pass
else:
    register_detector(WatermarkDetector())
