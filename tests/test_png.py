"""PNG/APNG container: lossless XMP iTXt labels, the tEXt AIGC alternative, exiftool and libxmp interop.

The interop helpers here (exiftool with a TC260 config, python-xmp-toolkit as in the TC260 image
guide) are shared by the WebP, TIFF and HEIF tests.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from aigclabel import AIGCLabel, api
from aigclabel.containers.png import PngContainer
from aigclabel.errors import LimitExceededError, MalformedFileError
from aigclabel.xmp import new_packet

from ._tools import (
    FOREIGN_XMP,
    assert_refused,
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

# ---------------------------------------------------------------------------- PNG helpers


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk: a tiny independent parser for the assertions."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        found.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return found


def build(parts: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for ctype, data in parts:
        out += struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))
    return out


def _image(seed: int = 1, size: tuple[int, int] = (40, 30)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture
def rich_png(tmp_path: Path) -> Path:
    """PNG with eXIf, iCCP, a foreign XMP iTXt, a tEXt comment and the tEXt AIGC alternative."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", FOREIGN_XMP.decode())
    info.add_text("Comment", "holiday")
    info.add_text("AIGC", '{"AIGC":{"Label":"2","ContentProducer":"old","ProduceID":"p1"}}')
    path = tmp_path / "rich.png"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _image().save(path, pnginfo=info, exif=make_exif(), icc_profile=icc)
    return path


def _non_text(path: Path) -> list[tuple[bytes, bytes]]:
    return [c for c in chunks(path.read_bytes()) if c[0] not in (b"tEXt", b"zTXt", b"iTXt")]


# ---------------------------------------------------------------------------- tests


def test_reads_text_alternative_and_replaces_it(rich_png: Path, demo_label: AIGCLabel) -> None:
    found = api.read_labels(rich_png)
    assert [f.location for f in found] == ["tEXt chunk AIGC"]
    assert found[0].parsed is not None and found[0].parsed.shape == "wrapped" and found[0].label.label == "2"  # type: ignore[union-attr]
    before, before_pixels = rich_png.read_bytes(), pixels(rich_png)
    digest = PngContainer().payload_digest(rich_png)

    api.write_label(rich_png, demo_label)
    api.write_label(rich_png, demo_label)  # twice: still exactly one label
    assert label_of(rich_png) == [demo_label]
    after = chunks(rich_png.read_bytes())
    texts = [c for c in after if c[0] in (b"tEXt", b"iTXt", b"zTXt")]
    assert [c[1].split(b"\0")[0] for c in texts] == [b"XML:com.adobe.xmp", b"Comment"]
    xmp = texts[0][1]
    assert xmp[len(b"XML:com.adobe.xmp") + 1] == 0, "the XMP iTXt must be uncompressed"
    assert b"Sunset" in xmp and b'xmp:CreatorTool="Paint 1.0"' in xmp
    # Everything that is not a text chunk (IHDR, iCCP, eXIf, IDAT, IEND) is byte-identical, in order.
    assert _non_text(rich_png) == [c for c in chunks(before) if c[0] not in (b"tEXt", b"zTXt", b"iTXt")]
    assert PngContainer().payload_digest(rich_png) == digest
    assert same_pixels(pixels(rich_png), before_pixels)
    assert [t for t, _ in after].index(b"iTXt") < [t for t, _ in after].index(b"IDAT")

    api.strip_label(rich_png)
    assert api.read_labels(rich_png) == []
    assert _non_text(rich_png) == [c for c in chunks(before) if c[0] not in (b"tEXt", b"zTXt", b"iTXt")]
    assert PngContainer().payload_digest(rich_png) == digest
    assert b"Sunset" in rich_png.read_bytes() and b"holiday" in rich_png.read_bytes()
    assert b"AIGC" not in rich_png.read_bytes()
    assert same_pixels(pixels(rich_png), before_pixels)


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        (b"tEXt", b"AIGC\0" + b'{"Label":"3","ContentProducer":"a","ProduceID":"b"}'),
        (b"zTXt", b"AIGC\0\0" + zlib.compress(b'{"AIGC":{"Label":"3","ContentProducer":"a","ProduceID":"b"}}')),
        (b"iTXt", b"AIGC\0\x01\0\0\0" + zlib.compress(b'{"Label":"3","ContentProducer":"a","ProduceID":"b"}')),
    ],
    ids=["tEXt-bare", "zTXt-wrapped", "iTXt-compressed"],
)
def test_every_text_alternative_is_read_reported_and_replaced(
    tmp_path: Path, demo_label: AIGCLabel, ctype: bytes, body: bytes
) -> None:
    path = tmp_path / "alt.png"
    _image().save(path)
    parts = chunks(path.read_bytes())
    path.write_bytes(build([parts[0], (ctype, body), *parts[1:]]))
    found = api.read_labels(path)
    assert [f.location for f in found] == [f"{ctype.decode()} chunk AIGC"]
    assert found[0].label is not None and found[0].label.label == "3"
    libxmp_write(path, demo_label.to_json())  # a second, XMP label beside it: a §6.1 c) conflict
    report = api.inspect(path)
    assert len(report.labels) == 2 and "multiple-labels" in [p.code for p in report.problems]
    api.write_label(path, demo_label)
    assert label_of(path) == [demo_label] and api.inspect(path).ok
    assert ctype + b"AIGC" not in path.read_bytes()


