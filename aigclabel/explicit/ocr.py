"""Reading visible labels of any style on images and video frames: OCR, then measuring what it read.

A label drawn by another tool has no colour or plate we can look for, so the text itself is found:
RapidOCR (PP-OCR detection and recognition models shipped inside the ``rapidocr`` wheel, run by
onnxruntime, Chinese and English) finds the lines of text on a downscaled copy of the picture
(:data:`OCR_SIDE` px on the long side: a 5 % label on a 2 MP photo is still ~17 px tall there, and the
detection model, the dearest step, costs ~25 ms instead of seconds), then reads each line it found on
the picture itself, where small characters are sharp. When RapidOCR is not installed, Debian's
tesseract (``chi_sim+eng``) is the fallback. Nothing is downloaded at run time.

Each line that carries the AI element (人工智能 / AI) becomes a :class:`ImageTextLabel` with the
generation element checked (生成 / 合成 / generated / synthesized ...), its character height measured
on the full-resolution picture (the rows where the text's strokes are, not the detector's padded
box) against the shortest side, and its position (corner, edge or centre).
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from .. import _budget
from .._extras import needs_extra
from .._opencv import cv2

with needs_extra("media"):
    from scipy import ndimage

#: Long side (px) of the copy the text-detection model reads (448: the held-out third-party set is
#: still read 64/64; at 384 a centred label went unseen).
OCR_SIDE = 448
#: A line whose box lies within this fraction of the width (height) of the left/right (top/bottom)
#: border is at that edge; near two edges it is in a corner; otherwise it is in the centre part.
EDGE_BAND = 0.2
#: Lowest recognition confidence kept.
MIN_SCORE = 0.5
#: The pre-filter (:func:`may_hold_text`): a stroke is a pixel of a bright or dark structure at most
#: :data:`STROKE_KERNEL` - 1 px wide that stands out from what surrounds it by more than
#: :data:`STROKE_CONTRAST` grey levels in some colour channel. A line of legible text fills at least
#: :data:`MIN_STROKE_DENSITY` of some :data:`STROKE_WINDOW` (w, h) window with strokes at one of the
#: scales of :data:`STROKE_LEVELS` halvings of the copy it reads (:func:`gate_copy`). Set from the recall
#: set of ``bench/verify.py --prefilter`` on the 448 px detection copy (labels the detector reads: lowest
#: density 0.70; the bench's unlabelled uploads: 0.15 at most), halfway between, so a label the detector
#: can read is never rejected and a smooth or merely noisy picture is. Read on :func:`gate_copy` since
#: (a 2 MP upload at 400 px, its noise averaged over 4x4 pixels): lowest 0.61 among the labels found of
#: the default seed (a small picture, read unhalved as before), 0.73 among the 507 of seeds 7 and 8, 0.53
#: among the 293 of ``--prefilter-smooth``; the bench's uploads 0.10 at most.
STROKE_CONTRAST = 20
STROKE_KERNEL = 5
STROKE_WINDOW = (24, 12)
STROKE_LEVELS = 3
MIN_STROKE_DENSITY = 0.35

Position = Literal["corner", "edge", "centre"]
Box = tuple[int, int, int, int]

_AI_RE = re.compile(r"人工智能|(?<![A-Z])A[I1l|](?![A-Z])|AIGC", re.I)
_GEN_RE = re.compile(r"生成|合成|制作|GENERAT|SYNTHE|CREATED|MADE", re.I)


@dataclass(frozen=True)
class TextLine:
    """One line of text OCR read, with its box in the picture's pixels."""

    text: str
    box: Box
    score: float


