"""Label every image a ``diffusers`` pipeline returns (or any list of generated images).

diffusers has no callback at the end of a pipeline (``callback_on_step_end`` sees latents, not images), so
:meth:`ImageLabeller.wrap` wraps the pipeline's call: the images it returns are encoded, given the visible
label (optional), the watermark (with a key), the ReservedCode1 signature (with a key) and the implicit
label through :func:`aigclabel.produce.label_file`, and recorded in the audit store. The implicit label lives
in the encoded file, so the labelled files are what to publish: :attr:`LabelledImage.data` (and the file in
``out_dir``); the output's ``images`` are replaced by those files decoded again, so what a caller shows is
what it publishes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .._io import atomic_output
from ..errors import UnsupportedFormatError
from ..explicit.text import DEFAULT_LABEL
from ..gateway.media import MediaLayers, label_image_bytes
from ..label import AIGCLabel

if TYPE_CHECKING:
    from ..audit import AuditStore
    from ..signing import SigningKey


@dataclass(frozen=True)
class LabelledImage:
    """One labelled image: the encoded file, its label, and where it was written (with ``out_dir``)."""

    data: bytes
    label: AIGCLabel
    suffix: str
    path: Path | None = None

    def open(self) -> Image.Image:
        """The labelled file decoded (pixels include the visible label and watermark, if any)."""
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


def _as_pil(image: Any) -> Image.Image:
    """A PIL image from what pipelines return: PIL images, or HWC arrays (uint8, or float in 0..1)."""
    if isinstance(image, Image.Image):
        return image
    if hasattr(image, "detach"):  # a torch tensor (output_type="pt"): CHW floats in 0..1
        image = image.detach().cpu().float().numpy().transpose(1, 2, 0)
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] in (1, 3, 4):
        if image.dtype != np.uint8:
            image = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
        return Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    raise UnsupportedFormatError(f"cannot label a generated image of type {type(image).__name__}")


class ImageLabeller:
    """Labels generated images for the producer ``producer`` (see the module docstring)."""

    def __init__(
        self,
        producer: str,
        *,
        out_dir: Path | str | None = None,
        image_format: str = "PNG",
        visible: bool = False,
        visible_text: str = DEFAULT_LABEL,
        watermark_key: bytes | None = None,
        watermark_key_id: int = 0,
        signing_key: SigningKey | None = None,
        audit: AuditStore | None = None,
    ) -> None:
        AIGCLabel.for_producer(producer)  # a bad code fails here, not after the first generation
        self.producer = producer
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.image_format = image_format
        self.visible = visible
        self.visible_text = visible_text
        self.layers = MediaLayers(watermark_key, watermark_key_id, signing_key, audit, origin="diffusers")

    def label_images(self, images: Sequence[Any]) -> list[LabelledImage]:
        """Label each image; each gets its own ProduceID."""
        done: list[LabelledImage] = []
        for image in images:
            encoded = io.BytesIO()
            _as_pil(image).save(encoded, format=self.image_format)
            label = AIGCLabel.for_producer(self.producer)
            data, result = label_image_bytes(
                encoded.getvalue(), label, layers=self.layers, visible=self.visible, visible_text=self.visible_text
            )
            suffix = result.path.suffix
            path = None
            if self.out_dir is not None:
                path = self.out_dir / f"{result.label.produce_id}{suffix}"
                with atomic_output(path) as tmp:
                    tmp.write_bytes(data)
            done.append(LabelledImage(data, result.label, suffix, path))
        return done

    def __call__(self, output: Any) -> Any:
        """Label a pipeline's output: ``output.images`` become the labelled images decoded again and
        ``output.aigc`` the list of :class:`LabelledImage`. A tuple output (``return_dict=False``) keeps its
        shape, its first item replaced; the files are then in ``out_dir``."""
        images = output.images if hasattr(output, "images") else output[0]
        labelled = self.label_images(list(images))
        reopened = [item.open() for item in labelled]
        if hasattr(output, "images"):
            output.images = reopened
            output.aigc = labelled
            return output
        return (reopened, *tuple(output)[1:])

    def wrap(self, pipeline: Callable[..., Any]) -> Callable[..., Any]:
        """``pipeline`` with every call's images labelled (other attributes reached through ``pipeline``)."""

        def labelled_call(*args: Any, **kwargs: Any) -> Any:
            return self(pipeline(*args, **kwargs))

        return labelled_call
