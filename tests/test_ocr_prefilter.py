"""The OCR pre-filter never hides a label the full search finds, and does skip a plain upload.

The labels come from :mod:`tests._label_styles` (styles aigclabel did not choose, plus its own plate):
the hardest of them for the pre-filter, those with the lowest stroke density among the first 40 that
the full search finds. ``bench/verify.py --prefilter-only`` measures the whole recall set, for the
verify detector, ``check`` and the video label detector.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from aigclabel.check import check_file
from aigclabel.explicit.detector import ExplicitImageLabelDetector, ExplicitVideoLabelDetector, _search_copy
from aigclabel.explicit.ocr import OCR_SIDE, gate_copy, may_hold_text_in, ocr_engine_name

from ._label_styles import StyledLabel, styled_labels, synthetic_photo

#: Thin 3 % Latin on a smooth picture, low-contrast ink on a colour wheel, 3 % ink on a retina, a
#: shadowed label and aigclabel's plate on the bench's noisy upload.
HARDEST = (16, 28, 27, 30, 12)

needs_rapidocr = pytest.mark.skipif(ocr_engine_name() != "rapidocr", reason="the recall set is measured with RapidOCR")


@pytest.fixture(scope="module")
def cases() -> dict[int, StyledLabel]:
    every = list(styled_labels(max(HARDEST) + 1, corpus=False))
    return {index: every[index] for index in HARDEST}


def _passes(path: Path) -> bool:
    from aigclabel._media import MediaSample

    sample = MediaSample(path, "jpeg")
    return may_hold_text_in(sample.analysis_image()[0], sample.analysis_pixels())


@needs_rapidocr
@pytest.mark.parametrize("index", HARDEST)
def test_prefilter_passes_every_label_the_full_search_finds(
    index: int, cases: dict[int, StyledLabel], tmp_path: Path
) -> None:
    path = cases[index].write(tmp_path)
    full = ExplicitImageLabelDetector(prefilter=False).detect(path)
    assert any(e.role == "trace" for e in full), f"{cases[index].name}: the full search no longer finds it"
    assert _passes(path), f"{cases[index].name}: the pre-filter rejects a label the full search finds"
    assert ExplicitImageLabelDetector().detect(path) == full


def _clip(still: Path, out: Path, seconds: int = 1, rate: int = 5) -> Path:
    """An H.264 clip showing ``still`` for ``seconds``."""
    with Image.open(still) as opened:
        picture = opened.convert("RGB")
    picture = picture.crop((0, 0, picture.width // 2 * 2, picture.height // 2 * 2))
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = picture.size
        stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_image(picture)
        for _ in range(seconds * rate):
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out


@needs_rapidocr
@pytest.mark.parametrize("index", [16, 12])
def test_check_and_video_gate_like_the_detector(index: int, cases: dict[int, StyledLabel], tmp_path: Path) -> None:
    # The thinnest label and aigclabel's own plate: check's image and video-frame rules use the same gate.
    path = cases[index].write(tmp_path)

    def rules(prefilter: bool) -> list[tuple[str, str, str]]:
        return [(r.rule, r.status, r.detail) for r in check_file(path, implicit=False, prefilter=prefilter).rules]

    gated = rules(True)
    assert ("image-label", "pass") in [(r, s) for r, s, _ in gated]
    assert gated == rules(False)
    if index != 12:
        return  # one clip is enough: its frames go through the same rules as the picture
    clip = _clip(path, tmp_path / "clip.mp4")
    found = ExplicitVideoLabelDetector().detect(clip)
    assert any(e.role == "trace" for e in found)
    assert found == ExplicitVideoLabelDetector(prefilter=False).detect(clip)


def test_prefilter_skips_a_plain_noisy_upload(tmp_path: Path) -> None:
    path = tmp_path / "upload.jpg"
    synthetic_photo(7).save(path, quality=90)
    assert not _passes(path)
    assert ExplicitImageLabelDetector().detect(path) == []
    # check skips the search too, with the report the full search gives: no label found
    (rule,) = check_file(path, implicit=False).rules
    assert rule.rule == "image-label" and rule.status != "pass"
    assert check_file(path, implicit=False, prefilter=False).rules == [rule]


@pytest.mark.parametrize("size", [(1600, 1200), (1601, 1201)])
def test_search_copy_from_the_shared_pixels_is_pillows_reduce(size: tuple[int, int], tmp_path: Path) -> None:
    """A 2 MP JPEG's search copy, halved by OpenCV from the pixels the watermark detector also reads, is
    Pillow's ``reduce(2)`` bit for bit (an odd size is left to Pillow, whose last box is partial)."""
    from aigclabel._media import MediaSample

    path = tmp_path / "upload.jpg"
    synthetic_photo(3, size).save(path, quality=90)
    sample = MediaSample(path, "jpeg")
    image, _ = sample.analysis_image()
    shared = _search_copy(image, "jpeg", sample)
    assert shared.size == ((size[0] + 1) // 2, (size[1] + 1) // 2)
    assert shared.tobytes() == image.reduce(2).tobytes()
    assert (sample._pixels is not None) == (size[0] % 2 == 0)  # the even picture went through the shared pixels


@pytest.mark.parametrize(
    ("size", "read"), [((1600, 1200), (400, 300)), ((1601, 1203), (400, 300)), ((600, 450), (600, 450))]
)
def test_gate_copy_is_pillows_halving(size: tuple[int, int], read: tuple[int, int]) -> None:
    """The pre-filter reads the picture halved by 2x2 means (Pillow's ``reduce(2)``, a last odd row or column
    dropped) while its long side is at least 1.5x the detection copy's; a smaller picture as it is."""
    picture = synthetic_photo(5, size)
    copy = gate_copy(np.asarray(picture))
    expected = picture
    while max(expected.size) >= 1.5 * OCR_SIDE:
        expected = expected.crop((0, 0, expected.width // 2 * 2, expected.height // 2 * 2)).reduce(2)
    assert expected.size == read
    assert copy.shape == (read[1], read[0], 3)
    assert copy.tobytes() == expected.tobytes()
