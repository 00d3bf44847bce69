"""The one way an optional dependency is imported: ``with needs_extra("media"): import cv2``.

A core install (``pip install aigclabel``) reads and writes labels; the extras in ``pyproject.toml``
add the rest. Importing a module of a missing extra raises :class:`MissingExtraError`, which names the
extra to install, instead of a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import MissingExtraError

#: What each extra of ``pyproject.toml`` adds, as the error message names it.
FEATURES = {
    "media": "Media processing (explicit labels, watermarks, OCR, audio and video decoding)",
    "audit": "The audit log",
    "service": "The HTTP service",
    "sm2": "SM2",
    "c2pa": "C2PA",
    "distributed": "Batch work on a Dask cluster",
    "likeness": "Face and voice matching (likeness protection)",
}


@contextmanager
def needs_extra(extra: str) -> Iterator[None]:
    """Turn a missing third-party module imported in the block into :class:`MissingExtraError` for ``extra``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "aigclabel":
            raise  # our own module missing is a bug, not an extra
        raise MissingExtraError(FEATURES[extra], extra, exc.name) from exc
