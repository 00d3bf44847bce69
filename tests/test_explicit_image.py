"""Visible image labels (GB 45438 §5.2), measured on the output pixels, plus metadata carried over."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from aigclabel import AIGCLabel, api
from aigclabel.errors import InvalidLabelError, MalformedFileError, UnsupportedFormatError
from aigclabel.explicit import add_image_label, find_cjk_font, locate_label, plan_label
from aigclabel.explicit.image import glyph_height

from .conftest import require_module, require_tool

RNG = np.random.default_rng(45438)


def _wcag(rgb: npt.ArrayLike) -> float:
    """Relative luminance, written out here independently of the implementation."""
    c = np.asarray(rgb, dtype=float) / 255
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])


def _ratio(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    la, lb = sorted((_wcag(a), _wcag(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _measure(
    before: Image.Image, after: Image.Image, tol: int = 0
) -> tuple[tuple[int, int, int, int], int, tuple[Any, Any]]:
    """Changed region's bbox, ink height inside it, and the plate/ink colours, from pixel diffs alone."""
    a = np.asarray(before.convert("RGB"), dtype=int)
    b = np.asarray(after.convert("RGB"), dtype=int)
    changed = np.abs(a - b).max(axis=2) > tol
    ys, xs = np.nonzero(changed)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    region = b[box[1] : box[3], box[0] : box[2]].reshape(-1, 3)
    colours, counts = np.unique(region, axis=0, return_counts=True)
    plate = colours[counts.argmax()]
    far = np.abs(b[box[1] : box[3], box[0] : box[2]] - plate).max(axis=2)
    ink_colour = region[np.abs(region - plate).max(axis=1).argmax()]
    ink = far > 0.5 * np.abs(ink_colour - plate).max()
    rows = np.nonzero(ink.any(axis=1))[0]
    return box, int(rows.max() - rows.min() + 1), (tuple(plate), tuple(ink_colour))


def _noise(w: int, h: int) -> Image.Image:
    return Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(320, 240), (240, 320), (200, 200), (600, 90), (1000, 700)])
@pytest.mark.parametrize("placement", ["bottom-right", "top-left", "bottom", "top-right"])
def test_glyph_height_measured_on_output_is_at_least_5_percent(
    tmp_path: Path, size: tuple[int, int], placement: str
) -> None:
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    original = _noise(*size)
    original.save(src)
    result = add_image_label(src, dst, placement=placement, implicit="if-supported")  # type: ignore[arg-type]
    out = Image.open(dst)
    assert out.size == size
    box, ink_height, _ = _measure(original, out)
    short = min(size)
    assert ink_height >= 0.05 * short, (ink_height, short)
    assert ink_height == result.layout.glyph_height
    # on an edge or in a corner: within 3 % of the short side of the edges the placement names
    w, h = size
    edge = 0.03 * short
    assert (box[1] <= edge) if placement.startswith("top") else (h - box[3] <= edge)
    if placement.endswith("right"):
        assert w - box[2] <= edge
    elif placement.endswith("left"):
        assert box[0] <= edge
    else:
        assert abs((box[0] + box[2]) / 2 - w / 2) <= 1


def test_font_size_is_not_what_is_measured() -> None:
    # The nominal font size overstates the glyph: the sizing must come from the rendered mask.
    layout = plan_label((1000, 1000))
    assert layout.glyph_height == glyph_height("人工智能生成", layout.font_size)
    assert layout.glyph_height >= 50
    assert layout.glyph_height < layout.font_size + 1


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (128, 128, 128), (200, 30, 30), (20, 60, 200)])
def test_plate_contrast_against_text_and_background(tmp_path: Path, colour: tuple[int, int, int]) -> None:
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    original = Image.new("RGB", (320, 240), colour)
    original.save(src)
    add_image_label(src, dst, implicit="if-supported")
    _, _, (plate, ink) = _measure(original, Image.open(dst))
    assert _ratio(plate, ink) >= 4.5
    assert _ratio(plate, colour) >= 3.0  # the plate stands out from the picture


