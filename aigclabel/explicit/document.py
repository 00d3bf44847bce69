"""Explicit labels for documents (Measures Art. 4 ¶2: an exported file carries the explicit label itself).

One entry point, :func:`add_document_label`, picks the labeller of the file's container (the registry in
:mod:`aigclabel.containers` decides the format, not the suffix):

- **PDF**: a label plate stamped on the first page, appended as an incremental update (the machinery of
  :class:`aigclabel.containers.pdf.IncrementalUpdate`), so the original bytes stay a byte-identical prefix
  and existing signatures still cover what they signed. The plate is an *image* XObject of the label as
  :mod:`aigclabel.explicit.image` renders it (Pillow, the CJK font of :mod:`aigclabel.explicit.fonts`):
  embedding a subset of a CJK OpenType font (CID font, CMap, widths, ToUnicode) would add a font subsetter
  for a six-character prompt, while the image draws the same glyphs in every viewer, needs no font on the
  reader's side and cannot be re-flowed away. Its size follows GB 45438 §5.2 applied to the page (our
  reading: the standard sizes labels on images and video; a page is shown as one): every glyph's ink is at
  least 5 % of the page's shortest side, with the image label's safety margin. It sits top right of the
  displayed page (``/Rotate`` and the crop box honoured), drawn after the page's own content inside a
  ``q``/``Q`` pair that isolates it from the page's graphics state.
- **DOCX**: the label as the body's first paragraph (bold, white on a dark shading, centred). A Word
  document is text whose pages the reader lays out, so §5.1's prompt at the start applies, not a size.
- **PPTX**: a text box at the top right of the first slide, its font sized from the bundled font's measured
  glyphs so the smallest is >= 5 % of the slide's shortest side (a slide is shown like a picture).
  DOCX and PPTX rewrite only the one part; every other ZIP member is copied raw by :mod:`..containers._zip`.
- **SVG**: a group drawn last (so on top) at the top right: a dark ``rect`` and a ``text`` in a CJK sans
  font stack, sized from the ``viewBox`` like the image label; inserted textually, other bytes kept.
- **EPUB**: a banner paragraph (white on dark, bold, centred) first in the ``<body>`` of the first
  document of the spine, which a reading system shows first; only that one member is rewritten.
- **XLSX**: a text box (white on dark, 18 pt) in the first sheet's drawing layer, anchored at the top
  just right of the used range: a label row would shift every cell reference and formula, and a box over
  the cells would hide data. A sheet without a drawing gets a new drawing part, its relationship and its
  content type; one with a drawing (charts, pictures) gets the box added to it.

HTML is a text format in the registry and ``mark`` gives it the text label inside ``<body>``, which is
already a visible banner.

The implicit label is carried over: the PDF stamp leaves the Info dictionary and the XMP packet untouched,
and :func:`~aigclabel.explicit._implicit.restore_implicit` checks it on the result.
"""

from __future__ import annotations

import dataclasses
import html
import posixpath
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .._io import atomic_output, copy_rest
from ..containers import epub as epubc
from ..containers import ooxml, open_container
from ..containers import pdf as pdfc
from ..containers import svg as svgc
from ..containers._zip import ZipArchive, rewrite_zip
from ..errors import MalformedFileError, UnsupportedFormatError
from ._implicit import ImplicitPolicy, read_implicit, restore_implicit
from .image import plan_label, render_plate
from .text import DEFAULT_LABEL, TextLabelFinding, find_text_labels, validate_label_text

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

    import pikepdf

#: Pixels of the page's shortest side the PDF plate is rendered at (about 180 dpi on A4).
PDF_PIXELS = 1500
#: Name prefix of the stamp's image XObject (how :func:`find_pdf_label` recognises ours).
XOBJECT_NAME = "/AIGCLabel"


@dataclasses.dataclass(frozen=True)
class DocumentLabelResult:
    """What :func:`add_document_label` did."""

    path: Path
    #: Container name of the document (``pdf``, ``ooxml``, ...).
    format: str
    #: Where the label went, in words.
    where: str
    #: Smallest glyph's ink height over the page's shortest side (0 where the reader lays the text out).
    glyph_ratio: float
    #: The implicit label was carried over.
    implicit_kept: bool


def add_document_label(
    src: Path | str, dst: Path | str, *, text: str = DEFAULT_LABEL, implicit: ImplicitPolicy = "require"
) -> DocumentLabelResult:
    """Write ``src`` to ``dst`` with a visible label (see the module docstring for each format);
    raises :class:`UnsupportedFormatError` for a format with no document labeller."""
    src, dst = Path(src), Path(dst)
    validate_label_text(text)
    fmt = open_container(src).name
    labeller = _LABELLERS.get(fmt)
    if labeller is None:
        raise UnsupportedFormatError(f"{src}: no visible document label for {fmt} files")
    before = read_implicit(src, implicit)
    where, ratio = labeller(src, dst, text)
    kept = restore_implicit(dst, before, implicit)
    return DocumentLabelResult(dst, fmt, where, ratio, kept)


# ---------------------------------------------------------------------------------------------- PDF


