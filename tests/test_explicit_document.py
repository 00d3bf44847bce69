"""Visible labels on documents (Measures Art. 4 ¶2), measured on what other tools render or read back.

PDF pages are rendered by pypdfium2 (PDFium, Chrome's PDF engine) and the plate is found on the bitmap
by the image locator; qpdf checks the file; the original bytes must stay a prefix of the result.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, api
from aigclabel.errors import (
    AIGCLabelError,
    EncryptedPDFError,
    InvalidLabelError,
    MalformedFileError,
    UnsupportedFormatError,
)
from aigclabel.explicit.document import add_document_label, find_ooxml_label, find_pdf_label, find_svg_label
from aigclabel.explicit.image import MIN_HEIGHT_RATIO, LocatedLabel, locate_label
from aigclabel.explicit.text import DEFAULT_LABEL

from .conftest import SAMPLES, require_tool
from .corpus import CORPUS
from .test_pdf import make_pdf, qpdf_check

pdfium = pytest.importorskip("pypdfium2")

LABEL = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
PIKEPDF_RESOURCES = CORPUS / "pikepdf-10.18.0" / "tests" / "resources"


def render(path: Path, index: int = 0, password: str | None = None) -> Image.Image:
    """Page ``index`` rendered by PDFium with 1200 pixels on its shortest side."""
    document = pdfium.PdfDocument(str(path), password=password)
    try:
        page = document[index]
        scale = 1200 / min(page.get_size())
        image: Image.Image = page.render(scale=scale).to_pil().convert("RGB")
    finally:
        document.close()
    return image


def stamped(src: Path, out: Path) -> LocatedLabel:
    """Label ``src`` into ``out``; check the prefix, qpdf, and find the plate on the rendered page."""
    before = src.read_bytes()
    done = add_document_label(src, out, implicit="if-supported")
    assert out.read_bytes()[: len(before)] == before  # an incremental update: signatures still cover it
    assert done.format == "pdf" and done.glyph_ratio >= MIN_HEIGHT_RATIO
    qpdf_check(out)
    assert find_pdf_label(out) and not find_pdf_label(src)
    page = render(out)
    found = locate_label(page)
    assert found is not None, f"no label plate on the rendered page of {src.name}"
    assert found.glyph_ratio >= MIN_HEIGHT_RATIO
    assert locate_label(render(src)) is None
    return found


@pytest.mark.interop  # qpdf
def test_pdf_stamp_is_rendered_at_the_top_right_and_keeps_the_implicit_label(tmp_path: Path) -> None:
    src = tmp_path / "labelled.pdf"
    api.write_label(SAMPLES / "sample.pdf", LABEL, output=src)
    out = tmp_path / "marked.pdf"
    found = stamped(src, out)
    width, _height = render(out).size
    x0, y0, x1, y1 = found.plate
    assert x0 > width // 3 and y0 < found.short_side * 0.08 and x1 - x0 > 2 * (y1 - y0)  # upright, top right
    assert api.read_label(out) == LABEL
    assert add_document_label(src, tmp_path / "again.pdf").implicit_kept


@pytest.mark.interop  # qpdf
@pytest.mark.parametrize("rotate", [90, 180, 270])
def test_pdf_stamp_is_upright_on_rotated_pages(tmp_path: Path, rotate: int) -> None:
    src = make_pdf(tmp_path / "rotated.pdf", object_streams=rotate == 90)
    with pikepdf.open(src, allow_overwriting_input=True) as pdf:
        pdf.pages[0].obj.MediaBox = pikepdf.Array([0, 0, 420, 300])
        pdf.pages[0].obj.Rotate = rotate
        pdf.save(src)
    found = stamped(src, tmp_path / "out.pdf")
    width, _height = render(tmp_path / "out.pdf").size
    x0, y0, x1, y1 = found.plate
    assert x0 > width // 3 and y0 < found.short_side * 0.08 and x1 - x0 > 2 * (y1 - y0)


@pytest.mark.interop  # qpdf
def test_pdf_stamp_on_an_encrypted_pdf_keeps_its_encryption(tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "plain.pdf")
    locked = tmp_path / "locked.pdf"
    with pikepdf.open(src) as pdf:
        pdf.save(locked, encryption=pikepdf.Encryption(owner="owner", user="", R=6))
    stamped(locked, tmp_path / "out.pdf")
    with pikepdf.open(tmp_path / "out.pdf") as pdf:
        assert pdf.is_encrypted
    needs_password = tmp_path / "secret.pdf"
    with pikepdf.open(src) as pdf:
        pdf.save(needs_password, encryption=pikepdf.Encryption(owner="owner", user="user", R=6))
    with pytest.raises(EncryptedPDFError):
        add_document_label(needs_password, tmp_path / "no.pdf", implicit="if-supported")
    assert not (tmp_path / "no.pdf").exists()


@pytest.mark.interop  # qpdf, and other projects' files
@pytest.mark.parametrize(
    "name", ["fourpages.pdf", "congress.pdf", "form.pdf", "pdfa/tagged.pdf", "pdfa/fpdf2_cjk_short.pdf", "pike-jp2.pdf"]
)
def test_pdf_stamp_on_other_projects_files(tmp_path: Path, name: str) -> None:
    src = PIKEPDF_RESOURCES / name
    if not src.is_file():
        pytest.skip("the corpus of other projects' files is not downloaded (`make corpus`)")
    stamped(src, tmp_path / "out.pdf")


def test_hostile_documents_get_typed_errors(tmp_path: Path) -> None:
    data = (SAMPLES / "sample.pdf").read_bytes()
    cases = {
        "truncated.pdf": data[: len(data) // 2],
        "garbage.pdf": b"%PDF-1.7\n" + bytes(range(256)) * 8,
        "empty.pdf": b"",
    }
    for name, content in cases.items():
        src = tmp_path / name
        src.write_bytes(content)
        with pytest.raises(AIGCLabelError):
            add_document_label(src, tmp_path / f"out-{name}", implicit="if-supported")
        assert not (tmp_path / f"out-{name}").exists() and src.read_bytes() == content
    with pytest.raises(InvalidLabelError):
        add_document_label(SAMPLES / "sample.pdf", tmp_path / "x.pdf", text="AI")
    with pytest.raises(UnsupportedFormatError):
        add_document_label(SAMPLES / "sample.wav", tmp_path / "x.wav")
    unsized = tmp_path / "unsized.svg"
    unsized.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="100%"><rect width="5" height="5"/></svg>')
    with pytest.raises(MalformedFileError, match="viewBox"):
        add_document_label(unsized, tmp_path / "out.svg", implicit="if-supported")


@pytest.mark.parametrize("suffix", [".pdf", ".docx"])
def test_cli_mark_then_inspect(tmp_path: Path, suffix: str) -> None:
    src, out = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    api.write_label(SAMPLES / f"sample{suffix}", LABEL, output=src)
    run = [sys.executable, "-m", "aigclabel"]
    done = subprocess.run([*run, "mark", str(src), "-o", str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "page 1" in done.stdout or "first paragraph" in done.stdout
    shown = subprocess.run([*run, "inspect", str(out)], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and DEMO_PROVIDER_CODE in shown.stdout, shown.stdout + shown.stderr
    assert find_pdf_label(out) if suffix == ".pdf" else find_ooxml_label(out)


def _word(path: Path) -> Path:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_heading("季度报告", 0)
    document.add_paragraph("正文 body text")
    document.save(str(path))
    return path


def _slides(path: Path) -> Path:
    pptx = pytest.importorskip("pptx")
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[0])
    slide.shapes.title.text = "Slide title"
    deck.slides.add_slide(deck.slide_layouts[1])
    deck.save(str(path))
    return path


def _members_other_than(path: Path, edited: str) -> dict[str, tuple[int, bytes]]:
    """Every member except ``edited``: its CRC and raw compressed bytes, as zipfile sees them."""
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        out = {}
        for info in archive.infolist():
            if info.filename == edited:
                continue
            raw.seek(info.header_offset + 26)
            skip = int.from_bytes(raw.read(2), "little") + int.from_bytes(raw.read(2), "little")
            raw.seek(skip, 1)
            out[info.filename] = (info.CRC, raw.read(info.compress_size))
        return out


def test_docx_label_is_the_first_paragraph_python_docx_reads(tmp_path: Path) -> None:
    docx = pytest.importorskip("docx")
    src = tmp_path / "labelled.docx"
    api.write_label(_word(tmp_path / "in.docx"), LABEL, output=src)
    out = tmp_path / "out.docx"
    done = add_document_label(src, out)
    assert done.format == "ooxml" and done.implicit_kept and api.read_label(out) == LABEL
    paragraphs = [p.text for p in docx.Document(str(out)).paragraphs]
    assert paragraphs[:3] == ["人工智能生成", "季度报告", "正文 body text"]
    assert docx.Document(str(out)).paragraphs[0].runs[0].bold
    assert find_ooxml_label(out) and not find_ooxml_label(src)
    assert _members_other_than(out, "word/document.xml") == _members_other_than(src, "word/document.xml")
    sample = tmp_path / "sample.docx"
    add_document_label(SAMPLES / "sample.docx", sample, text="AI生成 (AI-generated content)", implicit="if-supported")
    assert docx.Document(str(sample)).paragraphs[0].text == "AI生成 (AI-generated content)"


@pytest.mark.interop
def test_docx_label_rendered_by_libreoffice_is_read_by_ocr(tmp_path: Path) -> None:
    """What a reader sees: LibreOffice lays the labelled DOCX out and prints it to PDF, pypdfium2 renders
    page 1, and OCR finds the label with both elements at the top of the page."""
    docx = pytest.importorskip("docx")
    pdfium = pytest.importorskip("pypdfium2")
    soffice = require_tool("soffice")
    from aigclabel.explicit.ocr import find_image_labels

    document = docx.Document()
    document.add_heading("报告", 1)
    document.add_paragraph("正文内容。" * 20)
    document.save(tmp_path / "report.docx")
    marked = add_document_label(tmp_path / "report.docx", tmp_path / "marked.docx", implicit="if-supported").path
    profile = (tmp_path / "profile").as_uri()
    subprocess.run(
        [soffice, "--headless", f"-env:UserInstallation={profile}", "--convert-to", "pdf", "--outdir",
         str(tmp_path), str(marked)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    page = pdfium.PdfDocument(str(tmp_path / "marked.pdf"))[0].render(scale=2).to_pil().convert("RGB")
    (found, *_rest) = find_image_labels(page)
    assert found.text == DEFAULT_LABEL and found.has_generation
    assert found.box[1] < page.height * 0.2  # at the start of the document, before its heading


def test_pptx_label_is_a_text_box_on_the_first_slide(tmp_path: Path) -> None:
    pptx = pytest.importorskip("pptx")
    src = _slides(tmp_path / "in.pptx")
    out = tmp_path / "out.pptx"
    done = add_document_label(src, out, implicit="if-supported")
    assert done.glyph_ratio >= MIN_HEIGHT_RATIO
    deck = pptx.Presentation(str(out))
    (box,) = [s for s in deck.slides[0].shapes if s.name == "AIGC explicit label"]
    assert box.text_frame.text == "人工智能生成"
    assert box.top < deck.slide_height * 0.05 and box.left + box.width <= deck.slide_width
    size_pt = box.text_frame.paragraphs[0].runs[0].font.size.pt
    assert size_pt >= 0.05 * min(deck.slide_width, deck.slide_height) / 12700  # em, before the glyph measure
    assert not [s for s in deck.slides[1].shapes if s.name == "AIGC explicit label"]
    (edited,) = [n for n in zipfile.ZipFile(out).namelist() if n.endswith("slide1.xml")]
    assert _members_other_than(out, edited) == _members_other_than(src, edited)


def test_hostile_office_documents_get_typed_errors(tmp_path: Path) -> None:
    src = _word(tmp_path / "in.docx")
    with zipfile.ZipFile(src) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    cases = {
        "no-body.docx": {
            "word/document.xml": b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"/>'
        },
        "bomb.docx": {"word/document.xml": b'<!DOCTYPE d [<!ENTITY a "aaaa">]><d>&a;</d>'},
        "no-rels.docx": {"_rels/.rels": b"<Relationships/>"},
    }
    for name, changes in cases.items():
        bad = tmp_path / name
        with zipfile.ZipFile(bad, "w") as archive:
            for member, data in {**members, **changes}.items():
                archive.writestr(member, data)
        before = bad.read_bytes()
        with pytest.raises(AIGCLabelError):
            add_document_label(bad, tmp_path / f"out-{name}", implicit="if-supported")
        assert not (tmp_path / f"out-{name}").exists() and bad.read_bytes() == before


@pytest.mark.interop  # Chromium
def test_svg_label_is_drawn_by_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = require_tool("chromium")
    src = tmp_path / "in.svg"
    api.write_label(SAMPLES / "sample.svg", LABEL, output=src)
    out = tmp_path / "out.svg"
    done = add_document_label(src, out)
    assert done.implicit_kept and api.read_label(out) == LABEL and done.glyph_ratio >= MIN_HEIGHT_RATIO
    assert find_svg_label(out) and not find_svg_label(src)
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 120, "height": 60}, device_scale_factor=10)
        for path in (src, out):
            page.goto(path.resolve().as_uri())
            page.screenshot(path=str(tmp_path / f"{path.stem}.png"))
            shots.append(Image.open(tmp_path / f"{path.stem}.png").convert("RGB"))
        browser.close()
    assert locate_label(shots[0]) is None
    found = locate_label(shots[1])
    assert found is not None and found.glyph_ratio >= MIN_HEIGHT_RATIO and found.plate[0] > shots[1].width // 2


# --------------------------------------------------------------------------------------------- EPUB


def _epub(path: Path, first: str, *, body: str = '<body class="chapter">', opf_dir: str = "book/content") -> Path:
    """An EPUB 3 laid out unlike aigclabel's sample: the package in a nested folder, a URL-encoded href, a
    navigation document listed first in the manifest but not in the spine."""
    opf = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">x</dc:identifier>
    <dc:title>t</dc:title><dc:language>zh</dc:language></metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="css" href="style.css" media-type="text/css"/>
    <item id="c1" href="text/chapter%20one.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine><itemref idref="c1"/></spine>
</package>"""
    page = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><head><title>1</title>'
        f"</head>\n{body}" + ("" if body.endswith("/>") else f"<h1>{first}</h1><p>正文</p></body>") + "</html>"
    )
    container = (
        '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
        f'<rootfiles><rootfile full-path="{opf_dir}/package.opf" media-type="application/oebps-package+xml"/>'
        "</rootfiles></container>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        z.writestr("META-INF/container.xml", container, zipfile.ZIP_DEFLATED)
        z.writestr(f"{opf_dir}/package.opf", opf, zipfile.ZIP_DEFLATED)
        z.writestr(f"{opf_dir}/nav.xhtml", page.replace(first, "目录"), zipfile.ZIP_DEFLATED)
        z.writestr(f"{opf_dir}/style.css", "p { margin: 0 }", zipfile.ZIP_DEFLATED)
        z.writestr(f"{opf_dir}/text/chapter one.xhtml", page, zipfile.ZIP_DEFLATED)
    return path


def test_epub_banner_leads_the_first_spine_document_and_nothing_else_changes(tmp_path: Path) -> None:
    from xml.etree import ElementTree

    from aigclabel.explicit.document import find_epub_label

    src = _epub(tmp_path / "book.epub", "第一章")
    api.write_label(src, AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "epub-1"))
    done = add_document_label(src, tmp_path / "marked.epub")
    assert "chapter one.xhtml" in done.where and done.implicit_kept and find_epub_label(done.path)
    with zipfile.ZipFile(src) as before, zipfile.ZipFile(done.path) as after:
        assert after.namelist()[0] == "mimetype" and after.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
        page = after.read("book/content/text/chapter one.xhtml")
        body = ElementTree.fromstring(page).find("{http://www.w3.org/1999/xhtml}body")
        assert body is not None and body.get("class") == "chapter"
        assert body[0].get("id") == "aigc-explicit-label" and body[0].text == DEFAULT_LABEL and body[1].text == "第一章"
        for info in before.infolist():  # every other member: the same compressed bytes
            if info.filename != "book/content/text/chapter one.xhtml":
                assert after.getinfo(info.filename).CRC == info.CRC
    assert api.read_label(done.path) == AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "epub-1")
    assert not find_epub_label(src)