@pytest.mark.interop  # exiftool
def test_jpeg_keeps_exif_icc_xmp_label_and_subsampling(tmp_path: Path, demo_label: AIGCLabel) -> None:
    exiftool = require_tool("exiftool")
    src, dst = tmp_path / "in.jpg", tmp_path / "out.jpg"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 7"
    _noise(320, 240).save(src, quality=90, subsampling=1, exif=exif.tobytes(), icc_profile=icc)
    api.write_label(src, demo_label)
    src_digest = hashlib.sha256(src.read_bytes()).hexdigest()
    result = add_image_label(src, dst)
    assert hashlib.sha256(src.read_bytes()).hexdigest() == src_digest  # input untouched
    assert result.implicit_label_kept
    meta = json.loads(subprocess.run([exiftool, "-j", "-G", str(dst)], capture_output=True, check=True).stdout)[0]
    assert meta["EXIF:Make"] == "TestCam" and meta["EXIF:Model"] == "Model 7"
    assert meta["ICC_Profile:ProfileDescription"]
    with Image.open(dst) as out:
        assert out.info["icc_profile"] == icc
        assert JpegImagePlugin.get_sampling(out) == 1
    xmp = subprocess.run([exiftool, "-b", "-XMP", str(dst)], capture_output=True, check=True).stdout
    assert b"TC260:AIGC" in xmp and demo_label.produce_id.encode() in xmp
    inspection = api.inspect(dst)
    assert inspection.ok and inspection.label == demo_label and len(inspection.labels) == 1
    assert locate_label(Image.open(dst)) is not None


def test_exif_orientation_label_lands_on_the_displayed_corner(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.jpg", tmp_path / "out.jpg"
    stored = Image.new("RGB", (320, 240), (90, 160, 90))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW on display: displayed size is 240x320
    stored.save(src, quality=95, exif=exif.tobytes())
    add_image_label(src, dst, placement="bottom-right", implicit="if-supported")
    with Image.open(dst) as out:
        assert out.getexif().get(0x0112, 1) == 1
        assert out.size == (240, 320)
        located = locate_label(out)
    assert located is not None
    _x0, _y0, x1, y1 = located.plate
    assert x1 > 200 and y1 > 290  # bottom-right of the upright picture


def test_png_keeps_text_chunks_and_implicit_label(tmp_path: Path, demo_label: AIGCLabel) -> None:
    from PIL import PngImagePlugin

    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "keep me")
    info.add_itxt("Title", "标题")
    _noise(300, 200).save(src, pnginfo=info)
    api.write_label(src, demo_label)
    add_image_label(src, dst)
    with Image.open(dst) as out:
        text = getattr(out, "text", {})
        assert text["Comment"] == "keep me" and text["Title"] == "标题"
    assert api.read_label(dst) == demo_label
    assert api.inspect(dst).ok


@pytest.mark.parametrize("fmt", ["webp", "tiff", "gif"])
def test_other_formats_keep_the_implicit_label(tmp_path: Path, demo_label: AIGCLabel, fmt: str) -> None:
    src, dst = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    _noise(240, 200).save(src)
    api.write_label(src, demo_label)
    add_image_label(src, dst)
    assert api.read_label(dst) == demo_label
    with Image.open(dst) as out:
        assert out.format == Image.open(src).format
        assert locate_label(out) is not None


def test_invalid_label_text_and_tiny_images_are_rejected(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    _noise(320, 240).save(src)
    with pytest.raises(InvalidLabelError):
        add_image_label(src, tmp_path / "a.png", text="AI-generated", implicit="if-supported")
    with pytest.raises(InvalidLabelError):
        add_image_label(src, tmp_path / "b.png", height_ratio=0.03, implicit="if-supported")
    tiny = tmp_path / "tiny.png"
    _noise(16, 12).save(tiny)
    with pytest.raises(InvalidLabelError):
        add_image_label(tiny, tmp_path / "c.png", implicit="if-supported")
    assert not any(p.name in ("a.png", "b.png", "c.png") for p in tmp_path.iterdir())


def test_truncated_image_is_a_typed_error_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    buf = io.BytesIO()
    _noise(320, 240).save(buf, format="PNG")
    src.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(MalformedFileError):
        add_image_label(src, tmp_path / "out.png", implicit="if-supported")
    assert not (tmp_path / "out.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.png"]


def test_cjk_font_comes_from_the_project_dependencies() -> None:
    from importlib import resources

    font = find_cjk_font()
    assert font == Path(str(resources.files("pylopdf_fonts_zh_cn") / "NotoSansSC-Regular.otf"))


@pytest.mark.parametrize("mode", ["L", "RGB", "CMYK"])
def test_locator_finds_the_exact_plate_after_jpeg(tmp_path: Path, mode: str) -> None:
    src, dst = tmp_path / "in.jpg", tmp_path / "out.jpg"
    shape = (240, 320) if mode == "L" else (240, 320, len(mode))
    Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8), mode).save(src, quality=80)
    result = add_image_label(src, dst, implicit="if-supported")
    with Image.open(dst) as out:
        assert out.mode == mode
        located = locate_label(out)
    assert located is not None
    assert located.plate == result.layout.plate
    assert located.glyph_height == result.layout.glyph_height