def _inherited(page: pikepdf.Dictionary, key: str) -> Any:
    """An inheritable page attribute (ISO 32000-1 §7.7.3.4): the page's own or its nearest ancestor's."""
    node: Any = page
    for _depth in range(64):  # a /Parent cycle is invalid; do not follow it forever
        if node is None or key in node:
            return node.get(key) if node is not None else None
        node = node.get("/Parent")
    return None


def _page_box(page: pikepdf.Dictionary) -> tuple[float, float, float, float]:
    """The visible box (crop box, else media box) as (x0, y0, x1, y1)."""
    for key in ("/CropBox", "/MediaBox"):
        box = _inherited(page, key)
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            continue
        if abs(x1 - x0) > 1 and abs(y1 - y0) > 1:
            return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
    raise MalformedFileError("the first page of the PDF has no usable /MediaBox")


def _display_to_user(rotate: int, width: float, height: float) -> tuple[float, ...]:
    """The matrix taking displayed-page coordinates (origin bottom left) to the box's user space."""
    return {
        0: (1, 0, 0, 1, 0, 0),
        90: (0, 1, -1, 0, width, 0),
        180: (-1, 0, 0, -1, width, height),
        270: (0, -1, 1, 0, 0, height),
    }[rotate]


def _times(m: tuple[float, ...], n: tuple[float, ...]) -> tuple[float, ...]:
    """PDF matrix product ``m × n`` (``m`` applied first)."""
    a, b, c, d, e, f = m
    p, q, r, s, t, u = n
    return (a * p + b * r, a * q + b * s, c * p + d * r, c * q + d * s, e * p + f * r + t, e * q + f * s + u)


def _stream(head: bytes, data: bytes) -> bytes:
    return b"<< " + head + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _label_pdf(src: Path, dst: Path, text: str) -> tuple[str, float]:
    import pikepdf

    with pdfc.open_pdf(src) as pdf:
        known = pdfc.refuse_repaired(pdf, src)
        if len(pdf.pages) == 0:
            raise MalformedFileError(f"{src}: the PDF has no page to label")
        page = pdf.pages[0].obj
        if page.objgen[0] <= 0:
            raise MalformedFileError(f"{src}: the first page is not an indirect object")
        x0, y0, x1, y1 = _page_box(page)
        rotate_entry = _inherited(page, "/Rotate")
        rotate = int(rotate_entry) % 360 if isinstance(rotate_entry, int) and int(rotate_entry) % 90 == 0 else 0
        width, height = x1 - x0, y1 - y0
        shown = (width, height) if rotate in (0, 180) else (height, width)
        scale = PDF_PIXELS / min(shown)
        layout = plan_label((round(shown[0] * scale), round(shown[1] * scale)), text=text, placement="top-right")
        plate = render_plate(layout)
        px0, py0, px1, py1 = layout.plate
        # The plate in displayed-page points (origin bottom left), then in the page's user space.
        placed = ((px1 - px0) / scale, 0, 0, (py1 - py0) / scale, px0 / scale, shown[1] - py1 / scale)
        matrix = _times(_times(placed, _display_to_user(rotate, width, height)), (1, 0, 0, 1, x0, y0))

        update = pdfc.IncrementalUpdate(src, pdf)
        seal = update.seal
        image_ref, open_ref, stamp_ref = update.allocate(), update.allocate(), update.allocate()

        def sealed(ref: tuple[int, int], data: bytes) -> bytes:
            return seal.stream(ref, data, metadata=False) if seal is not None else data

        pixels = zlib.compress(plate.tobytes(), 9)
        update.objects[image_ref] = _stream(
            b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 "
            b"/Filter /FlateDecode" % plate.size,
            sealed(image_ref, pixels),
        )
        resources = _inherited(page, "/Resources")
        resources = pdfc.copy_dict(resources) if isinstance(resources, pikepdf.Dictionary) else pikepdf.Dictionary()
        xobjects = resources.get("/XObject")
        xobjects = pdfc.copy_dict(xobjects) if isinstance(xobjects, pikepdf.Dictionary) else pikepdf.Dictionary()
        name, n = XOBJECT_NAME, 1
        while name in xobjects:
            n += 1
            name = f"{XOBJECT_NAME}{n}"
        cm = b" ".join(b"%.4f" % v for v in matrix)
        update.objects[open_ref] = _stream(b"", sealed(open_ref, b"q\n"))
        update.objects[stamp_ref] = _stream(
            b"", sealed(stamp_ref, b"\nQ\nq " + cm + b" cm " + name.encode() + b" Do Q\n")
        )

        ref = page.objgen
        if "/XObject" in resources:
            del resources["/XObject"]
        x_body = pdfc.unparse(xobjects, seal, ref)[:-2].rstrip() + b" " + name.encode() + b" %d %d R >>" % image_ref
        res_body = pdfc.unparse(resources, seal, ref)[:-2].rstrip() + b" /XObject " + x_body + b" >>"
        contents = page.get("/Contents")
        if isinstance(contents, pikepdf.Array):
            old = [pdfc.unparse(item, seal, ref) for item in contents]
        elif isinstance(contents, pikepdf.Stream) and contents.is_indirect:
            old = [b"%d %d R" % contents.objgen]
        elif contents is None:
            old = []
        else:
            raise MalformedFileError(f"{src}: the first page's /Contents is neither a stream nor an array")
        new_page = pdfc.copy_dict(page)
        for key in ("/Contents", "/Resources"):
            if key in new_page:
                del new_page[key]
        refs = b" ".join([b"%d %d R" % open_ref, *old, b"%d %d R" % stamp_ref])
        update.objects[ref] = (
            pdfc.unparse(new_page, seal, ref)[:-2].rstrip()
            + b" /Resources "
            + res_body
            + b" /Contents [ "
            + refs
            + b" ] >>"
        )
        info = pdf.trailer.get("/Info")
        info_ref = info.objgen if isinstance(info, pikepdf.Object) and info.is_indirect else None
        appended = update.serialise(info_ref)
        known += pdfc.qpdf_warnings(pdf, src)
    with atomic_output(dst, mode_from=src) as tmp:
        with open(src, "rb") as source, open(tmp, "wb") as out:
            copy_rest(source, out)
            out.write(appended)
        _check_pdf(tmp, name, known)
    ratio = layout.smallest_glyph_ratio
    return f"label plate at the top right of page 1 ({ratio:.1%} of the page's shortest side)", ratio


