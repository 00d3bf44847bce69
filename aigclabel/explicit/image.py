"""Visible labels on images (GB 45438 §5.2) and the locator :mod:`aigclabel.check` uses to verify them.

The label is a text prompt on an opaque plate at a corner or edge. Its size is set from the
*measured* ink height of each rendered glyph (not the nominal font size, which includes
ascent/descent padding): the shortest letter or digit, Latin "AI" and flat CJK glyphs such as "工"
included, is at least 5 % of the shortest side plus a margin, as strict readings of §5.2 require.
The plate colour is chosen from the luminance of the background it covers, so the plate stands out
from the picture and the text has a WCAG contrast ratio far above 4.5 against the plate.

Pixels must be re-encoded to draw the label, but the metadata is carried over (EXIF, ICC profile,
XMP, PNG text chunks, comments), and the implicit AIGC label is re-checked and re-applied through
:mod:`aigclabel.api`.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageOps, ImageSequence, JpegImagePlugin, PngImagePlugin

from .. import _decode  # noqa: F401  (importing it lets Pillow open HEIC/AVIF)
from .._extras import needs_extra
from .._io import atomic_output
from ..errors import (
    ExplicitLabelError,
    InvalidLabelError,
    LimitExceededError,
    MalformedFileError,
    UnsupportedFormatError,
)
from ._implicit import ImplicitPolicy, read_implicit, restore_implicit
from .fonts import load_font
from .text import DEFAULT_LABEL, validate_label_text

with needs_extra("media"):
    from scipy import ndimage

Placement = Literal["bottom-right", "bottom-left", "top-right", "top-left", "bottom", "top"]
RGB = tuple[int, int, int]

#: GB 45438 §5.2 / §5.4: character height >= 5 % of the shortest side.
MIN_HEIGHT_RATIO = 0.05
#: We aim this much above the threshold so resampling or lossy coding cannot push us under it.
SAFETY_MARGIN = 0.08
#: The two plates: dark plate with white text, light plate with near-black text.
DARK_PLATE: tuple[RGB, RGB] = ((24, 24, 24), (255, 255, 255))
LIGHT_PLATE: tuple[RGB, RGB] = ((248, 248, 248), (16, 16, 16))
#: Colour tolerance (max channel difference) of the locator, wide enough for JPEG/x264 at high quality.
LOCATE_TOLERANCE = 56
#: Second, tight plate tolerance, tried when the wide one finds nothing: a plate drawn over a dark (or
#: light) subject merges with it at the wide tolerance; our flat plate colour (24 or 248) still
#: separates from pure black/white and most picture content at this one, even after JPEG q75.
LOCATE_TIGHT_TOLERANCE = 16


def relative_luminance(rgb: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """WCAG 2.x relative luminance of sRGB values in 0..255 (last axis = channels)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    result: npt.NDArray[np.float64] = lin[..., 0] * 0.2126 + lin[..., 1] * 0.7152 + lin[..., 2] * 0.0722
    return result


def contrast_ratio(l1: float, l2: float) -> float:
    """WCAG contrast ratio of two relative luminances (1..21)."""
    hi, lo = max(l1, l2), min(l1, l2)
    return (hi + 0.05) / (lo + 0.05)


def _cjk(text: str) -> str:
    return "".join(ch for ch in text if "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff")


