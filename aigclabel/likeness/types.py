"""What the face and voice encoders hand to the registry, the gate and the scan: one vocabulary for both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: What a likeness is of. Art. 1019 protects the portrait (face), Art. 1023 the voice.
Modality = Literal["face", "voice"]
MODALITIES: tuple[Modality, ...] = ("face", "voice")


@dataclass(frozen=True)
class Likeness:
    """One face or voice found in a piece of content, reduced to an embedding (never the pixels or samples).

    ``where`` locates it in the source: ``(left, top, right, bottom)`` pixels for a face, ``(start, end)``
    seconds for a voice. ``at`` is the time in seconds of the video frame a face came from (``None`` for a still
    image or audio). ``quality`` is the detector's confidence, comparable only within one ``model``.
    """

    modality: Modality
    vector: npt.NDArray[np.float32]
    where: tuple[float, ...]
    model: str
    quality: float = 1.0
    at: float | None = None


class Encoder(Protocol):
    """A model that turns content into :class:`Likeness` embeddings and compares two of them.

    ``threshold`` is the distance at or below which two embeddings are taken to be the same person; it is
    part of every decision record together with ``model``, so a decision can be re-examined later.
    """

    modality: Modality
    model: str
    threshold: float

    def distance(self, a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
        """How far apart two embeddings of this model are (0 = identical)."""
        ...