def _check_pdf(path: Path, name: str, known: list[str]) -> None:
    """Re-open the stamped PDF: no new qpdf warning, and page 1's content parses and draws our XObject."""
    import pikepdf

    with pdfc.open_pdf(path) as pdf:
        page = pdf.pages[0]
        drawn = any(
            str(step.operator) == "Do" and list(step.operands) == [pikepdf.Name(name)]
            for step in pikepdf.parse_content_stream(page)
        )
        warnings = [w for w in pdfc.qpdf_warnings(pdf, path) if w not in set(known)]
    if warnings or not drawn:
        detail = warnings[0] if warnings else "the stamp did not read back"
        raise MalformedFileError(f"the stamped PDF could not be verified ({detail}); the input was left as it was")


def find_pdf_label(path: Path | str) -> bool:
    """True if page 1 of the PDF draws a label plate :func:`add_document_label` stamped."""
    import pikepdf

    with pdfc.open_pdf(Path(path)) as pdf:
        if len(pdf.pages) == 0:
            return False
        resources = pdf.pages[0].obj.get("/Resources")
        xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
        if not isinstance(xobjects, pikepdf.Dictionary):
            return False
        return any(str(key).startswith(XOBJECT_NAME) for key in xobjects.keys())  # noqa: SIM118


# ---------------------------------------------------------------------------------- Office Open XML

#: Name of the PowerPoint shape carrying the label (how :func:`find_ooxml_label` recognises ours).
SHAPE_NAME = "AIGC explicit label"
_OFFICE_DOCUMENT_REL = re.compile(r"/(?:officeDocument|relationships/officeDocument)$")
_SLIDE_REL = re.compile(r"/slide$")
_EMU_PER_POINT = 12700


def _part_target(archive: ZipArchive, owner: str, rel_id: str | None, type_re: re.Pattern[str]) -> str:
    """The part a relationship of ``owner`` points at: by ``rel_id``, or the first whose type matches."""
    folder, name = posixpath.split(owner)
    rels_name = posixpath.join(folder, "_rels", name + ".rels")
    entry = archive.get(rels_name)
    if entry is None:
        raise MalformedFileError(f"package has no {rels_name}")
    for rel in ooxml.parse_xml(archive.read(entry), rels_name).iter(f"{{{ooxml.RELS_NS}}}Relationship"):
        if (rel.get("Id") == rel_id if rel_id else bool(type_re.search(rel.get("Type", "")))) and rel.get("Target"):
            target = rel.get("Target", "")
            joined = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
            return posixpath.normpath(joined)
    raise MalformedFileError(f"{rels_name} has no relationship to the part to label")


def _part(archive: ZipArchive, name: str) -> tuple[str, Element]:
    entry = archive.get(name)
    if entry is None:
        raise MalformedFileError(f"package has no part {name}")
    data = archive.read(entry)
    return ooxml.decode_xml(data, name), ooxml.parse_xml(data, name)


def _emphasis_size(short_points: float, text: str) -> tuple[float, float]:
    """Font size in points whose smallest glyph is >= 5 % (+ margin) of ``short_points``, from the
    bundled font's measured glyphs (a viewer's CJK font draws within a few per cent of it), and that
    glyph's ratio."""
    layout = plan_label((4 * 1000, 1000), text=text, placement="top-right")
    return layout.font_size / 1000 * short_points, layout.smallest_glyph_ratio


def _label_docx(text_xml: str, text: str) -> str:
    """``word/document.xml`` with the label as the body's first paragraph (bold, white on dark, centred)."""
    body = re.search(r"<((?:[A-Za-z_][\w.-]*:)?)body\b[^>]*?(/?)>", text_xml)
    if body is None:
        raise MalformedFileError("word/document.xml has no <w:body>")
    w = body.group(1)
    run = (
        f'<{w}rPr><{w}b/><{w}bCs/><{w}color {w}val="FFFFFF"/><{w}sz {w}val="32"/><{w}szCs {w}val="32"/>'
        f'<{w}shd {w}val="clear" {w}color="auto" {w}fill="181818"/></{w}rPr>'
        f'<{w}t xml:space="preserve">{html.escape(text, quote=False)}</{w}t>'
    )
    paragraph = f'<{w}p><{w}pPr><{w}jc {w}val="center"/></{w}pPr><{w}r>{run}</{w}r></{w}p>'
    if body.group(2):  # <w:body/>: an empty document
        return text_xml[: body.start()] + f"<{w}body>{paragraph}</{w}body>" + text_xml[body.end() :]
    return text_xml[: body.end()] + paragraph + text_xml[body.end() :]


