"""The estimation attack on the image mark, as an attacker without the key would run it.

Used by the tests and ``bench/watermark/run.py`` to measure the copy (forgery) and removal attacks:
the mark is one tile repeated over the picture, so averaging the noise residual of one marked image
over the tile positions estimates the tile; adding that estimate to another picture copies the mark,
subtracting it from the marked one tries to remove it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .._opencv import cv2
from .image import TILE, _luma

__all__ = ["apply_tile", "estimate_tile"]


def estimate_tile(marked: npt.NDArray[np.uint8], period: int = TILE) -> npt.NDArray[np.float32]:
    """Average over all ``period``-sized tile positions of the luminance minus its 3x3-median denoised copy."""
    y = _luma(marked)
    residual = y - cv2.medianBlur(np.ascontiguousarray(y.astype(np.uint8)), 3).astype(np.float32)
    h, w = residual.shape
    hh, ww = h // period * period, w // period * period
    tiles = residual[:hh, :ww].reshape(hh // period, period, ww // period, period)
    est = tiles.mean(axis=(0, 2))
    return np.asarray(est - est.mean(), dtype=np.float32)


def apply_tile(
    img: npt.NDArray[np.uint8], tile: npt.NDArray[np.float32], psnr_db: float, sign: float = 1.0
) -> npt.NDArray[np.uint8]:
    """``img`` plus (or, with ``sign=-1``, minus) the repeated tile, scaled to cost ``psnr_db`` dB, on R, G and B."""
    h, w = img.shape[:2]
    pattern = np.tile(tile, (-(-h // tile.shape[0]), -(-w // tile.shape[1])))[:h, :w]
    pattern *= np.float32(np.sqrt(255.0**2 / 10 ** (psnr_db / 10.0) / (float(np.mean(pattern**2)) + 1e-12)))
    delta = sign * pattern if img.ndim == 2 else sign * pattern[..., None]
    return np.asarray(np.clip(np.rint(img.astype(np.float32) + delta), 0, 255), dtype=np.uint8)