def test_epub_with_an_empty_body_or_no_spine_document(tmp_path: Path) -> None:
    from aigclabel.explicit.document import find_epub_label

    empty = add_document_label(_epub(tmp_path / "empty.epub", "x", body="<body/>"), tmp_path / "e.epub")
    assert find_epub_label(empty.path)
    broken = tmp_path / "broken.epub"
    with zipfile.ZipFile(_epub(tmp_path / "src.epub", "x")) as z, zipfile.ZipFile(broken, "w") as out:
        for info in z.infolist():
            data = z.read(info)
            out.writestr(info, data.replace(b'<itemref idref="c1"/>', b"") if info.filename.endswith(".opf") else data)
    with pytest.raises(MalformedFileError, match="no XHTML document in its spine"):
        add_document_label(broken, tmp_path / "b.epub")
    assert not (tmp_path / "b.epub").exists()


# --------------------------------------------------------------------------------------------- XLSX


def _xlsx(path: Path, *, chart: bool) -> Path:
    openpyxl = pytest.importorskip("openpyxl")
    from openpyxl.chart import BarChart, Reference

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "数据"
    for row in range(1, 6):
        sheet.append([row, row * row, f"=A{row}+B{row}"])
    if chart:
        bars = BarChart()
        bars.add_data(Reference(sheet, min_col=2, min_row=1, max_row=5))
        sheet.add_chart(bars, "E2")
    book.save(path)
    return path