def _label_slide(text_xml: str, root: Element, size_emu: tuple[int, int], text: str) -> tuple[str, float]:
    """A slide with a text box (white on dark, top right) appended to its shape tree; the font size."""
    tree = re.search(r"</((?:[A-Za-z_][\w.-]*:)?)spTree\s*>", text_xml)
    a = re.search(r"xmlns:([\w.-]+)=\"http://schemas.openxmlformats.org/drawingml/2006/main\"", text_xml)
    if tree is None:
        raise MalformedFileError("the first slide has no shape tree")
    p = tree.group(1)
    ids = [int(v) for el in root.iter() if (v := el.get("id", "")).isdigit()]
    shape_id = max(ids, default=1) + 1
    short = min(size_emu) / _EMU_PER_POINT
    points, ratio = _emphasis_size(short, text)
    width = round(min(size_emu[0] * 0.9, points * 1.1 * (len(text) + 1) * _EMU_PER_POINT))
    height = round(points * 1.6 * _EMU_PER_POINT)
    edge = round(min(size_emu) * 0.02)
    ap = (a.group(1) + ":") if a else "a:"
    ns = "" if a else ' xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
    shape = (
        f'<{p}sp{ns}><{p}nvSpPr><{p}cNvPr id="{shape_id}" name="{SHAPE_NAME}"/><{p}cNvSpPr txBox="1"/><{p}nvPr/>'
        f'</{p}nvSpPr><{p}spPr><{ap}xfrm><{ap}off x="{size_emu[0] - edge - width}" y="{edge}"/>'
        f'<{ap}ext cx="{width}" cy="{height}"/></{ap}xfrm><{ap}prstGeom prst="rect"><{ap}avLst/></{ap}prstGeom>'
        f'<{ap}solidFill><{ap}srgbClr val="181818"/></{ap}solidFill></{p}spPr><{p}txBody>'
        f'<{ap}bodyPr wrap="none" anchor="ctr"><{ap}spAutoFit/></{ap}bodyPr><{ap}lstStyle/><{ap}p><{ap}pPr algn="ctr"/>'
        f'<{ap}r><{ap}rPr lang="zh-CN" sz="{round(points * 100)}" b="0"><{ap}solidFill><{ap}srgbClr val="FFFFFF"/>'
        f"</{ap}solidFill></{ap}rPr><{ap}t>{html.escape(text, quote=False)}</{ap}t></{ap}r></{ap}p></{p}txBody></{p}sp>"
    )
    return text_xml[: tree.start()] + shape + text_xml[tree.start() :], ratio


def _label_ooxml(src: Path, dst: Path, text: str) -> tuple[str, float]:
    archive = ZipArchive(src)
    main = _part_target(archive, "", None, _OFFICE_DOCUMENT_REL)
    main_xml, main_root = _part(archive, main)
    kind = main_root.tag.rsplit("}", 1)[-1]
    if kind == "document":
        replace = {main: _label_docx(main_xml, text).encode("utf-8")}
        where, ratio = "label as the first paragraph of the document", 0.0
    elif kind == "presentation":
        first = next((el for el in main_root.iter() if el.tag.endswith("}sldId")), None)
        size = next((el for el in main_root.iter() if el.tag.endswith("}sldSz")), None)
        if first is None:
            raise MalformedFileError(f"{src}: the presentation has no slide to label")
        rel_id = next((v for k, v in first.attrib.items() if k.endswith("}id")), None)
        slide = _part_target(archive, main, rel_id, _SLIDE_REL)
        slide_xml, slide_root = _part(archive, slide)
        emu = (
            (int(size.get("cx", "9144000")), int(size.get("cy", "6858000"))) if size is not None else (9144000, 6858000)
        )
        labelled, ratio = _label_slide(slide_xml, slide_root, emu, text)
        replace = {slide: labelled.encode("utf-8")}
        where = f"label text box at the top right of the first slide (smallest glyph {ratio:.1%} of its shortest side)"
    elif kind == "workbook":
        replace, add, where = _label_workbook(archive, main, main_root, text)
        with atomic_output(dst, mode_from=src) as tmp:
            rewrite_zip(archive, tmp, replace, add)
        return where, 0.0
    else:
        raise UnsupportedFormatError(f"{src}: no visible label for {kind} packages (Word, PowerPoint, Excel only)")
    with atomic_output(dst, mode_from=src) as tmp:
        rewrite_zip(archive, tmp, replace, [])
    return where, ratio


_SHEET_REL = re.compile(r"/worksheet$")
_DRAWING_REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/drawing"
_DRAWING_TYPE = "application/vnd.openxmlformats-officedocument.drawing+xml"
_R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XDR_NS = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
_A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
#: Worksheet children that come after ``<drawing>`` (ECMA-376 CT_Worksheet order).
_AFTER_DRAWING = ("legacyDrawing", "legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls",
                  "webPublishItems", "tableParts", "extLst")  # fmt: skip