def ink_box(text: str, size: int, font_path: str | None = None) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the inked pixels of ``text`` drawn at the origin."""
    font = load_font(size, font_path)
    _left, _top, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (int(right) + 4, int(bottom) + 4), 0)
    ImageDraw.Draw(canvas).text((0, 0), text, font=font, fill=255)
    box = canvas.point(lambda v: 255 if v >= 128 else 0).getbbox()
    if box is None:
        raise InvalidLabelError(f"label text {text!r} renders no visible glyphs")
    return box


def glyph_height(text: str, size: int, font_path: str | None = None) -> int:
    """Measured ink height in pixels of the Chinese characters of ``text`` at ``size`` (the label line)."""
    cjk = _cjk(text) or text
    _x0, y0, _x1, y1 = ink_box(cjk, size, font_path)
    return y1 - y0


def smallest_glyph_height(text: str, size: int, font_path: str | None = None) -> int:
    """Ink height in pixels of the shortest letter or digit of ``text`` at ``size``, Latin included.

    Strict inspectors read §5.2's 5 % per glyph, so "AI" in "AI生成" and a flat CJK glyph such as
    "工" must reach it too, not only the line. Punctuation and spaces are not characters of the
    prompt's wording and are skipped. Each glyph is rasterised alone, as :func:`ink_box` does.
    """
    glyphs = {ch for ch in text if unicodedata.category(ch)[0] in "LN"} or {text}
    heights = []
    for glyph in glyphs:
        _x0, y0, _x1, y1 = ink_box(glyph, size, font_path)
        heights.append(y1 - y0)
    return min(heights)


@dataclass(frozen=True)
class LabelLayout:
    """Where and how big the label is drawn on a canvas of ``canvas`` size."""

    text: str
    canvas: tuple[int, int]
    font_size: int
    glyph_height: int
    plate: tuple[int, int, int, int]
    text_origin: tuple[int, int]
    placement: Placement
    #: Ink height of the shortest letter or digit (what the size is chosen from).
    smallest_glyph: int = 0

    @property
    def glyph_ratio(self) -> float:
        """Glyph height over the shortest side of the canvas."""
        return self.glyph_height / min(self.canvas)

    @property
    def smallest_glyph_ratio(self) -> float:
        """The shortest glyph's ink height over the shortest side of the canvas."""
        return self.smallest_glyph / min(self.canvas)


