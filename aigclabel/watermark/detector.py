"""The watermark trace detector for :mod:`aigclabel.verify` (registers itself when imported).

``watermark``: an aigclabel invisible watermark (:func:`aigclabel.watermark.detect_file`), keyed with
``$AIGCLABEL_WATERMARK_KEY`` (hex) or the public demo key; the decoded payload is carried as
``watermark_payload`` so the audit log can trace it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._guard import hostile_input
from .._media import MediaSample
from ..containers import MediaKind, containers_of
from ..errors import AIGCLabelError, LimitExceededError
from ..explicit.detector import IMAGE_FORMATS
from ..verify import Evidence, register_detector
from . import TEXT_MARKED

#: Containers the watermark module can decode: every image (Pillow), audio and video container (PyAV),
#: and the text formats it marks (:data:`aigclabel.watermark.TEXT_MARKED`). Documents (PDF, OOXML,
#: EPUB, SVG) carry no watermark of ours, so the detector is not called on them.
WATERMARK_FORMATS = frozenset(
    {
        *containers_of(MediaKind.IMAGE),
        *containers_of(MediaKind.AUDIO),
        *containers_of(MediaKind.VIDEO),
        *(name for name, marked in TEXT_MARKED.items() if marked),
    }
)


class WatermarkDetector:
    """Finds an aigclabel invisible watermark in an image, audio or text file."""

    name = "watermark"
    formats = WATERMARK_FORMATS
    #: Decodes the whole medium and correlates against the key: the dearest detector.
    cost = 100.0
    #: A still image is read from the upload's shared decode (:class:`aigclabel._media.MediaSample`).
    shares_media = True

    def detect(self, path: Path, media: MediaSample | None = None) -> list[Evidence]:
        """Evidence of a watermark, with its payload when the keyed MAC verifies."""
        from . import DEMO_KEY, WatermarkResult, detect_decoded_image, detect_file

        key_hex = os.environ.get("AIGCLABEL_WATERMARK_KEY")
        try:
            key = bytes.fromhex(key_hex) if key_hex else DEMO_KEY
            result: WatermarkResult | None
            if media is not None and media.container in IMAGE_FORMATS:
                with hostile_input(path, "image"):  # the analysis types its errors as detect_file does
                    result = detect_decoded_image(media.analysis_pixels(), key)
            else:
                result = detect_file(path, key=key)
        except LimitExceededError as exc:
            return [Evidence.skipped(self.name, f"not searched: {exc}")]
        except AIGCLabelError:  # every decoder exception is typed by detect_file's guard
            return []
        if result is None or not result.present:
            return []
        payload = result.payload.hex() if result.payload is not None and result.verified else None
        detail = f"{result.media} watermark, score {result.score:.1f} (threshold {result.threshold})"
        if result.orientation != "upright":
            detail += f", picture {result.orientation} since it was marked"
        why = result.details.get("unverified", "payload not verified with this key")
        return [
            Evidence(
                "watermark",
                detail + (f", payload {payload}" if payload else f", unverified: {why}"),
                result.media,
                self.name,
                data={"watermark_payload": payload} if payload else {},
            )
        ]


register_detector(WatermarkDetector())
