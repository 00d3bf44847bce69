"""The image mark's low-frequency layer on small pictures (under 288 px): its 16-cell grid, read alone."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw, ImageFilter

from aigclabel.watermark import DEMO_KEY, Payload, detect_image, embed_image
from aigclabel.watermark._lowfreq import LOWFREQ_TO_TILE_SYMMETRY, read_lowfreq
from aigclabel.watermark.image import ORIENTATIONS, _luma

from .test_watermark_image import _resize, natural

Img = npt.NDArray[np.uint8]

#: What removes the tile mark's band on a small picture: a 0.25x downscale keeps ~2 px of a 32-cell grid's cells.
LOW_PASS: dict[str, Callable[[Img], Img]] = {
    "blur-2": lambda a: np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(2))),
    "down-0.25-up": lambda a: _resize(_resize(a, 0.25), 4.0),
}


def _ssim(a: Img, b: Img) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))  # type: ignore[no-untyped-call]


def saturated(size: int = 256) -> Img:
    """Flat discs of saturated colours on white: channels at 0 and 255 where luminance has room both ways."""
    im = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    colours = [(255, 214, 10), (230, 20, 30), (52, 120, 246), (20, 180, 60), (250, 250, 120), (255, 120, 200)]
    step = size // 3
    for i, colour in enumerate(colours):
        x, y = (i % 3) * step, (i // 3) * (size // 2)
        draw.ellipse((x + 4, y + 10, x + step - 4, y + size // 2 - 10), fill=colour)
    return np.asarray(im)


@pytest.fixture(scope="module")
def small_photos() -> dict[str, tuple[Img, Payload]]:
    out = {}
    for i, (h, w) in enumerate([(256, 256), (192, 256)]):
        payload = Payload.for_produce_id(f"small-{i}", i)
        out[f"{h}x{w}"] = (embed_image(natural(11 + i, h, w), payload), payload)
    return out


@pytest.mark.parametrize("attack", sorted(LOW_PASS))
def test_small_pictures_keep_the_mark_through_blur_and_downscaling(
    small_photos: dict[str, tuple[Img, Payload]], attack: str
) -> None:
    for name, (marked, payload) in small_photos.items():
        found = detect_image(LOW_PASS[attack](marked))
        assert found.payload == payload and found.details.get("layer") == 2, f"{name} {attack}: {found.details}"


def test_small_pictures_stay_clean() -> None:
    for host in (natural(11, 256, 256), saturated()):
        payload = Payload.for_produce_id("clean", 1)
        marked = embed_image(host, payload)
        assert _ssim(host, marked) >= 0.97
        # The second layer alone reads the clean picture (the tile mark is not asked).
        assert read_lowfreq(_luma(marked), DEMO_KEY).payload == payload
        assert read_lowfreq(_luma(host), DEMO_KEY).payload is None


#: Each of the 8 ways to turn or mirror a picture, and how both layers name it.
TURNS: dict[str, Callable[[Img], Img]] = {
    "upright": lambda a: a,
    "turned 90° counter-clockwise": lambda a: np.rot90(a, 1),
    "turned 180°": lambda a: np.rot90(a, 2),
    "turned 90° clockwise": lambda a: np.rot90(a, 3),
    "mirrored left-right": lambda a: a[:, ::-1],
    "flipped upside down": lambda a: a[::-1],
    "mirrored left-right, then turned 90° counter-clockwise": lambda a: np.rot90(a[:, ::-1], 1),
    "mirrored left-right, then turned 90° clockwise": lambda a: np.rot90(a[:, ::-1], 3),
}


def test_both_layers_name_a_turned_or_mirrored_picture_alike() -> None:
    marked = embed_image(natural(5, 256, 320), PAYLOAD_TURNS)
    for words, turn in TURNS.items():
        turned = np.ascontiguousarray(turn(marked))
        tile = detect_image(turned, lowfreq=False)
        assert tile.payload == PAYLOAD_TURNS and tile.orientation == words
        second = read_lowfreq(_luma(turned), DEMO_KEY)
        assert second.payload == PAYLOAD_TURNS, words
        assert ORIENTATIONS[LOWFREQ_TO_TILE_SYMMETRY[second.symmetry]] == words


PAYLOAD_TURNS = Payload.for_produce_id("turns", 3)