def plan_label(
    canvas: tuple[int, int],
    *,
    text: str = DEFAULT_LABEL,
    placement: Placement = "bottom-right",
    height_ratio: float = MIN_HEIGHT_RATIO,
    font_path: str | None = None,
) -> LabelLayout:
    """Size and place the label so every glyph's measured ink height is >= ``height_ratio`` of the shortest
    side, with :data:`SAFETY_MARGIN` on top (the shortest letter or digit decides, Latin included)."""
    validate_label_text(text)
    if height_ratio < MIN_HEIGHT_RATIO:
        raise InvalidLabelError(f"height ratio {height_ratio} is below the 5 % GB 45438 §5.2 requires")
    width, height = canvas
    short = min(width, height)
    if short < 20:
        raise InvalidLabelError(f"{width}x{height} is too small for a legible label")
    target = max(8, math.ceil(short * height_ratio * (1 + SAFETY_MARGIN)))
    size = max(8, round(target / 0.85))
    for _ in range(12):
        smallest = smallest_glyph_height(text, size, font_path)
        if smallest >= target:
            break
        size += max(1, math.ceil((target - smallest) * size / max(1, smallest) * 0.95))
    else:  # pragma: no cover - a font whose glyphs do not grow with size
        raise InvalidLabelError("could not size the label font")
    x0, y0, x1, y1 = ink_box(text, size, font_path)
    pad = max(3, round(target * 0.35))
    plate_w, plate_h = (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad
    edge = max(2, round(short * 0.02))
    if plate_w + 2 * edge > width or plate_h + 2 * edge > height:
        raise InvalidLabelError(
            f"label {text!r} at {target}px glyph height does not fit a {width}x{height} image; use a shorter text"
        )
    if placement.endswith("right"):
        px = width - edge - plate_w
    elif placement.endswith("left"):
        px = edge
    elif placement in ("top", "bottom"):
        px = (width - plate_w) // 2
    else:
        raise ExplicitLabelError(f"unknown label placement {placement!r}; use one of {', '.join(get_args(Placement))}")
    py = edge if placement.startswith("top") else height - edge - plate_h
    return LabelLayout(
        text=text,
        canvas=(width, height),
        font_size=size,
        glyph_height=glyph_height(text, size, font_path),
        smallest_glyph=smallest,
        plate=(px, py, px + plate_w, py + plate_h),
        text_origin=(px + pad - x0, py + pad - y0),
        placement=placement,
    )


@dataclass(frozen=True)
class PlateColours:
    """Chosen colours and the measured contrast ratios."""

    plate: RGB
    text: RGB
    text_contrast: float
    background_contrast: float


def choose_colours(image: Image.Image, layout: LabelLayout) -> PlateColours:
    """Pick the plate that contrasts most with the background it will cover."""
    x0, y0, x1, y1 = layout.plate
    grow = max(2, (y1 - y0) // 4)
    region = image.crop((max(0, x0 - grow), max(0, y0 - grow), x1 + grow, y1 + grow)).convert("RGB")
    background = float(relative_luminance(np.asarray(region)).mean())
    candidates = []
    for plate, ink in (DARK_PLATE, LIGHT_PLATE):
        lp, li = float(relative_luminance(plate)), float(relative_luminance(ink))
        candidates.append(PlateColours(plate, ink, contrast_ratio(lp, li), contrast_ratio(lp, background)))
    return max(candidates, key=lambda c: c.background_contrast)


def draw_label(
    image: Image.Image, layout: LabelLayout, colours: PlateColours | None = None, font_path: str | None = None
) -> PlateColours:
    """Draw the plate and text onto ``image`` (RGB or RGBA, modified in place); returns the colours used."""
    if image.size != layout.canvas:
        raise ExplicitLabelError(
            f"the label layout was planned for a {layout.canvas[0]}x{layout.canvas[1]} image, but this one is "
            f"{image.size[0]}x{image.size[1]}; plan it again for this image"
        )
    colours = colours or choose_colours(image, layout)
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = layout.plate
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colours.plate)
    draw.text(layout.text_origin, layout.text, font=load_font(layout.font_size, font_path), fill=colours.text)
    return colours


def render_plate(layout: LabelLayout, font_path: str | None = None) -> Image.Image:
    """The label plate alone (dark plate, white text), for surfaces with no picture behind it to sample."""
    plate, ink = DARK_PLATE
    canvas = Image.new("RGB", layout.canvas, plate)
    contrast = contrast_ratio(float(relative_luminance(plate)), float(relative_luminance(ink)))
    draw_label(canvas, layout, PlateColours(plate, ink, contrast, contrast), font_path)
    return canvas.crop(layout.plate)


@dataclass(frozen=True)
class ImageLabelResult:
    """What :func:`add_image_label` did."""

    path: Path
    layout: LabelLayout
    colours: PlateColours
    implicit_label_kept: bool


def _label_animation(
    opened: Image.Image,
    src: Path,
    dst: Path,
    text: str,
    placement: Placement,
    height_ratio: float,
    font_path: str | None,
) -> tuple[LabelLayout, PlateColours]:
    """Label every frame of an animated GIF/WebP/PNG (shown like a video, so the label stays on)."""
    fmt = opened.format or ""
    if fmt not in ("GIF", "WEBP", "PNG"):
        raise UnsupportedFormatError(f"{src}: animated {fmt or 'image'} files are not supported")
    layout = plan_label(opened.size, text=text, placement=placement, height_ratio=height_ratio, font_path=font_path)
    frames: list[Image.Image] = []
    durations: list[int] = []
    colours: PlateColours | None = None
    for frame in ImageSequence.Iterator(opened):
        canvas = frame.convert("RGBA")
        colours = draw_label(canvas, layout, colours, font_path)
        frames.append(canvas)
        durations.append(int(frame.info.get("duration", 100)))
    if colours is None:
        raise MalformedFileError(f"{src}: animation has no frames")
    kwargs: dict[str, Any] = {"save_all": True, "append_images": frames[1:], "duration": durations}
    kwargs["loop"] = int(opened.info.get("loop", 0))
    if fmt == "GIF":
        kwargs["disposal"] = 2
        if opened.info.get("comment"):
            kwargs["comment"] = opened.info["comment"]
    elif fmt == "WEBP":
        kwargs["quality"] = 95
        if opened.info.get("xmp"):
            kwargs["xmp"] = opened.info["xmp"]
    with atomic_output(dst, mode_from=src) as tmp:
        frames[0].save(tmp, format=fmt, **kwargs)
    return layout, colours


def _save_kwargs(src: Image.Image, fmt: str, exif: bytes | None, xmp: bytes | str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if src.info.get("icc_profile"):
        kwargs["icc_profile"] = src.info["icc_profile"]
    if exif:
        kwargs["exif"] = exif
    if fmt == "JPEG":
        kwargs["quality"] = 95
        if isinstance(src, JpegImagePlugin.JpegImageFile):
            sampling = JpegImagePlugin.get_sampling(src)
            if sampling >= 0:
                kwargs["subsampling"] = sampling
        if src.info.get("progressive") or src.info.get("progression"):
            kwargs["progressive"] = True
        if src.info.get("dpi"):
            kwargs["dpi"] = src.info["dpi"]
        if src.info.get("comment"):
            kwargs["comment"] = src.info["comment"]
        if xmp:
            kwargs["xmp"] = xmp if isinstance(xmp, bytes) else xmp.encode()
    elif fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for key, value in getattr(src, "text", {}).items():
            if key == "XML:com.adobe.xmp":
                continue
            if value.isascii():
                info.add_text(key, value)
            else:
                info.add_itxt(key, value)
        if xmp:
            info.add_itxt("XML:com.adobe.xmp", xmp.decode() if isinstance(xmp, bytes) else xmp)
        kwargs["pnginfo"] = info
        if src.info.get("dpi"):
            kwargs["dpi"] = src.info["dpi"]
    elif fmt in ("WEBP", "AVIF", "HEIF"):
        kwargs["quality"] = 95
        if xmp:
            kwargs["xmp"] = xmp if isinstance(xmp, bytes) else xmp.encode()
    elif fmt == "TIFF":
        if xmp:
            kwargs["tiffinfo"] = {700: xmp if isinstance(xmp, bytes) else xmp.encode()}
        kwargs["compression"] = src.info.get("compression", "tiff_lzw") or "tiff_lzw"
    elif fmt == "GIF" and src.info.get("comment"):
        kwargs["comment"] = src.info["comment"]
    return kwargs


def add_image_label(
    src: Path | str,
    dst: Path | str,
    *,
    text: str = DEFAULT_LABEL,
    placement: Placement = "bottom-right",
    height_ratio: float = MIN_HEIGHT_RATIO,
    implicit: ImplicitPolicy = "require",
    font_path: str | None = None,
) -> ImageLabelResult:
    """Write ``src`` with a visible label to ``dst`` (same format), keeping metadata and the implicit label.

    ``implicit="require"`` reads the implicit label through :mod:`aigclabel.api` before and verifies
    (re-applying it if needed) after, raising :class:`UnsupportedFormatError` if no container module
    handles the format; ``"if-supported"`` skips that step when the format has no container module
    (the metadata is still copied verbatim).
    """
    src, dst = Path(src), Path(dst)
    before = read_implicit(src, implicit)
    try:
        with Image.open(src) as opened:
            opened.load()
            fmt = opened.format or ""
            if getattr(opened, "n_frames", 1) > 1:
                layout, colours = _label_animation(opened, src, dst, text, placement, height_ratio, font_path)
                kept = restore_implicit(dst, before, implicit)
                return ImageLabelResult(path=dst, layout=layout, colours=colours, implicit_label_kept=kept)
            info = dict(opened.info)
            exif_obj = opened.getexif()
            oriented = (ImageOps.exif_transpose(opened) or opened) if exif_obj.get(0x0112, 1) != 1 else opened
            if oriented is not opened:
                exif_obj[0x0112] = 1  # the pixels are now upright; keep the tag consistent with them
            exif = exif_obj.tobytes() if len(exif_obj) else info.get("exif")
            xmp = oriented.info.get("xmp") or info.get("xmp")
            mode = "RGBA" if ("A" in opened.mode or "transparency" in info) else "RGB"
            canvas = oriented.convert(mode)
            layout = plan_label(
                canvas.size, text=text, placement=placement, height_ratio=height_ratio, font_path=font_path
            )
            colours = draw_label(canvas, layout, font_path=font_path)
            if opened.mode in ("L", "LA", "CMYK"):
                canvas = canvas.convert(opened.mode)  # keep grey/CMYK data matching its ICC profile
            elif fmt == "JPEG" or (fmt not in ("PNG", "WEBP", "TIFF", "HEIF", "AVIF") and mode == "RGBA"):
                canvas = canvas.convert("RGB")
            kwargs = _save_kwargs(opened, fmt, exif, xmp)
            with atomic_output(dst, mode_from=src) as tmp:
                canvas.save(tmp, format=fmt, **kwargs)
    except Image.DecompressionBombError as exc:
        raise LimitExceededError(f"{src}: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InvalidLabelError):
            raise
        raise MalformedFileError(f"{src}: cannot draw a label on this image ({exc})") from exc
    kept = restore_implicit(dst, before, implicit)
    return ImageLabelResult(path=dst, layout=layout, colours=colours, implicit_label_kept=kept)


@dataclass(frozen=True)
class LocatedLabel:
    """A visible label found on an image by :func:`locate_label`."""

    plate: tuple[int, int, int, int]
    ink: tuple[int, int, int, int]
    dark_plate: bool
    short_side: int

    @property
    def glyph_height(self) -> int:
        """Ink height in pixels."""
        return self.ink[3] - self.ink[1]

    @property
    def glyph_ratio(self) -> float:
        """Ink height over the shortest side."""
        return self.glyph_height / self.short_side


def _longest_run(flags: npt.NDArray[np.bool_]) -> tuple[int, int] | None:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    if edges.size == 0:
        return None
    starts, ends = edges[::2], edges[1::2]
    best = int(np.argmax(ends - starts))
    return int(starts[best]), int(ends[best])


def _refine(component: npt.NDArray[np.bool_]) -> tuple[int, int, int, int] | None:
    """Rows r0:r1 and columns c0:c1 of the solid plate inside a component's bounding box."""
    # With the glyph holes filled the plate is a solid rectangle: its rows and columns are all at
    # the maximum fill, while stray picture pixels attached to it fill only a fraction.
    solid = ndimage.binary_fill_holes(component)
    r0, r1, c0, c1 = 0, solid.shape[0], 0, solid.shape[1]
    for _ in range(3):
        row_fill = solid[:, c0:c1].mean(axis=1)
        rows = _longest_run(row_fill >= 0.8 * row_fill.max())
        if rows is None:
            return None
        r0, r1 = rows
        col_fill = solid[r0:r1].mean(axis=0)
        cols = _longest_run(col_fill >= 0.8 * col_fill.max())
        if cols is None:
            return None
        c0, c1 = cols
    return r0, r1, c0, c1


def _near(rgb: npt.NDArray[np.uint8], colour: RGB, tolerance: int) -> npt.NDArray[np.bool_]:
    """Pixels whose every channel is within ``tolerance`` (exclusive) of ``colour``.

    Same as ``abs(rgb - colour).max(axis=2) < tolerance`` but done as per-channel uint8 range tests:
    a widened int16 copy reduced over a 3-wide last axis was most of the locator's run time.
    """
    mask: npt.NDArray[np.bool_] | None = None
    for channel, centre in enumerate(colour):
        low, high = centre - tolerance, centre + tolerance  # open interval (low, high)
        plane = rgb[..., channel]
        tests = [*([plane > low] if low >= 0 else []), *([plane < high] if high <= 255 else [])]
        for test in tests:
            mask = test if mask is None else (mask & test)
    if mask is None:
        return np.ones(rgb.shape[:2], dtype=bool)
    return mask


def locate_label(image: Image.Image) -> LocatedLabel | None:
    """Find an aigclabel plate (dark or light) touching an edge zone of ``image``, or ``None``.

    The plate is a solid rectangle of one of our two plate colours with text-coloured ink inside it,
    near an edge (within 8 % of the shortest side) but not touching the border, as :func:`plan_label`
    draws it; so a letterbox bar with subtitles in it is not mistaken for a label.

    Speed (platforms run this on every upload): the colour masks are uint8 range tests, the
    per-component statistics come from one ``bincount``/``find_objects`` pass, and the cheap
    bounding-box tests (size, shape, edge zone) are applied to all components at once, so the costly
    hole filling runs only on the few components that can still be a plate, and the ink mask only
    inside them. The acceptance tests themselves are unchanged. When the usual colour tolerance finds
    nothing, a tight one is tried (:data:`LOCATE_TIGHT_TOLERANCE`), which separates a plate from a
    same-coloured subject it touches; it is stricter on colour, every other test is the same.
    """
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    best: LocatedLabel | None = None
    retry: list[tuple[RGB, RGB]] = []
    for plate, ink in (DARK_PLATE, LIGHT_PLATE):
        found, could_hide_plate = _locate(rgb, plate, ink, LOCATE_TOLERANCE)
        best = _taller(best, found)
        if could_hide_plate:
            retry.append((plate, ink))
    if best is None:
        # A tight-tolerance plate is a subset of a wide-tolerance component near the edge at least
        # 10x20 px; only colours that had one are worth the second pass.
        for plate, ink in retry:
            best = _taller(best, _locate(rgb, plate, ink, LOCATE_TIGHT_TOLERANCE)[0])
    return best


def _taller(best: LocatedLabel | None, found: LocatedLabel | None) -> LocatedLabel | None:
    """The candidate with the taller glyphs (the earlier one on a tie)."""
    if best is None or (found is not None and found.glyph_height > best.glyph_height):
        return found
    return best


def _locate(rgb: npt.NDArray[np.uint8], plate: RGB, ink: RGB, tolerance: int) -> tuple[LocatedLabel | None, bool]:
    """The best plate of one colour at one tolerance, and whether a component could hide a plate."""
    from .._opencv import cv2  # here, not at import: labelling a picture does not load OpenCV

    height, width = rgb.shape[:2]
    short = min(width, height)
    edge_zone = 0.08 * short
    best: LocatedLabel | None = None
    plate_mask = _near(rgb, plate, tolerance)
    # OpenCV's 4-connected labelling numbers the components as ndimage.label does (in the raster order of
    # their first pixels) at half its cost. Only a component reaching into the edge zone (a row at most
    # edge_zone from the top or bottom) can be a plate, so only those get a box, and only those of a
    # plate's shape a size: boxing and counting every component of a textured photo was most of the time.
    count, labels = cv2.connectedComponents(plate_mask.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    if count <= 1:
        return None, False
    reaches = np.zeros(count, dtype=bool)
    reaches[labels[: math.floor(edge_zone) + 1]] = True
    reaches[labels[max(0, math.ceil(height - 1 - edge_zone)) :]] = True
    reaches[0] = False
    near = np.flatnonzero(reaches)  # label values, ascending
    objects = ndimage.find_objects(labels)
    boxes = np.array(
        [(o[0].start, o[0].stop, o[1].start, o[1].stop) for o in (objects[i - 1] for i in near)],
        dtype=np.int64,
    ).reshape(-1, 4)
    bh, bw = boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]
    could_hide_plate = bool(np.any((bh >= 10) & (bw >= 20)))
    shaped = (bh >= 8) & (bw >= bh) & (bh <= 0.5 * height)
    sizes = np.zeros(len(near), dtype=np.int64)
    for j in np.flatnonzero(shaped):
        y0, y1, x0, x1 = boxes[j]
        sizes[j] = np.count_nonzero(labels[y0:y1, x0:x1] == near[j])
    candidates = np.flatnonzero(shaped & (sizes >= 0.3 * bh * bw))
    for j in candidates[np.argsort(sizes[candidates], kind="stable")[::-1][:20]]:
        y0, y1, x0, x1 = (int(v) for v in boxes[j])
        label = int(near[j])
        # Picture pixels that happen to have the plate colour can join the component; the plate
        # itself is the rectangle whose rows and columns are mostly plate-coloured.
        refined = _refine(labels[y0:y1, x0:x1] == label)
        if refined is None:
            continue
        r0, r1, c0, c1 = refined
        y0, y1, x0, x1 = y0 + r0, y0 + r1, x0 + c0, x0 + c1
        ph, pw = y1 - y0, x1 - x0
        if ph < 10 or pw < 2 * ph or min(y0, height - y1) > edge_zone:
            continue  # a label line is at least two characters wide
        if x0 == 0 or y0 == 0 or x1 == width or y1 == height:
            continue  # our plate keeps a margin; a bar touching the border is the picture's (letterbox)
        component = labels[y0:y1, x0:x1] == label
        # Glyphs are holes in the plate: ink touching the outside (noise, picture) does not count.
        ink_mask = _near(rgb[y0:y1, x0:x1], ink, LOCATE_TOLERANCE * 2)
        inside = ndimage.binary_fill_holes(component) & ~component & ink_mask
        rows, cols = np.nonzero(inside)
        if rows.size < 0.02 * ph * pw or rows.size > 0.7 * ph * pw:
            continue
        iy0, iy1, ix0, ix1 = int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1
        if iy1 - iy0 < 0.4 * ph or ix1 - ix0 < 0.6 * pw:
            continue  # the text fills the plate, with padding; a stroke fragment does not
        found = LocatedLabel(
            plate=(x0, y0, x1, y1),
            ink=(x0 + ix0, y0 + iy0, x0 + ix1, y0 + iy1),
            dark_plate=plate == DARK_PLATE[0],
            short_side=short,
        )
        best = _taller(best, found)
    return best, could_hide_plate