_CELL_COLUMN = re.compile(r"([A-Z]+)\d*$")


def _column_index(ref: str) -> int:
    """0-based column of the last cell in a range like ``A1:D20`` (0 when there is none)."""
    match = _CELL_COLUMN.search(ref.split(":")[-1].upper())
    if match is None:
        return 0
    index = 0
    for char in match.group(1):
        index = index * 26 + ord(char) - 64
    return index


def _anchor(column: int, text: str, shape_id: int) -> str:
    """A one-cell-anchored text box at row 1 of ``column``, white 18 pt text on dark."""
    width, height = round(12700 * 18 * 1.2 * (len(text) + 2)), round(12700 * 18 * 1.9)
    return (
        f'<xdr:oneCellAnchor xmlns:xdr="{_XDR_NS}" xmlns:a="{_A_NS}"><xdr:from><xdr:col>{column}</xdr:col>'
        "<xdr:colOff>0</xdr:colOff><xdr:row>0</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from>"
        f'<xdr:ext cx="{width}" cy="{height}"/><xdr:sp macro="" textlink=""><xdr:nvSpPr>'
        f'<xdr:cNvPr id="{shape_id}" name="{SHAPE_NAME}"/><xdr:cNvSpPr txBox="1"/></xdr:nvSpPr><xdr:spPr>'
        '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom><a:solidFill><a:srgbClr val="181818"/></a:solidFill>'
        '</xdr:spPr><xdr:txBody><a:bodyPr wrap="none" anchor="ctr"/><a:lstStyle/><a:p><a:pPr algn="ctr"/><a:r>'
        '<a:rPr lang="zh-CN" sz="1800" b="1"><a:solidFill><a:srgbClr val="FFFFFF"/></a:solidFill></a:rPr>'
        f"<a:t>{html.escape(text, quote=False)}</a:t></a:r></a:p></xdr:txBody></xdr:sp><xdr:clientData/>"
        "</xdr:oneCellAnchor>"
    )


def _label_workbook(
    archive: ZipArchive, main: str, root: Element, text: str
) -> tuple[dict[str, bytes], list[tuple[str, bytes]], str]:
    """The parts that put a text box on the first sheet: (replaced, added, where)."""
    first = next((el for el in root.iter() if el.tag.endswith("}sheet")), None)
    if first is None:
        raise MalformedFileError("the workbook has no sheet to label")
    rel_id = next((v for k, v in first.attrib.items() if k == f"{{{_R_NS}}}id"), None)
    sheet = _part_target(archive, main, rel_id, _SHEET_REL)
    sheet_xml, sheet_root = _part(archive, sheet)
    dimension = next((el for el in sheet_root.iter() if el.tag.endswith("}dimension")), None)
    column = _column_index(dimension.get("ref", "") if dimension is not None else "")
    folder, name = posixpath.split(sheet)
    rels_name = posixpath.join(folder, "_rels", name + ".rels")
    rels_entry = archive.get(rels_name)
    drawing = next((el for el in sheet_root.iter() if el.tag.endswith("}drawing")), None)
    replace: dict[str, bytes] = {}
    add: list[tuple[str, bytes]] = []
    if drawing is not None:  # add the box to the sheet's own drawing
        target = _part_target(archive, sheet, drawing.get(f"{{{_R_NS}}}id"), re.compile("/drawing$"))
        drawing_xml, drawing_root = _part(archive, target)
        close = re.search(r"</((?:[A-Za-z_][\w.-]*:)?)wsDr\s*>", drawing_xml)
        if close is None:
            raise MalformedFileError(f"{target} has no drawing layer")
        ids = [int(v) for el in drawing_root.iter() if (v := el.get("id", "")).isdigit()]
        box = _anchor(column, text, max(ids, default=1) + 1)
        replace[target] = (drawing_xml[: close.start()] + box + drawing_xml[close.start() :]).encode("utf-8")
    else:
        taken = {entry.name for entry in archive.entries}
        number = next(n for n in range(1, 10_000) if f"xl/drawings/drawing{n}.xml" not in taken)
        target = f"xl/drawings/drawing{number}.xml"
        layer = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<xdr:wsDr xmlns:xdr="{_XDR_NS}">'
        add.append((target, (layer + _anchor(column, text, 2) + "</xdr:wsDr>").encode("utf-8")))
        target_name = f"../drawings/drawing{number}.xml"
        old_rels = (
            archive.read(rels_entry)
            if rels_entry is not None
            else f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{ooxml.RELS_NS}">'
            "</Relationships>".encode()
        )
        rels, rid = ooxml.add_relationship(old_rels, rels_name, _DRAWING_REL_TYPE, target_name)
        if rels_entry is None:
            add.append((rels_name, rels))
        else:
            replace[rels_name] = rels
        after = re.search(r"<((?:[A-Za-z_][\w.-]*:)?)(?:" + "|".join(_AFTER_DRAWING) + r")\b", sheet_xml)
        place = after or ooxml.close_tag(sheet_xml, "worksheet")
        at, prefix = place.start(), place.group(1)
        element = f'<{prefix}drawing xmlns:r="{_R_NS}" r:id="{rid}"/>'
        replace[sheet] = (sheet_xml[:at] + element + sheet_xml[at:]).encode("utf-8")
        types_entry = archive.get(ooxml.CONTENT_TYPES)
        assert types_entry is not None  # the container checked it
        types = archive.read(types_entry)
        replace[ooxml.CONTENT_TYPES] = ooxml.register_content_type(types, f"/{target}", _DRAWING_TYPE)
    for part, data in [*replace.items(), *add]:
        ooxml.parse_xml(data, part)  # every edited part still well-formed before anything is written
    return replace, add, f"label text box at the top of the first sheet, right of its used range ({sheet})"