@dataclass(frozen=True)
class ImageTextLabel:
    """A line of text carrying the AI element, measured as GB 45438 §5.2 asks."""

    text: str
    box: Box
    glyph_height: int
    short_side: int
    position: Position
    has_generation: bool
    score: float

    @property
    def ratio(self) -> float:
        """Character height over the shortest side."""
        return self.glyph_height / self.short_side if self.short_side else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the measured figures a report shows)."""
        return {
            "text": self.text,
            "box": list(self.box),
            "glyph_height_px": self.glyph_height,
            "short_side_px": self.short_side,
            "ratio": round(self.ratio, 4),
            "position": self.position,
            "has_generation_element": self.has_generation,
            "score": round(self.score, 3),
        }


def has_ai_element(text: str) -> bool:
    """True when ``text`` carries the AI element (人工智能, or AI as a word; OCR's "Al"/"A1" count)."""
    return _AI_RE.search(text) is not None


def has_generation_element(text: str) -> bool:
    """True when ``text`` carries the generation element (生成 / 合成 / generated / synthesized ...)."""
    return _GEN_RE.search(text) is not None


def ocr_engine_name() -> str | None:
    """``"rapidocr"``, ``"tesseract"`` or ``None`` (no OCR available)."""
    if _rapidocr() is not None:
        return "rapidocr"
    return "tesseract" if _tesseract_exe() else None


def _rapidocr() -> Any:
    """The RapidOCR engine; ``None`` when it is not installed or ``AIGCLABEL_OCR=tesseract`` asks for the fallback."""
    return None if os.environ.get("AIGCLABEL_OCR") == "tesseract" else _load_rapidocr()


@functools.cache
def _load_rapidocr() -> Any:
    try:
        from rapidocr import RapidOCR
    except ImportError:
        return None
    threads = int(os.environ.get("AIGCLABEL_OCR_THREADS", "1"))
    return RapidOCR(
        params={
            "Global.log_level": "critical",
            "Global.use_cls": False,
            "Global.max_side_len": 4096,
            "Det.limit_type": "max",
            "Det.limit_side_len": OCR_SIDE,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            # onnxruntime's memory arena keeps the detection model's buffers between pictures instead of
            # allocating them for every run: ~10 % less CPU per run, outputs identical (RapidOCR turns it off).
            "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
        }
    )


@functools.cache
def _tesseract_exe() -> str | None:
    return shutil.which("tesseract")


def downscale(image: Image.Image, side: int = OCR_SIDE) -> tuple[Image.Image, float]:
    """An RGB copy at most ``side`` px on the long side, and the factor back to ``image``'s pixels."""
    rgb = image.convert("RGB")
    scale = max(rgb.width, rgb.height) / side
    if scale <= 1:
        return rgb, 1.0
    small = rgb.resize((max(1, round(rgb.width / scale)), max(1, round(rgb.height / scale))), Image.Resampling.BOX)
    return small, rgb.width / small.width


def stroke_density(small: Image.Image | npt.NDArray[np.uint8], *, enough: float | None = None) -> float:
    """The highest share of stroke pixels in any text-line-sized window of ``small`` at any scale.

    Strokes are found by morphological top-hat and black-hat (what a :data:`STROKE_KERNEL` square
    opening or closing removes) in each colour channel, so red text on an equally bright green counts;
    the coarser scales catch the wide strokes of large glyphs. Costs ~0.5 ms on a 448 px copy. ``small``
    is an RGB picture or array; with ``enough``, the coarser scales are not read once a share reaches it.
    """
    rgb = np.asarray(small.convert("RGB")) if isinstance(small, Image.Image) else small
    if min(rgb.shape[:2]) < 4 * max(STROKE_WINDOW):
        return 1.0  # too small for the windows to mean anything (and cheap to read anyway)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (STROKE_KERNEL, STROKE_KERNEL))
    window = STROKE_WINDOW
    best = 0.0
    for level in range(STROKE_LEVELS):
        if level:
            if min(rgb.shape[:2]) // 2 < 2 * max(window) or (enough is not None and best >= enough):
                break
            rgb = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
        both = cv2.max(
            cv2.morphologyEx(rgb, cv2.MORPH_TOPHAT, kernel), cv2.morphologyEx(rgb, cv2.MORPH_BLACKHAT, kernel)
        )
        # The strongest channel per pixel: a 1x3 dilation over interleaved channels, every third column.
        flat = both.reshape(both.shape[0], -1)
        strongest = np.ascontiguousarray(cv2.dilate(flat, np.ones((1, 3), np.uint8))[:, 1::3])
        strokes = (strongest > STROKE_CONTRAST).astype(np.uint8)
        counts = cv2.boxFilter(strokes, cv2.CV_16U, window, normalize=False)
        best = max(best, float(counts.max()) / (window[0] * window[1]))
    return best


def may_hold_text(small: Image.Image | npt.NDArray[np.uint8]) -> bool:
    """False when no text the detection model could read can be on ``small`` (the copy it would read, or
    :func:`gate_copy`'s): no window of it holds strokes as dense as any readable line. A cheap test run
    before the model."""
    return stroke_density(small, enough=MIN_STROKE_DENSITY) >= MIN_STROKE_DENSITY


def gate_copy(pixels: npt.NDArray[np.uint8], side: int = OCR_SIDE) -> npt.NDArray[np.uint8]:
    """What :func:`may_hold_text` reads of a picture's pixels (H x W x 3 or 4, alpha ignored): halved by 2x2
    area means (a last odd row or column dropped) while its long side is at least 1.5 ``side``, so it
    ends between 0.75 and 1.5 times the detection copy's size (unchanged when already below).

    ~0.7 ms from a 2 MP decode (1600 px halved twice, to 400), where the detection copy (:func:`downscale`
    of the search copy) costs ~2.5 ms and a non-integer area resize ~4 ms, so a picture the pre-filter
    skips never pays for those.
    """
    pixels = pixels[..., :3]
    while max(pixels.shape[:2]) >= 1.5 * side:
        pixels = halve(pixels)
    return np.ascontiguousarray(pixels)


def halve(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``pixels`` halved by 2x2 area means (a last odd row or column dropped): OpenCV's, which on even sizes
    gives Pillow's ``reduce(2)`` bit for bit ((sum + 2) >> 2) at a third of its cost."""
    height, width = pixels.shape[0] // 2, pixels.shape[1] // 2
    even = np.ascontiguousarray(pixels[: height * 2, : width * 2])
    return np.asarray(cv2.resize(even, (width, height), interpolation=cv2.INTER_AREA))


def may_hold_text_in(image: Image.Image, pixels: npt.NDArray[np.uint8] | None = None) -> bool:
    """:func:`may_hold_text` on :func:`gate_copy` of ``image`` (its array ``pixels`` when the caller has it)."""
    if pixels is None or pixels.ndim != 3:
        pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return may_hold_text(gate_copy(pixels))


def ocr_lines(
    image: Image.Image, side: int = OCR_SIDE, *, small: tuple[Image.Image, float] | None = None
) -> list[TextLine]:
    """Every line of text OCR reads on ``image`` (boxes in ``image``'s pixels), empty without an engine;
    ``small`` is ``downscale(image, side)`` when the caller has it already."""
    _budget.check("OCR")
    copy, scale = small or downscale(image, side)
    engine = _rapidocr()
    if engine is None:
        lines = [TextLine(line.text, _scaled(line.box, scale), line.score) for line in _tesseract_lines(copy)]
    else:
        lines = _rapid_lines(engine, copy, image.convert("RGB"), scale)
    return _merge_lines(lines)


def _scaled(box: Box, scale: float) -> Box:
    x0, y0, x1, y1 = box
    return round(x0 * scale), round(y0 * scale), round(x1 * scale), round(y1 * scale)


def _rapid_lines(engine: Any, small: Image.Image, image: Image.Image, scale: float) -> list[TextLine]:
    """Text lines found on ``small`` and read on ``image`` (``scale`` times larger).

    The detection model's cost grows with the pixels it sees, so it runs on the small copy; the
    recogniser then reads each line it found on the full picture, where small labels are sharp."""
    result = engine(np.asarray(small), use_det=True, use_cls=False, use_rec=False)
    boxes = getattr(result, "boxes", None)
    if boxes is None:
        return []
    found = []
    for box in boxes:
        xs, ys = [p[0] for p in box], [p[1] for p in box]
        width, height = max(xs) - min(xs), max(ys) - min(ys)
        if width >= 0.9 * small.width and height >= 0.9 * small.height and width < 2 * height:
            continue  # the whole frame: the model's answer to fine texture or noise, not a line of text
        box_px = _scaled((int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1), scale)
        text, score = _read_crop(engine, image, box_px)
        if score >= MIN_SCORE and text.strip():
            found.append(TextLine(text, box_px, score))
    return found


def _crop_line(image: Image.Image, box: Box) -> Image.Image:
    """The line in ``box`` with a margin, 48 px tall as the recogniser reads it (tiny text reads better
    enlarged; a tall crop is reduced here, averaging its pixels, rather than resampled by the engine)."""
    x0, y0, x1, y1 = box
    pad = max(2, (y1 - y0) // 6)
    crop = image.crop((max(0, x0 - pad), max(0, y0 - pad), x1 + pad, y1 + pad))
    if 0 < crop.height < 48:
        factor = 48 / crop.height
        crop = crop.resize((max(1, round(crop.width * factor)), 48), Image.Resampling.BICUBIC)
    elif crop.height > 96:
        factor = 48 / crop.height
        crop = crop.resize((max(1, round(crop.width * factor)), 48), Image.Resampling.BOX)
    return crop


def _read_crop(engine: Any, image: Image.Image, box: Box) -> tuple[str, float]:
    """RapidOCR's reading of the line in ``box`` and its lowest confidence (``("", 0.0)`` for none)."""
    _budget.check("OCR")
    result = engine(np.asarray(_crop_line(image, box)), use_det=False, use_cls=False, use_rec=True)
    texts = getattr(result, "txts", None) or ()
    scores = [float(s) for s in getattr(result, "scores", None) or ()]
    return "".join(str(t) for t in texts), min(scores, default=0.0)


def _tesseract_lines(image: Image.Image) -> list[TextLine]:
    exe = _tesseract_exe()
    if exe is None:
        return []
    buf = io.BytesIO()
    # Light text on a colourful plate reads only once the picture is grey with its contrast stretched.
    ImageOps.autocontrast(image.convert("L")).save(buf, format="PNG")
    try:
        done = subprocess.run(
            [exe, "stdin", "stdout", "-l", "chi_sim+eng", "--psm", "11", "tsv"],
            input=buf.getvalue(),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    words: dict[tuple[str, ...], list[tuple[str, Box, float]]] = {}
    for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) != 12 or not cols[11].strip() or float(cols[10]) < MIN_SCORE * 100:
            continue
        x, y, w, h = (int(v) for v in cols[6:10])
        words.setdefault(tuple(cols[1:5]), []).append((cols[11].strip(), (x, y, x + w, y + h), float(cols[10]) / 100))
    lines = []
    for group in words.values():
        boxes = [b for _, b, _ in group]
        box = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        lines.append(TextLine("".join(t for t, _, _ in group), box, min(s for _, _, s in group)))
    return lines


def _merge_lines(lines: list[TextLine]) -> list[TextLine]:
    """Join boxes on one text line that OCR split ("AI" and "生成" drawn apart)."""
    merged: list[TextLine] = []
    for line in sorted(lines, key=lambda item: item.box[0]):
        x0, y0, x1, y1 = line.box
        for i, other in enumerate(merged):
            a0, b0, a1, b1 = other.box
            height = max(y1 - y0, b1 - b0)
            same_row = abs((y0 + y1) - (b0 + b1)) / 2 <= 0.35 * height and 0.6 <= (y1 - y0) / max(1, b1 - b0) <= 1.7
            if same_row and 0 <= x0 - a1 <= 1.2 * height:
                merged[i] = TextLine(
                    other.text + line.text, (a0, min(y0, b0), max(x1, a1), max(y1, b1)), min(line.score, other.score)
                )
                break
        else:
            merged.append(line)
    return merged


def ink_height(gray: npt.NDArray[np.floating[Any]], box: Box) -> int:
    """Height in pixels of the characters inside an OCR ``box`` of a grey picture.

    The detector's box is padded, so it is not the character height. The crop around it is split in
    two at Otsu's threshold; in each polarity the glyphs are the connected pieces that stay inside
    the crop (the plate or the picture around the text touches its border), cross the middle of
    the text line (picture blobs above or below it do not) and are not as wide as the whole line (a
    plate). The polarity whose pieces cover more of the line's width is the text; its pieces' row
    span is the character height.
    """
    x0, y0, x1, y1 = box
    line = y1 - y0
    pad = max(2, line // 5)
    top, left = max(0, y0 - pad), max(0, x0 - pad)
    crop = np.clip(gray[top : min(gray.shape[0], y1 + pad), left : min(gray.shape[1], x1 + pad)], 0, 255)
    if crop.shape[0] < 4 or crop.shape[1] < 4:
        return line
    threshold, _ = cv2.threshold(crop.astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    middle = (y0 + y1) / 2 - top
    best: tuple[float, int] | None = None
    for mask in (crop > threshold, crop <= threshold):
        labels, count = ndimage.label(mask)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        cover = np.zeros(crop.shape[1], dtype=bool)
        rows: list[tuple[int, int]] = []
        for index, found in enumerate(ndimage.find_objects(labels)):
            if found is None:
                continue
            r0, r1, c0, c1 = found[0].start, found[0].stop, found[1].start, found[1].stop
            inside = r0 > 0 and c0 > 0 and r1 < crop.shape[0] and c1 < crop.shape[1]
            glyph_like = r1 - r0 <= 1.2 * line and c1 - c0 <= 0.8 * crop.shape[1]
            on_line = r0 <= middle + 0.1 * line and r1 >= middle - 0.1 * line
            if inside and glyph_like and on_line and sizes[index] >= max(4, 0.0005 * crop.size):
                cover[c0:c1] = True
                rows.append((r0, r1))
        if rows and (best is None or cover.mean() > best[0]):
            best = (float(cover.mean()), max(r for _, r in rows) - min(r for r, _ in rows))
    return best[1] if best else line


def position_of(box: Box, width: int, height: int) -> Position:
    """Corner, edge or centre: where ``box`` lies in a ``width`` x ``height`` picture."""
    x0, y0, x1, y1 = box
    near_x = min(x0, width - x1) <= EDGE_BAND * width
    near_y = min(y0, height - y1) <= EDGE_BAND * height
    if near_x and near_y:
        return "corner"
    return "edge" if near_x or near_y else "centre"


def measure_line(gray: npt.NDArray[np.floating[Any]], line: TextLine) -> ImageTextLabel:
    """Measure one OCR line on the full-resolution grey picture ``gray``."""
    height, width = gray.shape[:2]
    return ImageTextLabel(
        text=line.text,
        box=line.box,
        glyph_height=ink_height(gray, line.box),
        short_side=min(width, height),
        position=position_of(line.box, width, height),
        has_generation=has_generation_element(line.text),
        score=line.score,
    )


def grey(image: Image.Image) -> npt.NDArray[np.float32]:
    """The picture as a float grey array (what :func:`measure_line` measures on)."""
    return np.asarray(image.convert("L"), dtype=np.float32)


def find_image_labels(
    image: Image.Image, side: int = OCR_SIDE, *, small: tuple[Image.Image, float] | None = None
) -> list[ImageTextLabel]:
    """Lines on ``image`` carrying the AI element, best first (both elements, then taller); ``small`` as
    for :func:`ocr_lines`."""
    lines = [line for line in ocr_lines(image, side, small=small) if has_ai_element(line.text)]
    if not lines:
        return []
    gray = grey(image)
    found = [measure_line(gray, line) for line in lines]
    return sorted(found, key=lambda item: (not item.has_generation, -item.glyph_height))


def read_box(image: Image.Image, box: Box) -> str:
    """The text recognised inside ``box`` alone (a cheap re-read, e.g. the same label on a later frame)."""
    _budget.check("OCR")
    crop = _crop_line(image.convert("RGB"), box)
    engine = _rapidocr()
    if engine is None:
        return "".join(line.text for line in _tesseract_lines(crop))
    result = engine(np.asarray(crop), use_det=False, use_cls=False, use_rec=True)
    texts = getattr(result, "txts", None) or ()
    scores = getattr(result, "scores", None) or ()
    return "".join(str(t) for t, s in zip(texts, scores, strict=False) if float(s) >= MIN_SCORE)
