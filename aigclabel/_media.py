"""One upload's decoded media, shared by the trace detectors of one ``classify`` call.

The visible-label and watermark detectors each decoded the same picture (about 10 ms per 2 MP
JPEG, more with the EXIF transpose); a :class:`MediaSample` decodes it once, lazily (a file whose
label confirms it is never decoded), at analysis size (:func:`aigclabel._decode.decode_for_analysis`),
and hands every detector the same image. A failed decode is remembered and raised again to each
detector that asks, so each reports it in its own way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image


class MediaSample:
    """The decoded media of the file at ``path`` (container ``container``), decoded on first use."""

    def __init__(self, path: Path, container: str | None = None) -> None:
        self.path = path
        self.container = container
        self._image: tuple[Image.Image, int] | None = None
        self._image_error: BaseException | None = None

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