def test_locator_reports_nothing_on_unlabelled_pictures() -> None:
    yy, xx = np.mgrid[0:240, 0:320]
    pictures = [
        Image.new("RGB", (320, 240), (0, 0, 0)),
        Image.new("RGB", (320, 240), (255, 255, 255)),
        Image.fromarray(np.dstack([xx * 255 // 319, yy * 255 // 239, 255 - xx * 255 // 319]).astype(np.uint8)),
        _noise(320, 240),
        Image.fromarray(((xx // 8 + yy // 8) % 2 * 230 + 12).astype(np.uint8)).convert("RGB"),  # checkerboard
    ]
    letterbox = _noise(320, 240)
    from PIL import ImageDraw

    from aigclabel.explicit.fonts import load_font

    draw = ImageDraw.Draw(letterbox)
    draw.rectangle((0, 200, 319, 239), fill=(0, 0, 0))  # black bar with a white subtitle
    draw.text((60, 205), "人工智能生成字幕", font=load_font(20), fill=(255, 255, 255))
    pictures.append(letterbox)
    for picture in pictures:
        assert locate_label(picture) is None


def test_heic_keeps_the_implicit_label(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src, dst = tmp_path / "in.heic", tmp_path / "out.heic"
    _noise(320, 240).save(src, format="HEIF")
    api.write_label(src, demo_label)
    result = add_image_label(src, dst)
    assert result.implicit_label_kept and api.inspect(dst).ok and api.read_label(dst) == demo_label
    with Image.open(dst) as out:
        assert out.format == "HEIF"
        located = locate_label(out)
    assert located is not None and located.glyph_ratio >= 0.05


def test_format_without_container_module_is_a_typed_error_unless_lenient(tmp_path: Path) -> None:
    src = tmp_path / "in.bmp"  # no container module handles BMP (it has no metadata slot)
    _noise(320, 240).save(src)
    with pytest.raises(UnsupportedFormatError, match="implicit label"):
        add_image_label(src, tmp_path / "out.bmp")
    assert not (tmp_path / "out.bmp").exists()
    result = add_image_label(src, tmp_path / "out.bmp", implicit="if-supported")
    assert not result.implicit_label_kept
    with Image.open(tmp_path / "out.bmp") as out:
        assert out.format == "BMP" and locate_label(out) is not None


@pytest.mark.parametrize("fmt", ["gif", "webp", "png"])
def test_animated_images_are_labelled_on_every_frame(tmp_path: Path, demo_label: AIGCLabel, fmt: str) -> None:
    from PIL import ImageSequence

    src, dst = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    frames = [_noise(160, 120) for _ in range(4)]
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=80, loop=0)
    api.write_label(src, demo_label)
    add_image_label(src, dst)
    assert api.read_label(dst) == demo_label
    with Image.open(dst) as out:
        assert getattr(out, "n_frames", 1) == 4
        seen = []
        for frame in ImageSequence.Iterator(out):
            frame.load()
            located = locate_label(frame.convert("RGB"))
            seen.append((located is not None and located.glyph_ratio >= 0.05, int(frame.info.get("duration", 0))))
    assert seen == [(True, 80)] * 4


# Real photographs (scikit-image's bundled samples; no download): dark coats, night sky, printed text
# on paper, high-contrast logos: the places a plate finder would raise false alarms.
PHOTOS = (
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "moon",
    "hubble_deep_field",
    "page",
    "text",
    "coins",
    "horse",
    "immunohistochemistry",
    "logo",
    "brick",
    "clock",
    "colorwheel",
)


def _photo(name: str) -> Image.Image:
    skdata = require_module("skimage.data")
    pixels = np.asarray(getattr(skdata, name)())
    if pixels.dtype != np.uint8:  # boolean/float samples (horse)
        pixels = (pixels.astype(float) * 255 / max(1.0, float(pixels.max()))).astype(np.uint8)
    return Image.fromarray(pixels).convert("RGB")


def test_locator_reports_nothing_on_real_photographs() -> None:
    for name in PHOTOS:
        photo = _photo(name)
        assert locate_label(photo) is None, name
        buffer = io.BytesIO()
        photo.save(buffer, format="JPEG", quality=75)
        assert locate_label(Image.open(buffer)) is None, f"{name} after JPEG q75"


@pytest.mark.parametrize(
    ("name", "placement"),
    [
        ("astronaut", "bottom-right"),
        ("coffee", "top-left"),
        ("rocket", "bottom"),
        ("moon", "top-right"),
        ("hubble_deep_field", "bottom-left"),
        ("immunohistochemistry", "top"),
        ("page", "bottom-right"),
    ],
)
def test_label_on_a_photograph_is_found_after_jpeg_q75(tmp_path: Path, name: str, placement: Any) -> None:
    src, dst = tmp_path / "photo.jpg", tmp_path / "labelled.jpg"
    _photo(name).save(src, quality=92)
    result = add_image_label(src, dst, placement=placement, implicit="if-supported")
    buffer = io.BytesIO()
    with Image.open(dst) as labelled:
        labelled.save(buffer, format="JPEG", quality=75)  # what a re-uploading platform might do
    located = locate_label(Image.open(buffer))
    assert located is not None
    assert all(abs(a - b) <= 2 for a, b in zip(located.plate, result.layout.plate, strict=True))
    assert located.glyph_ratio >= 0.05


@pytest.mark.parametrize("name", ["camera", "horse"])
def test_plate_touching_a_dark_subject_is_found(tmp_path: Path, name: str) -> None:
    # The dark plate lands on the cameraman's coat / the black horse: at the wide colour tolerance
    # plate and subject are one blob, too tall to be a plate.
    src, dst = tmp_path / "photo.jpg", tmp_path / "labelled.jpg"
    _photo(name).save(src, quality=92)
    result = add_image_label(src, dst, implicit="if-supported")
    buffer = io.BytesIO()
    with Image.open(dst) as labelled:
        labelled.save(buffer, format="JPEG", quality=75)
    for candidate in (Image.open(dst), Image.open(buffer)):
        located = locate_label(candidate)
        assert located is not None
        assert all(abs(a - b) <= 2 for a, b in zip(located.plate, result.layout.plate, strict=True))


def _glyph_heights(before: Image.Image, after: Image.Image) -> list[int]:
    """Ink height of each glyph in the output, glyphs split at the ink-free columns of the plate."""
    box, _, (plate, ink_colour) = _measure(before, after)
    b = np.asarray(after.convert("RGB"), dtype=int)[box[1] : box[3], box[0] : box[2]]
    ink = np.abs(b - np.asarray(plate)).max(axis=2) > 0.5 * np.abs(np.asarray(ink_colour) - plate).max()
    columns = np.concatenate([[False], ink.any(axis=0), [False]])
    edges = np.nonzero(np.diff(columns.astype(int)))[0].reshape(-1, 2)  # [start, stop) runs of inked columns
    heights = []
    for start, stop in edges:
        rows = np.nonzero(ink[:, start:stop].any(axis=1))[0]
        heights.append(int(rows.max() - rows.min() + 1))
    return heights


@pytest.mark.parametrize("text", ["AI生成", "人工智能生成"])
@pytest.mark.parametrize("size", [(1000, 700), (320, 240)])
def test_every_glyph_latin_included_is_at_least_5_percent(tmp_path: Path, text: str, size: tuple[int, int]) -> None:
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    original = _noise(*size)
    original.save(src)
    result = add_image_label(src, dst, text=text, implicit="if-supported")
    heights = _glyph_heights(original, Image.open(dst))
    assert len(heights) >= len(text), heights  # every glyph found (a CJK one may split at a blank column)
    short = min(size)
    assert min(heights) >= 0.052 * short, (heights, short)
    assert min(heights) == result.layout.smallest_glyph