def find_ooxml_label(path: Path | str, text: str = DEFAULT_LABEL) -> bool:
    """True if the document's first paragraph, or a shape of the first slide, carries ``text``."""
    archive = ZipArchive(Path(path))
    main = _part_target(archive, "", None, _OFFICE_DOCUMENT_REL)
    _xml, root = _part(archive, main)
    if root.tag.endswith("}document"):
        body = next((el for el in root.iter() if el.tag.endswith("}body")), None)
        first = next((el for el in body or [] if el.tag.endswith("}p")), None)
        return first is not None and text in "".join(t.text or "" for t in first.iter() if t.tag.endswith("}t"))
    return False


# ---------------------------------------------------------------------------------------------- SVG

#: ``id`` of the SVG group carrying the label (how :func:`find_svg_label` recognises ours).
SVG_GROUP_ID = "aigc-explicit-label"
#: CJK sans faces viewers commonly have, then the generic family.
_SVG_FONTS = "'Noto Sans SC','Noto Sans CJK SC','Source Han Sans SC','Microsoft YaHei','PingFang SC',sans-serif"
_NUMBER = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:px)?\s*$")


def _svg_canvas(root: Element) -> tuple[float, float, float, float]:
    """The user-space rectangle the SVG shows: its ``viewBox``, else ``width`` x ``height`` at the origin."""
    box = (root.get("viewBox") or "").replace(",", " ").split()
    try:
        if len(box) == 4 and float(box[2]) > 0 and float(box[3]) > 0:
            return float(box[0]), float(box[1]), float(box[2]), float(box[3])
    except ValueError:
        pass
    sizes = [_NUMBER.match(root.get(key) or "") for key in ("width", "height")]
    if sizes[0] is None or sizes[1] is None or float(sizes[0].group(1)) <= 0 or float(sizes[1].group(1)) <= 0:
        raise MalformedFileError(
            "the SVG has neither a viewBox nor a width and height in user units to size a label by"
        )
    return 0.0, 0.0, float(sizes[0].group(1)), float(sizes[1].group(1))


def _label_svg(src: Path, dst: Path, text: str) -> tuple[str, float]:
    """A label group (dark plate, white text) drawn last, at the top right, sized like the image label."""
    document = svgc.load_svg(src)
    root_tag = svgc.root_tag(document)
    if root_tag is None:
        raise MalformedFileError(f"{src}: no <svg> root element")
    root = ooxml.parse_xml(document.encode("utf-8"), src.name)
    x, y, width, height = _svg_canvas(root)
    scale = 1000 / min(width, height)
    layout = plan_label((round(width * scale), round(height * scale)), text=text, placement="top-right")
    px0, py0, px1, py1 = (v / scale for v in layout.plate)
    p = root_tag.group("p")
    cx, cy, size = x + (px0 + px1) / 2, y + (py0 + py1) / 2, layout.font_size / scale
    group = (
        f'<{p}g id="{SVG_GROUP_ID}" role="note" aria-label="{html.escape(text)}">'
        f'<{p}rect x="{x + px0:.2f}" y="{y + py0:.2f}" width="{px1 - px0:.2f}" height="{py1 - py0:.2f}" '
        'fill="#181818"/>'
        f'<{p}text x="{cx:.2f}" y="{cy:.2f}" font-size="{size:.2f}" '
        'fill="#ffffff" text-anchor="middle" dominant-baseline="central" '
        f'font-family="{_SVG_FONTS}">'
        f"{html.escape(text, quote=False)}</{p}text></{p}g>"
    )
    if root_tag.group("close") == "/>":
        start, end = root_tag.span("close")
        labelled = document[:start] + ">" + group + f"</{p}svg>" + document[end:]
    else:
        closing = list(re.finditer(rf"</{re.escape(p)}svg\s*>", document))
        if not closing:
            raise MalformedFileError(f"{src}: no </svg> end tag")
        at = closing[-1].start()
        labelled = document[:at] + group + document[at:]
    ooxml.parse_xml(labelled.encode("utf-8"), src.name)  # still well-formed
    with atomic_output(dst, mode_from=src) as tmp:
        tmp.write_bytes(labelled.encode("utf-8"))
    ratio = layout.smallest_glyph_ratio
    return f"label at the top right of the picture (smallest glyph {ratio:.1%} of its shortest side)", ratio