@pytest.mark.parametrize("chart", [False, True], ids=["no-drawing", "with-chart"])
def test_xlsx_label_is_a_text_box_beside_the_data_and_cells_are_untouched(tmp_path: Path, chart: bool) -> None:
    from xml.etree import ElementTree

    openpyxl = pytest.importorskip("openpyxl")
    src = _xlsx(tmp_path / "book.xlsx", chart=chart)
    api.write_label(src, AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "xlsx-1"))
    done = add_document_label(src, tmp_path / "marked.xlsx")
    assert "first sheet" in done.where and done.implicit_kept
    with zipfile.ZipFile(src) as before, zipfile.ZipFile(done.path) as after:
        drawing = after.read("xl/drawings/drawing1.xml")
        shapes = [el for el in ElementTree.fromstring(drawing).iter() if el.get("name") == "AIGC explicit label"]
        assert len(shapes) == 1 and DEFAULT_LABEL.encode() in drawing
        assert (b"graphicFrame" in drawing) == chart  # a chart already there stays beside the box
        ours = ElementTree.fromstring(drawing).findall(".//{*}oneCellAnchor/{*}from/{*}col")
        assert ours[-1].text == "3"  # ours comes last: right of A:C, over no cell in use
        sheet_xml = after.read("xl/worksheets/sheet1.xml").decode()
        assert sheet_xml.count("<drawing ") == 1 and sheet_xml.index("pageMargins") < sheet_xml.index("<drawing ")
        assert b"/xl/drawings/drawing1.xml" in after.read("[Content_Types].xml")
        changed = {"xl/worksheets/sheet1.xml", "xl/drawings/drawing1.xml", "[Content_Types].xml",
                   "xl/worksheets/_rels/sheet1.xml.rels"}  # fmt: skip
        for info in before.infolist():
            if info.filename not in changed:
                assert after.getinfo(info.filename).CRC == info.CRC, info.filename
    book = openpyxl.load_workbook(done.path)
    assert [[c.value for c in row] for row in book["数据"].iter_rows()] == [
        [r, r * r, f"=A{r}+B{r}"] for r in range(1, 6)
    ]
    assert api.read_label(done.path) == AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "xlsx-1")
