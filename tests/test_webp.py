"""WebP container: XMP chunk + VP8X flag, simple-to-extended conversion, chunk order, interop."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from aigclabel import AIGCLabel, api
from aigclabel.containers.webp import WebpContainer
from aigclabel.errors import MalformedFileError, TruncatedFileError
from aigclabel.xmp import new_packet

from ._tools import (
    FOREIGN_XMP,
    cut_and_flip,
    exiftool_label,
    exiftool_read,
    exiftool_write,
    fuzz_once,
    label_of,
    libxmp_read,
    libxmp_write,
    make_exif,
    pillow_xmp_label,
    pixels,
    same_pixels,
)


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(FourCC, payload) of every chunk; also checks the RIFF size and padding."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    found, at = [], 12
    while at < len(data):
        fourcc, size = struct.unpack("<4sI", data[at : at + 8])
        found.append((fourcc, data[at + 8 : at + 8 + size]))
        at += 8 + size + (size & 1)
    assert at == len(data)
    return found


def _rgba(seed: int = 1, size: tuple[int, int] = (41, 27)) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    array[..., 3] = np.where(array[..., 3] > 128, 255, 60)
    return Image.fromarray(array)


@pytest.fixture
def lossy(tmp_path: Path) -> Path:
    path = tmp_path / "lossy.webp"
    _rgba().convert("RGB").save(path, quality=80)
    return path


@pytest.fixture
def lossless_alpha(tmp_path: Path) -> Path:
    path = tmp_path / "alpha.webp"
    _rgba().save(path, lossless=True)
    return path


@pytest.fixture
def animated(tmp_path: Path) -> Path:
    path = tmp_path / "anim.webp"
    frames = [_rgba(seed) for seed in (1, 2, 3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=80, loop=0, lossless=True)
    return path


@pytest.fixture
def extended(tmp_path: Path) -> Path:
    """Extended WebP with ICC, EXIF and a foreign XMP packet, as Pillow writes it."""
    path = tmp_path / "ext.webp"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _rgba().convert("RGB").save(path, quality=80, icc_profile=icc, exif=make_exif(), xmp=FOREIGN_XMP)
    return path


def _check_lossless(before: bytes, after: bytes) -> None:
    kept = [c for c in riff_chunks(before) if c[0] not in (b"VP8X", b"XMP ")]
    assert [c for c in riff_chunks(after) if c[0] not in (b"VP8X", b"XMP ")] == kept


@pytest.mark.interop  # exiftool
def test_simple_lossy_becomes_extended(lossy: Path, tmp_path: Path, demo_label: AIGCLabel) -> None:
    before, before_pixels = lossy.read_bytes(), pixels(lossy)
    assert [c[0] for c in riff_chunks(before)] == [b"VP8 "]
    digest = WebpContainer().payload_digest(lossy)
    api.write_label(lossy, demo_label)
    after = lossy.read_bytes()
    parts = riff_chunks(after)
    assert [c[0] for c in parts] == [b"VP8X", b"VP8 ", b"XMP "]
    flags, width, height = parts[0][1][0], parts[0][1][4:7], parts[0][1][7:10]
    assert flags == 0x04
    assert (int.from_bytes(width, "little") + 1, int.from_bytes(height, "little") + 1) == (41, 27)
    _check_lossless(before, after)
    assert same_pixels(pixels(lossy), before_pixels)
    assert WebpContainer().payload_digest(lossy) == digest
    assert label_of(lossy) == [demo_label]
    assert exiftool_label(lossy) == demo_label.to_json()
    tags = exiftool_read(lossy)
    assert "ExifTool:Warning" not in tags and "ExifTool:Error" not in tags
    with Image.open(lossy) as image:
        assert pillow_xmp_label(image.info["xmp"]) == demo_label.to_json()

    api.strip_label(lossy)
    parts = riff_chunks(lossy.read_bytes())
    assert [c[0] for c in parts] == [b"VP8X", b"VP8 "] and parts[0][1][0] == 0
    assert api.read_labels(lossy) == [] and same_pixels(pixels(lossy), before_pixels)
    _check_lossless(before, lossy.read_bytes())


def test_lossless_alpha_sets_alpha_flag(lossless_alpha: Path, demo_label: AIGCLabel) -> None:
    before, before_pixels = lossless_alpha.read_bytes(), pixels(lossless_alpha)
    assert [c[0] for c in riff_chunks(before)] == [b"VP8L"]
    api.write_label(lossless_alpha, demo_label)
    api.write_label(lossless_alpha, demo_label)
    parts = riff_chunks(lossless_alpha.read_bytes())
    assert [c[0] for c in parts] == [b"VP8X", b"VP8L", b"XMP "]
    assert parts[0][1][0] == 0x10 | 0x04
    _check_lossless(before, lossless_alpha.read_bytes())
    assert same_pixels(pixels(lossless_alpha), before_pixels)
    assert label_of(lossless_alpha) == [demo_label]


def test_lossy_with_alpha_keeps_alph_chunk(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "lossy-alpha.webp"
    _rgba().save(path, quality=75)
    before, before_pixels = path.read_bytes(), pixels(path)
    assert [c[0] for c in riff_chunks(before)] == [b"VP8X", b"ALPH", b"VP8 "]
    api.write_label(path, demo_label)
    assert [c[0] for c in riff_chunks(path.read_bytes())] == [b"VP8X", b"ALPH", b"VP8 ", b"XMP "]
    _check_lossless(before, path.read_bytes())
    assert same_pixels(pixels(path), before_pixels) and label_of(path) == [demo_label]


@pytest.mark.interop  # exiftool
def test_animation_kept(animated: Path, tmp_path: Path, demo_label: AIGCLabel) -> None:
    before, before_pixels = animated.read_bytes(), pixels(animated)
    out = tmp_path / "out.webp"
    api.write_label(animated, demo_label, out)
    assert animated.read_bytes() == before
    parts = riff_chunks(out.read_bytes())
    assert parts[0][0] == b"VP8X" and parts[-1][0] == b"XMP "
    assert parts[0][1][0] & 0x02 and parts[0][1][0] & 0x04
    assert parts[0][1][1:] == riff_chunks(before)[0][1][1:]
    _check_lossless(before, out.read_bytes())
    assert len(before_pixels) == 3 and same_pixels(pixels(out), before_pixels)
    assert WebpContainer().payload_digest(out) == WebpContainer().payload_digest(animated)
    assert exiftool_label(out) == demo_label.to_json()


@pytest.mark.interop  # exiftool
def test_extended_keeps_icc_exif_and_foreign_xmp(extended: Path, tmp_path: Path, demo_label: AIGCLabel) -> None:
    before = extended.read_bytes()
    assert [c[0] for c in riff_chunks(before)] == [b"VP8X", b"ICCP", b"VP8 ", b"EXIF", b"XMP "]
    api.write_label(extended, demo_label)
    after = extended.read_bytes()
    parts = riff_chunks(after)
    assert [c[0] for c in parts] == [b"VP8X", b"ICCP", b"VP8 ", b"EXIF", b"XMP "]
    assert parts[0][1][0] == riff_chunks(before)[0][1][0] | 0x04
    _check_lossless(before, after)
    assert b"Sunset" in parts[-1][1]
    tags = exiftool_read(extended)
    assert tags.get("IFD0:Make") == "Camera" and tags.get("XMP-dc:Title") == "Sunset"
    assert "ICC_Profile:ProfileDescription" in tags
    api.strip_label(extended)
    parts = riff_chunks(extended.read_bytes())
    assert [c[0] for c in parts] == [b"VP8X", b"ICCP", b"VP8 ", b"EXIF", b"XMP "]
    assert b"Sunset" in parts[-1][1] and b"AIGC" not in parts[-1][1]
    _check_lossless(before, extended.read_bytes())


@pytest.mark.interop  # exiftool
def test_exiftool_and_libxmp_write_we_read_and_replace(lossy: Path, tmp_path: Path, demo_label: AIGCLabel) -> None:
    exiftool_write(lossy, demo_label.to_json(), tmp_path)
    assert label_of(lossy) == [demo_label]
    other = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(lossy, other)
    assert label_of(lossy) == [other] and exiftool_label(lossy) == other.to_json()
    assert libxmp_read(lossy) == other.to_json()

    # exempi 2.6.3 corrupts *simple* WebP files when it adds XMP (it drops the bitstream chunk's
    # header while converting to VP8X), so the guide's method is exercised on an extended file.
    fresh = tmp_path / "fresh.webp"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _rgba().save(fresh, lossless=True, icc_profile=icc)
    assert riff_chunks(fresh.read_bytes())[0][0] == b"VP8X"
    libxmp_write(fresh, demo_label.to_json())
    assert label_of(fresh) == [demo_label]
    api.write_label(fresh, other)
    assert label_of(fresh) == [other] and libxmp_read(fresh) == other.to_json()


def test_two_xmp_chunks_merge_to_one_label(lossy: Path, demo_label: AIGCLabel) -> None:
    data = lossy.read_bytes()
    (vp8,) = riff_chunks(data)
    packet = new_packet('{"Label":"3","ContentProducer":"a","ProduceID":"b"}')
    vp8x = bytes([0x04, 0, 0, 0]) + (40).to_bytes(3, "little") + (26).to_bytes(3, "little")
    body = b""
    for fourcc, payload in ((b"VP8X", vp8x), vp8, (b"XMP ", packet), (b"XMP ", packet)):
        body += fourcc + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)
    lossy.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body)
    assert len(api.read_labels(lossy)) == 2
    api.write_label(lossy, demo_label)
    assert label_of(lossy) == [demo_label]


def test_truncated_and_malformed_are_typed(lossy: Path, demo_label: AIGCLabel) -> None:
    data = lossy.read_bytes()
    lossy.write_bytes(data[:-5])
    with pytest.raises(TruncatedFileError):
        api.write_label(lossy, demo_label)
    assert lossy.read_bytes() == data[:-5]
    broken = bytearray(data)
    broken[23:26] = b"\0\0\0"  # the VP8 key-frame start code (9d 01 2a) is gone
    lossy.write_bytes(bytes(broken))
    with pytest.raises(MalformedFileError):
        api.write_label(lossy, demo_label)
    assert lossy.read_bytes() == bytes(broken)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=3000), flips=st.lists(st.integers(0, 8 * 3000), max_size=4))
def test_fuzz_truncation_and_bit_flips(tmp_path: Path, cut: int, flips: list[int]) -> None:
    source = tmp_path / "fuzz-src.webp"
    if not source.exists():
        _rgba(size=(12, 9)).convert("RGB").save(source, quality=50, exif=make_exif(), xmp=new_packet('{"Label":"1"}'))
    original = source.read_bytes()
    fuzz_once(tmp_path, "f.webp", cut_and_flip(cut, flips), original)