def find_svg_label(path: Path | str) -> bool:
    """True if the SVG has the label group :func:`add_document_label` draws."""
    root = ooxml.parse_xml(svgc.load_svg(Path(path)).encode("utf-8"), Path(path).name)
    return any(el.get("id") == SVG_GROUP_ID for el in root.iter())


# --------------------------------------------------------------------------------------------- EPUB

#: ``id`` of the EPUB banner paragraph (how :func:`find_epub_label` recognises ours).
EPUB_BANNER_ID = "aigc-explicit-label"
_XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_BODY = re.compile(r"<((?:[A-Za-z_][\w.-]*:)?)body\b[^>]*?(/?)>")


def _spine_documents(archive: ZipArchive) -> list[str]:
    """The members holding the XHTML documents of the EPUB's spine, in reading order."""
    opf = epubc.package_document_name(archive)
    entry = archive.get(opf)
    if entry is None:
        raise MalformedFileError(f"EPUB has no package document {opf}")
    root = ooxml.parse_xml(archive.read(entry), opf)
    items = {
        item.get("id"): item
        for item in root.iter()
        if item.tag.endswith("}item") and item.get("id") and item.get("href")
    }
    documents: list[str] = []
    for ref in (el for el in root.iter() if el.tag.endswith("}itemref")):
        item = items.get(ref.get("idref"))
        if item is not None and item.get("media-type") in _XHTML_TYPES:
            href = unquote(item.get("href", "").split("#", 1)[0])
            documents.append(posixpath.normpath(posixpath.join(posixpath.dirname(opf), href)))
    return documents


def _first_spine_document(archive: ZipArchive) -> str:
    """The member holding the first XHTML document of the EPUB's spine (what a reader opens first)."""
    documents = _spine_documents(archive)
    if not documents:
        raise MalformedFileError(f"{epubc.package_document_name(archive)} has no XHTML document in its spine")
    return documents[0]


def _label_epub(src: Path, dst: Path, text: str) -> tuple[str, float]:
    archive = ZipArchive(src)
    name = _first_spine_document(archive)
    entry = archive.get(name)
    if entry is None:
        raise MalformedFileError(f"EPUB spine names {name}, which is not in the archive")
    page = ooxml.decode_xml(archive.read(entry), name)
    body = _BODY.search(page)
    if body is None:
        raise MalformedFileError(f"{name} has no <body>")
    prefix = body.group(1)
    style = "background:#181818;color:#fff;font-weight:bold;text-align:center;padding:0.3em 0.6em;margin:0 0 1em"
    banner = f'<{prefix}p id="{EPUB_BANNER_ID}" style="{style}">{html.escape(text, quote=False)}</{prefix}p>'
    if body.group(2):  # <body/>: an empty page
        page = page[: body.start()] + body.group(0)[:-2] + ">" + banner + f"</{prefix}body>" + page[body.end() :]
    else:
        page = page[: body.end()] + banner + page[body.end() :]
    ooxml.parse_xml(page.encode("utf-8"), name)  # still well-formed XML before anything is written
    with atomic_output(dst, mode_from=src) as tmp:
        rewrite_zip(archive, tmp, {name: page.encode("utf-8")}, [])
    return f"label banner first in {name}, the first document of the spine", 0.0


def find_epub_label(path: Path | str) -> bool:
    """True if the first document of the spine carries the banner :func:`add_document_label` adds."""
    archive = ZipArchive(Path(path))
    name = _first_spine_document(archive)
    entry = archive.get(name)
    if entry is None:
        return False
    root = ooxml.parse_xml(archive.read(entry), name)
    return any(el.get("id") == EPUB_BANNER_ID for el in root.iter())


# ----------------------------------------------------------------------- visible text (any producer's label)

#: Characters of a document's visible text searched for a label prompt. The rules put the prompt at the
#: start or the end; the readers below take the opening and closing parts of long documents.
MAX_DOCUMENT_TEXT = 200_000
#: PDF pages whose text is read: the first ones and the last one (where a prompt belongs).
PDF_TEXT_PAGES = 2
#: The OOXML parts a reader sees as text, in the order they are shown (headers before the body before
#: footers; slides and sheets by number; a sheet's inline strings, the shared strings, text boxes).
_OOXML_TEXT_PART = re.compile(
    r"^(?:word/(?P<word>header\d*|document|footer\d*)\.xml|ppt/slides/slide(?P<number>\d+)\.xml"
    r"|xl/(?:sharedStrings|worksheets/sheet(?P<sheet>\d+)|drawings/drawing\d+)\.xml)$"
)
_WORD_ORDER = {"header": 0, "document": 1, "footer": 2}
#: Elements that start a new line (OOXML paragraphs and breaks, SVG text) and that hold text runs.
_BREAKS = frozenset({"p", "br", "text"})
_RUNS = frozenset({"t", "text", "tspan"})


@dataclasses.dataclass(frozen=True)
class DocumentText:
    """The visible text of a document, as far as it was read (``source`` says which parts), and the container
    it was read as (pass it on to :func:`has_own_label`, so the file is not identified twice)."""

    text: str
    source: str
    container: str = ""


