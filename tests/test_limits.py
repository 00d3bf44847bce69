"""A tiny upload that declares a huge image is refused by every decoder, not decoded into gigabytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from aigclabel._io import MAX_DECODE_PIXELS
from aigclabel.check import check_files
from aigclabel.service import ServiceSettings, create_app
from aigclabel.verify import classify


@pytest.fixture(scope="module")
def pixel_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "flat.png"
    side = int(MAX_DECODE_PIXELS**0.5) + 100  # just over the limit, and under Pillow's own bomb guard
    Image.new("L", (side, side), 7).save(path, optimize=True)
    assert path.stat().st_size < 200_000, "a small file declaring a huge image"
    return path


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_detectors_skip_and_say_so(pixel_bomb: Path) -> None:
    verdict = classify(pixel_bomb, thorough=True)
    skipped = {e.source for e in verdict.evidence if e.kind == "detector-skipped"}
    assert skipped == {"watermark", "explicit-image-label"}
    assert all("scan limit" in e.detail for e in verdict.evidence if e.kind == "detector-skipped")
    assert verdict.classification.value == "none"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_check_reports_an_error_rule(pixel_bomb: Path) -> None:
    rules = check_files([pixel_bomb])[0].rules
    assert [(r.rule, r.status) for r in rules] == [("readable", "error")]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_service_report_answers_without_decoding(pixel_bomb: Path, tmp_path: Path) -> None:
    with TestClient(create_app(ServiceSettings(work_dir=tmp_path))) as client:
        answer = client.post(
            "/v1/report",
            params={"filename": "flat.png"},
            content=pixel_bomb.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
    assert answer.status_code == 200
    kinds = [e["kind"] for e in answer.json()["verdict"]["evidence"]]
    assert kinds.count("detector-skipped") == 2
