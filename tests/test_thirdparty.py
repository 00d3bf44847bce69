"""Labels drawn by other tools: `check` gives the right verdict and reason, `verify` finds a trace.

The files come from :mod:`tests._thirdparty` (Pillow, ffmpeg drawtext, numpy tones, espeak-ng); this
runs a 16-file subset of the 64-file held-out set that ``bench/verify.py`` measures in full.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aigclabel.check import check_file
from aigclabel.signing import KeyRegistry
from aigclabel.verify import Classification, classify

from ._thirdparty import Case, cases, judge
from .conftest import require_tool

pytestmark = pytest.mark.interop  # ffmpeg, espeak-ng and tesseract draw the labels

SUBSET = cases(small=True)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_tool("ffmpeg")
    require_tool("espeak-ng")
    folder = tmp_path_factory.mktemp("thirdparty")
    return {case.name: case.make(folder) for case in SUBSET}


@pytest.mark.parametrize("case", SUBSET, ids=lambda c: c.name)
def test_check_gives_the_verdict_and_reason_a_person_would(case: Case, made: dict[str, Path]) -> None:
    report = check_file(made[case.name], implicit=False)
    good, why = judge(case, [(r.rule, r.status) for r in report.rules])
    assert good, f"{why}: " + "; ".join(f"{r.rule}={r.status} ({r.detail})" for r in report.rules)
    if case.compliant and case.kind in ("image", "video"):
        size = next(r for r in report.rules if r.rule == "label-size")
        assert size.measured["ratio"] >= 0.05  # the measured figure is reported


@pytest.mark.parametrize("case", SUBSET, ids=lambda c: c.name)
def test_verify_finds_labels_it_did_not_draw(case: Case, made: dict[str, Path]) -> None:
    verdict = classify(made[case.name], None, KeyRegistry())
    traces = [e for e in verdict.evidence if e.role == "trace"]
    if case.reason == "review":  # speech: a person must listen, it is no trace
        assert verdict.classification is Classification.NONE
        assert any(e.kind == "speech" for e in verdict.evidence)
    elif case.labelled:
        assert verdict.classification is Classification.SUSPECTED, verdict.evidence
        assert traces and traces[0].kind == "explicit-label"
    else:
        assert verdict.classification is Classification.NONE, traces


def test_tesseract_fallback_reads_a_red_plate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_tool("tesseract")
    from PIL import Image, ImageDraw, ImageFont

    from aigclabel.explicit.fonts import find_cjk_font
    from aigclabel.explicit.ocr import find_image_labels, ocr_engine_name

    image = Image.new("RGB", (640, 480), (90, 120, 160))
    draw = ImageDraw.Draw(image)
    draw.rectangle((380, 400, 620, 465), fill=(200, 20, 30))
    draw.text((390, 405), "AI生成", font=ImageFont.truetype(str(find_cjk_font()), 48), fill="white")
    monkeypatch.setenv("AIGCLABEL_OCR", "tesseract")
    assert ocr_engine_name() == "tesseract"
    [found] = find_image_labels(image)
    assert found.text in ("AI生成", "Al生成") and found.position == "corner" and found.has_generation
    from aigclabel.explicit.image import glyph_height

    drawn = glyph_height("AI生成", 48, str(find_cjk_font())) / 480
    assert found.ratio == pytest.approx(drawn, rel=0.15)  # measured on the glyph pixels, not the box


def test_cli_check_shows_what_needs_review(made: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from aigclabel.check import to_html
    from aigclabel.cli import app

    speech = made["aud-speech-zh"]
    result = CliRunner().invoke(app, ["check", "--explicit-only", str(speech)])
    assert result.exit_code == 0, result.output  # review is not a failure
    assert "needs human review" in result.stdout
    assert '<td class="review">review</td>' in to_html([check_file(speech, implicit=False)])