def test_payload_digest_changes_with_pixels(tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    _image(1).save(a)
    _image(2).save(b)
    assert PngContainer().payload_digest(a) != PngContainer().payload_digest(b)


def test_apng_frames_and_animation_chunks_kept(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "anim.png"
    _image(1).save(path, save_all=True, append_images=[_image(2), _image(3)], duration=100, loop=0)
    before = chunks(path.read_bytes())
    assert {b"acTL", b"fcTL", b"fdAT"} <= {t for t, _ in before}
    before_pixels = pixels(path)
    api.write_label(path, demo_label, tmp_path / "out.png")
    out = tmp_path / "out.png"
    assert label_of(out) == [demo_label]
    after = chunks(out.read_bytes())
    assert [c for c in after if c[0] != b"iTXt"] == before
    types = [t for t, _ in after]
    assert types.index(b"iTXt") < types.index(b"fcTL") < types.index(b"IDAT")
    assert same_pixels(pixels(out), before_pixels) and len(before_pixels) == 3
    assert PngContainer().payload_digest(out) == PngContainer().payload_digest(path)


def test_xmp_after_idat_moves_before_it_and_compressed_xmp_is_read(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "late.png"
    _image().save(path)
    parts = chunks(path.read_bytes())
    packet = new_packet(demo_label.to_json())
    late = (b"iTXt", b"XML:com.adobe.xmp\0\x01\0\0\0" + zlib.compress(packet))
    path.write_bytes(build([*parts[:-1], late, parts[-1]]))
    assert label_of(path) == [demo_label]
    relabel = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(path, relabel)
    types = [t for t, _ in chunks(path.read_bytes())]
    assert types.count(b"iTXt") == 1 and types.index(b"iTXt") < types.index(b"IDAT")
    assert label_of(path) == [relabel]


def test_runs_of_small_chunks_read_in_windows_find_every_label(tmp_path: Path, demo_label: AIGCLabel) -> None:
    """libpng writes 8 KiB IDATs: after a small chunk the walk reads the next 64 KiB at once. A label
    chunk after a run of 2 KiB IDATs is found and CRC-checked wherever the window ends (after it, inside
    its CRC, its text, its keyword, its header, or before it), and a file cut inside the run or inside
    that chunk is refused as before."""
    path = tmp_path / "runs.png"
    _image(size=(160, 120)).save(path)
    parts = chunks(path.read_bytes())
    assert parts[0][0] == b"IHDR"
    idat = zlib.compress(b"".join(part for ctype, part in parts if ctype == b"IDAT")) * 40
    text = (b"tEXt", b"AIGC\0" + demo_label.to_json().encode())
    assert len(text[1]) == 191  # the run lengths below place the window's end for this length
    for total in (69000, 69047, 69100, 69238, 69244, 69300):
        pieces = [(b"IDAT", idat[i : min(i + 2048, total)]) for i in range(0, total, 2048)]
        data = build([parts[0], *pieces, text, parts[-1]])
        path.write_bytes(data)
        [found] = api.inspect(path).labels
        assert found.location == "tEXt chunk AIGC" and found.label == demo_label, total
        start = data.index(b"tEXtAIGC") - 4
        for cut in (40_000, start - 3, start + 6, start + 20, len(data) - 14):
            path.write_bytes(data[:cut])
            assert_refused(path, MalformedFileError, demo_label)


def test_zlib_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    _image().save(path)
    parts = chunks(path.read_bytes())
    bomb = (b"iTXt", b"XML:com.adobe.xmp\0\x01\0\0\0" + zlib.compress(b" " * (20 << 20), 9))
    path.write_bytes(build([parts[0], bomb, *parts[1:]]))
    assert_refused(path, LimitExceededError, AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO"))


def test_bad_crc_on_label_chunk_is_malformed_and_input_kept(rich_png: Path, demo_label: AIGCLabel) -> None:
    data = bytearray(rich_png.read_bytes())
    at = data.index(b"tEXtAIGC")
    data[at + 10] ^= 0x01  # inside the chunk data, so the stored CRC no longer matches
    rich_png.write_bytes(bytes(data))
    assert_refused(rich_png, MalformedFileError, demo_label, match="CRC")
    assert sorted(p.name for p in rich_png.parent.iterdir()) == ["rich.png"]


@pytest.mark.interop  # exiftool
def test_exiftool_reads_ours_and_we_read_exiftools(tmp_path: Path, rich_png: Path, demo_label: AIGCLabel) -> None:
    api.write_label(rich_png, demo_label)
    assert exiftool_label(rich_png) == demo_label.to_json()
    tags = exiftool_read(rich_png)
    assert tags.get("IFD0:Make") == "Camera" and "ICC_Profile:ProfileDescription" in tags
    assert tags.get("XMP-dc:Title") == "Sunset" and tags.get("PNG:Comment") == "holiday"

    other = AIGCLabel.for_producer(demo_label.content_producer)
    exiftool_write(rich_png, other.to_json(), tmp_path)
    assert label_of(rich_png) == [other]
    api.write_label(rich_png, demo_label)
    assert label_of(rich_png) == [demo_label]
    assert exiftool_label(rich_png) == demo_label.to_json()


def test_libxmp_guide_method_interop(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "x.png"
    _image().save(path)
    before = pixels(path)
    libxmp_write(path, demo_label.to_json())
    assert label_of(path) == [demo_label]
    other = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(path, other)
    assert libxmp_read(path) == other.to_json()
    assert label_of(path) == [other]
    api.strip_label(path)
    assert libxmp_read(path) is None
    assert same_pixels(pixels(path), before)


def test_pillow_reads_our_xmp(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "p.png"
    _image().save(path)
    api.write_label(path, demo_label)
    with Image.open(path) as image:
        assert pillow_xmp_label(image.info["xmp"]) == demo_label.to_json()


def test_truncated_file_is_typed(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "t.png"
    _image().save(path)
    data = path.read_bytes()
    for cut in (9, 20, len(data) - 13, len(data) - 1):
        path.write_bytes(data[:cut])
        assert_refused(path, MalformedFileError, demo_label)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=4000), flips=st.lists(st.integers(0, 8 * 4000), max_size=4))
def test_fuzz_truncation_and_bit_flips(tmp_path: Path, cut: int, flips: list[int]) -> None:
    source = tmp_path / "fuzz-src.png"
    if not source.exists():
        info = PngImagePlugin.PngInfo()
        info.add_text("AIGC", '{"Label":"1","ContentProducer":"x","ProduceID":"y"}')
        info.add_itxt("XML:com.adobe.xmp", new_packet('{"Label":"1"}').decode(), zip=True)
        _image(size=(16, 12)).save(source, pnginfo=info, exif=make_exif())
    original = source.read_bytes()
    fuzz_once(tmp_path, "f.png", cut_and_flip(cut, flips, keep=8), original)