def _bounded(parts: list[str], source: str) -> DocumentText:
    """``parts`` joined, keeping the opening and closing halves of :data:`MAX_DOCUMENT_TEXT` when longer."""
    text = "\n".join(parts)
    if len(text) > MAX_DOCUMENT_TEXT:
        half = MAX_DOCUMENT_TEXT // 2
        text = text[:half] + "\n\n" + text[-half:]
        source += f" (the first and last {half} characters)"
    return DocumentText(text, source)


def _xml_text(data: bytes, name: str) -> str:
    """The text runs of an OOXML/SVG part in document order, a line break before every paragraph."""
    root = ooxml.parse_xml(data, name)
    out: list[str] = []
    for el in root.iter():
        tag = el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""
        if tag in _BREAKS:
            out.append("\n")
        if tag in _RUNS:
            out.extend(filter(None, (el.text, el.tail if tag == "tspan" else None)))
    return "".join(out)


def _pdf_text(path: Path) -> DocumentText:
    from .._extras import needs_extra

    with needs_extra("media"):
        import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise MalformedFileError(f"PDF text could not be read: {exc}") from exc
    try:
        count = len(pdf)
        pages = sorted({*range(min(count, PDF_TEXT_PAGES)), *([count - 1] if count else [])})
        parts = []
        for index in pages:
            page = pdf[index]
            textpage = page.get_textpage()
            parts.append(textpage.get_text_range())
            textpage.close()
            page.close()
    finally:
        pdf.close()
    shown = ", ".join(str(i + 1) for i in pages)
    return _bounded(parts, f"text of page{'s' if len(pages) != 1 else ''} {shown} of {count}")


def _ooxml_text(path: Path) -> DocumentText:
    archive = ZipArchive(path)
    found = []
    for entry in archive.entries:
        match = _OOXML_TEXT_PART.match(entry.name)
        if match is None:
            continue
        if match["word"]:
            key = (_WORD_ORDER[match["word"].rstrip("0123456789")], 0, entry.name)
        else:
            key = (0, int(match["number"] or match["sheet"] or 0), entry.name)
        found.append((key, entry))
    parts = [_xml_text(archive.read(entry), entry.name) for _key, entry in sorted(found, key=lambda f: f[0])]
    return _bounded(parts, f"text of {len(parts)} part{'s' if len(parts) != 1 else ''}")


def _svg_text(path: Path) -> DocumentText:
    return _bounded([_xml_text(svgc.load_svg(path).encode("utf-8"), path.name)], "text elements")


def _epub_text(path: Path) -> DocumentText:
    from .text import visible_text

    archive = ZipArchive(path)
    documents = _spine_documents(archive)
    chosen = documents if len(documents) <= 2 else [documents[0], documents[-1]]
    parts = []
    for name in chosen:
        entry = archive.get(name)
        if entry is not None:
            parts.append(visible_text(ooxml.decode_xml(archive.read(entry), name), "html"))
    return _bounded(parts, f"text of the first and last of {len(documents)} spine documents")


_TEXT_READERS: dict[str, Callable[[Path], DocumentText]] = {
    "pdf": _pdf_text,
    "ooxml": _ooxml_text,
    "svg": _svg_text,
    "epub": _epub_text,
}
_OWN_LABEL_FINDERS: dict[str, Callable[[Path], bool]] = {
    "pdf": find_pdf_label,
    "ooxml": find_ooxml_label,
    "svg": find_svg_label,
    "epub": find_epub_label,
}


def document_text(path: Path | str) -> DocumentText:
    """The visible text of a document in which a label prompt of any producer would be (bounded)."""
    path = Path(path)
    name = open_container(path).name
    reader = _TEXT_READERS.get(name)
    if reader is None:
        raise UnsupportedFormatError(f"{path.name}: no document text reader for {name}")
    return dataclasses.replace(reader(path), container=name)


@dataclasses.dataclass(frozen=True)
class DocumentLabels:
    """What a document shows a reader of a label: the prompts in its visible text (``read``), and, only when
    there are none, whether it carries the plate :func:`add_document_label` draws (a PDF's is an image)."""

    read: DocumentText
    prompts: list[TextLabelFinding]
    own_plate: bool


def find_document_labels(path: Path | str) -> DocumentLabels:
    """The label prompts of any producer in a document's visible text, falling back to aigclabel's own plate
    (the one search both the verify detector and ``check``'s document rule run)."""
    read = document_text(path)
    prompts = find_text_labels(read.text)
    return DocumentLabels(read, prompts, not prompts and has_own_label(path, read.container))


def has_own_label(path: Path | str, container: str = "") -> bool:
    """True if the document carries the label :func:`add_document_label` draws (a PDF's is an image);
    ``container``: its container name when known (:attr:`DocumentText.container`), else it is identified."""
    path = Path(path)
    finder = _OWN_LABEL_FINDERS.get(container or open_container(path).name)
    return finder is not None and finder(path)


_LABELLERS: dict[str, Callable[[Path, Path, str], tuple[str, float]]] = {
    "pdf": _label_pdf,
    "ooxml": _label_ooxml,
    "svg": _label_svg,
    "epub": _label_epub,
}

__all__ = [
    "DocumentLabelResult",
    "DocumentText",
    "add_document_label",
    "document_text",
    "find_epub_label",
    "find_ooxml_label",
    "find_pdf_label",
    "find_svg_label",
    "has_own_label",
]
