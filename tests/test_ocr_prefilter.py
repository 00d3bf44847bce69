"""The OCR pre-filter never hides a label the full search finds, and does skip a plain upload.

The labels come from :mod:`tests._label_styles` (styles aigclabel did not choose, plus its own plate):
the hardest of them for the pre-filter, those with the lowest stroke density among the first 40 that
the full search finds. ``bench/verify.py --prefilter-only`` measures the whole recall set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aigclabel.explicit.detector import ExplicitImageLabelDetector, _search_copy
from aigclabel.explicit.ocr import downscale, may_hold_text, ocr_engine_name

from ._label_styles import StyledLabel, styled_labels, synthetic_photo

#: Thin 3 % Latin on a smooth picture, low-contrast ink on a colour wheel, 3 % ink on a retina, a
#: shadowed label and aigclabel's plate on the bench's noisy upload.
HARDEST = (16, 28, 27, 30, 12)


@pytest.fixture(scope="module")
def cases() -> dict[int, StyledLabel]:
    every = list(styled_labels(max(HARDEST) + 1, corpus=False))
    return {index: every[index] for index in HARDEST}


def _passes(path: Path) -> bool:
    from aigclabel._media import MediaSample

    image, _ = MediaSample(path, "jpeg").analysis_image()
    return may_hold_text(downscale(_search_copy(image, "jpeg"))[0])


@pytest.mark.parametrize("index", HARDEST)
def test_prefilter_passes_every_label_the_full_search_finds(
    index: int, cases: dict[int, StyledLabel], tmp_path: Path
) -> None:
    if ocr_engine_name() != "rapidocr":
        pytest.skip("the recall set is measured with RapidOCR")
    path = cases[index].write(tmp_path)
    full = ExplicitImageLabelDetector(prefilter=False).detect(path)
    assert any(e.role == "trace" for e in full), f"{cases[index].name}: the full search no longer finds it"
    assert _passes(path), f"{cases[index].name}: the pre-filter rejects a label the full search finds"
    assert ExplicitImageLabelDetector().detect(path) == full


def test_prefilter_skips_a_plain_noisy_upload(tmp_path: Path) -> None:
    path = tmp_path / "upload.jpg"
    synthetic_photo(7).save(path, quality=90)
    assert not _passes(path)
    assert ExplicitImageLabelDetector().detect(path) == []
