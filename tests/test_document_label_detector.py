"""Visible labels on documents made by other tools, found by ``verify`` and ``check`` through the CLI.

Each document is written by another project's library (python-docx, python-pptx, openpyxl) or by
LibreOffice, with a label prompt in a style and place aigclabel does not draw itself: a Word footer, the
last slide, a sheet cell, an SVG ``<text>``, a PDF page LibreOffice printed. The same documents without the
prompt must give no explicit-label evidence, and ``check`` must fail them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aigclabel.explicit.document import add_document_label, document_text

from .conftest import SAMPLES, require_tool

FOOTER_PROMPT = "本文内容由AI生成"
Maker = Callable[[Path, str | None], Path]


def cli(*args: str | Path) -> Any:
    """One aigclabel command's --json output (the public path a platform uses)."""
    done = subprocess.run(
        [sys.executable, "-m", "aigclabel", *map(str, args), "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def explicit_findings(path: Path) -> list[dict[str, str]]:
    verdict = cli("verify", path, "--no-audit", "--thorough")
    return [e for e in verdict["evidence"] if e["source"] == "explicit-document-label"]


def document_rule(path: Path) -> dict[str, object]:
    (report,) = cli("check", path)
    (rule,) = [r for r in report["rules"] if r["rule"] == "document-label"]
    assert report["kind"] == "document"
    return dict(rule)


def make_docx(folder: Path, prompt: str | None) -> Path:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_heading("季度报告", 1)
    for _ in range(30):
        document.add_paragraph("本季度各项指标保持稳定，具体数据见附表。" * 3)
    if prompt:
        document.sections[0].footer.paragraphs[0].text = prompt
    path = folder / f"report-{bool(prompt)}.docx"
    document.save(path)
    return path


def make_pptx(folder: Path, prompt: str | None) -> Path:
    pptx = pytest.importorskip("pptx")
    deck = pptx.Presentation()
    for title in ("方案", "细节", "总结"):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = "要点一\n要点二"
    if prompt:
        last = deck.slides[-1]
        box = last.shapes.add_textbox(0, deck.slide_height - 600000, deck.slide_width, 600000)
        box.text_frame.text = f"【{prompt}】"
    path = folder / f"deck-{bool(prompt)}.pptx"
    deck.save(path)
    return path


def make_xlsx(folder: Path, prompt: str | None) -> Path:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["产品", "销量"])
    for row in range(40):
        sheet.append([f"型号{row}", row * 7])
    if prompt:
        sheet["D1"] = f"（{prompt}）"
    path = folder / f"sales-{bool(prompt)}.xlsx"
    book.save(path)
    return path


def make_svg(folder: Path, prompt: str | None) -> Path:
    label = f'<text x="10" y="390" font-size="20"><tspan>{prompt}</tspan></text>' if prompt else ""
    path = folder / f"chart-{bool(prompt)}.svg"
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400">'
        '<rect width="400" height="400" fill="#eef"/><text x="20" y="40" font-size="24">销售趋势</text>'
        f"{label}</svg>",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("make", [make_docx, make_pptx, make_xlsx, make_svg], ids=["docx", "pptx", "xlsx", "svg"])
def test_other_tools_documents_with_and_without_a_prompt(make: Maker, tmp_path: Path) -> None:
    labelled, plain = make(tmp_path, FOOTER_PROMPT), make(tmp_path, None)
    (found,) = explicit_findings(labelled)
    assert "AI生成" in found["detail"] and found["kind"] == "explicit-label"
    assert document_rule(labelled)["status"] in ("pass", "warning")
    assert explicit_findings(plain) == []
    assert document_rule(plain)["status"] == "fail"


def test_word_footer_counts_as_the_end_and_header_as_the_start(tmp_path: Path) -> None:
    path = make_docx(tmp_path, FOOTER_PROMPT)
    assert document_text(path).text.rstrip().endswith(FOOTER_PROMPT)
    rule = document_rule(path)
    assert rule["status"] == "pass" and "at the end" in str(rule["detail"])


@pytest.mark.interop
def test_pdf_printed_by_libreoffice_is_searched_by_its_text(tmp_path: Path) -> None:
    """A PDF whose prompt is real text in an embedded CJK font, laid out by LibreOffice."""
    soffice = require_tool("soffice")
    for source in (make_docx(tmp_path, FOOTER_PROMPT), make_docx(tmp_path, None)):
        subprocess.run(
            [soffice, "--headless", f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}", "--convert-to",
             "pdf", "--outdir", str(tmp_path), str(source)],
            check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    labelled, plain = tmp_path / "report-True.pdf", tmp_path / "report-False.pdf"
    found = explicit_findings(labelled)  # the footer is on every page read: one finding per page, at most 3
    assert found and all("生成" in f["detail"] and "page" in f["location"] for f in found)  # "AI 生成": spaced
    assert document_rule(labelled)["status"] in ("pass", "warning")
    assert explicit_findings(plain) == [] and document_rule(plain)["status"] == "fail"


def test_our_pdf_plate_is_an_image_found_by_name(tmp_path: Path) -> None:
    out = add_document_label(SAMPLES / "sample.pdf", tmp_path / "stamped.pdf", implicit="if-supported").path
    (found,) = explicit_findings(out)
    assert found["detail"] == "aigclabel label plate"
    assert document_rule(out)["status"] == "pass"
    assert explicit_findings(SAMPLES / "sample.pdf") == []


def test_the_container_is_identified_once_per_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The text read, then the own-plate fallback: the container found for the first serves the second."""
    from aigclabel.check import check_file
    from aigclabel.explicit import document
    from aigclabel.explicit.detector import ExplicitDocumentLabelDetector

    out = add_document_label(SAMPLES / "sample.pdf", tmp_path / "stamped.pdf", implicit="if-supported").path
    identified: list[Path] = []
    real = document.open_container
    monkeypatch.setattr(document, "open_container", lambda path: identified.append(path) or real(path))
    (found,) = ExplicitDocumentLabelDetector().detect(out)
    assert found.detail == "aigclabel label plate" and identified == [out]
    rule = next(r for r in check_file(out).rules if r.rule == "document-label")
    assert rule.status == "pass" and identified == [out, out]


def test_unreadable_text_is_a_skipped_detector_not_a_failed_verify(tmp_path: Path) -> None:
    """A DOCX whose package is sound but whose body is not XML: the verdict comes, the detector says why not."""
    broken = tmp_path / "broken.docx"
    with zipfile.ZipFile(SAMPLES / "sample.docx") as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            body = src.read(item) if item.filename != "word/document.xml" else b"<w:document><w:body><w:p>"
            dst.writestr(item, body)
    verdict = cli("verify", broken, "--no-audit", "--thorough")
    (skipped,) = [e for e in verdict["evidence"] if e["source"] == "explicit-document-label"]
    assert skipped["kind"] == "detector-skipped" and "document text not read" in skipped["detail"]
