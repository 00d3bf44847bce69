"""TIFF container: IFD0 tag 700 written by appending, both byte orders, BigTIFF, multi-page, interop."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, TiffImagePlugin

from aigclabel import AIGCLabel, api
from aigclabel.containers.tiff import TiffContainer
from aigclabel.errors import MalformedFileError
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
    pillow_xmp_label,
    pixels,
    same_pixels,
)
from .conftest import require_tool


def _rgb(seed: int = 1, size: tuple[int, int] = (37, 23)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _tiffinfo(xmp: bytes | None = None) -> TiffImagePlugin.ImageFileDirectory_v2:
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[271] = "Camera"  # Make
    ifd[305] = "PaintTool"  # Software
    if xmp is not None:
        ifd[700] = xmp
        ifd.tagtype[700] = 1  # BYTE, as Pillow and libtiff write it
    return ifd


@pytest.fixture
def le_lzw(tmp_path: Path) -> Path:
    path = tmp_path / "le.tif"
    _rgb().save(path, compression="tiff_lzw", tiffinfo=_tiffinfo())
    return path


@pytest.fixture
def be16(tmp_path: Path) -> Path:
    """Big-endian 16-bit grey (Pillow writes MM for mode I;16B)."""
    path = tmp_path / "be.tif"
    values = np.random.default_rng(3).integers(0, 65536, (19, 29), dtype=np.uint16).astype(">u2")
    Image.frombytes("I;16B", (29, 19), values.tobytes()).save(path)
    assert path.read_bytes()[:4] == b"MM\0*"
    return path


@pytest.fixture
def multipage(tmp_path: Path) -> Path:
    path = tmp_path / "multi.tif"
    _rgb(1).save(path, save_all=True, append_images=[_rgb(2, (11, 7)), _rgb(3, (5, 9))], tiffinfo=_tiffinfo())
    return path


@pytest.fixture
def bigtiff(tmp_path: Path) -> Path:
    path = tmp_path / "big.tif"
    _rgb().save(path, big_tiff=True)
    assert path.read_bytes()[:4] == b"II+\0"
    return path


def _tag700(path: Path) -> tuple[int, bytes] | None:
    """Field type and value of IFD0 tag 700, as Pillow's independent TIFF parser sees them."""
    with Image.open(path) as image:
        if 700 not in image.tag_v2:
            return None
        value = image.tag_v2[700]
        if isinstance(value, tuple):  # Pillow returns BYTE/UNDEFINED XMP as a tuple of bytes objects
            value = b"".join(v if isinstance(v, bytes) else bytes([v]) for v in value)
        return image.tag_v2.tagtype[700], value


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("name", ["le_lzw", "be16", "multipage", "bigtiff"])
def test_write_twice_and_strip_lossless(name: str, request: pytest.FixtureRequest, demo_label: AIGCLabel) -> None:
    path: Path = request.getfixturevalue(name)
    before, before_pixels = path.read_bytes(), pixels(path)
    digest = TiffContainer().payload_digest(path)
    api.write_label(path, demo_label)
    after = path.read_bytes()
    # Nothing moved: the original bytes are all still there, only the header's IFD0 offset changed.
    header_offset = slice(8, 16) if name == "bigtiff" else slice(4, 8)
    assert after[: len(before)][header_offset.stop :] == before[header_offset.stop :]
    assert after[: header_offset.start] == before[: header_offset.start]
    tag = _tag700(path)
    assert tag is not None and tag[0] == 7
    assert pillow_xmp_label(tag[1]) == demo_label.to_json()

    relabel = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(path, relabel)
    assert label_of(path) == [relabel]
    assert path.read_bytes().count(demo_label.produce_id.encode()) == 0, "the superseded packet is zeroed"
    assert TiffContainer().payload_digest(path) == digest
    assert same_pixels(pixels(path), before_pixels)
    assert exiftool_label(path) == relabel.to_json()

    api.strip_label(path)
    assert api.read_labels(path) == [] and _tag700(path) is None
    assert TiffContainer().payload_digest(path) == digest
    assert same_pixels(pixels(path), before_pixels)


@pytest.mark.interop  # exiftool
def test_exif_and_other_tags_kept(le_lzw: Path, multipage: Path, demo_label: AIGCLabel) -> None:
    for path in (le_lzw, multipage):
        api.write_label(path, demo_label)
        tags = exiftool_read(path)
        assert tags["IFD0:Make"] == "Camera" and tags["IFD0:Software"] == "PaintTool"
        assert tags["IFD0:Compression"] == ("LZW" if path is le_lzw else "Uncompressed")
    with Image.open(multipage) as image:
        assert image.n_frames == 3
        image.seek(2)
        assert image.size == (5, 9)


@pytest.mark.interop  # exiftool
def test_exif_sub_ifd_written_by_exiftool_survives(le_lzw: Path, demo_label: AIGCLabel) -> None:
    subprocess.run(
        [require_tool("exiftool"), "-overwrite_original", "-ExifIFD:DateTimeOriginal=2024:01:02 03:04:05", str(le_lzw)],
        check=True,
        capture_output=True,
    )
    before = pixels(le_lzw)
    api.write_label(le_lzw, demo_label)
    api.write_label(le_lzw, AIGCLabel.for_producer(demo_label.content_producer))
    api.strip_label(le_lzw)
    api.write_label(le_lzw, demo_label)
    tags = exiftool_read(le_lzw)
    assert tags["ExifIFD:DateTimeOriginal"] == "2024:01:02 03:04:05" and tags["IFD0:Make"] == "Camera"
    assert "ExifTool:Warning" not in tags
    assert label_of(le_lzw) == [demo_label] and same_pixels(pixels(le_lzw), before)


@pytest.mark.interop  # exiftool
def test_existing_byte_xmp_is_merged_in_place(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "foreign.tif"
    _rgb().save(path, tiffinfo=_tiffinfo(FOREIGN_XMP))
    header = path.read_bytes()[:8]
    api.write_label(path, demo_label)
    assert path.read_bytes()[:8] == header, "the IFD0 entry is patched in place, the IFD is not moved"
    tag = _tag700(path)
    assert tag is not None and tag[0] == 1  # the writer's BYTE type is kept
    assert b"Sunset" in tag[1] and pillow_xmp_label(tag[1]) == demo_label.to_json()
    assert exiftool_read(path)["XMP-dc:Title"] == "Sunset"
    assert path.read_bytes().count(b"Sunset") == 1
    api.strip_label(path)
    tag = _tag700(path)
    assert tag is not None and b"Sunset" in tag[1] and b"AIGC" not in tag[1]


def test_ascii_typed_xmp_is_read_and_rewritten_as_undefined(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "ascii.tif"
    ifd = _tiffinfo()
    ifd[700] = new_packet(demo_label.to_json()).decode()
    ifd.tagtype[700] = 2  # ASCII, as some writers do
    _rgb().save(path, tiffinfo=ifd)
    assert label_of(path) == [demo_label]
    other = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(path, other)
    tag = _tag700(path)
    assert tag is not None and tag[0] == 7 and pillow_xmp_label(tag[1]) == other.to_json()


@pytest.mark.interop  # exiftool
def test_exiftool_and_libxmp_interop(le_lzw: Path, be16: Path, tmp_path: Path, demo_label: AIGCLabel) -> None:
    exiftool_write(le_lzw, demo_label.to_json(), tmp_path)
    assert label_of(le_lzw) == [demo_label]
    other = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(le_lzw, other)
    assert label_of(le_lzw) == [other] and exiftool_label(le_lzw) == other.to_json()
    assert libxmp_read(le_lzw) == other.to_json()

    libxmp_write(be16, demo_label.to_json())
    assert label_of(be16) == [demo_label]
    api.write_label(be16, other)
    assert libxmp_read(be16) == other.to_json() and label_of(be16) == [other]


def _tiled_tiff(path: Path, pixels_rgb: np.ndarray, tile: int = 16) -> None:
    """A little-endian, uncompressed, tiled RGB TIFF written by hand (Pillow only writes strips)."""
    height, width, _ = pixels_rgb.shape
    tiles = []
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            block = np.zeros((tile, tile, 3), dtype=np.uint8)
            part = pixels_rgb[y : y + tile, x : x + tile]
            block[: part.shape[0], : part.shape[1]] = part
            tiles.append(block.tobytes())
    count = len(tiles)
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2)]
    entries += [(277, 3, 1, 3), (284, 3, 1, 1), (322, 3, 1, tile), (323, 3, 1, tile), (324, 4, count, None)]
    entries += [(325, 4, count, None)]
    ifd_size = 2 + 12 * len(entries) + 4
    extra_at = 8 + ifd_size
    bits = struct.pack("<3H", 8, 8, 8)
    offsets_at = extra_at + len(bits)
    counts_at = offsets_at + 4 * count
    data_at = counts_at + 4 * count
    offsets = [data_at + i * len(tiles[0]) for i in range(count)]
    out = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, ftype, n, value in entries:
        if tag == 258:
            out += struct.pack("<HHII", tag, ftype, n, extra_at)
        elif tag in (324, 325):
            out += struct.pack("<HHII", tag, ftype, n, offsets_at if tag == 324 else counts_at)
        else:
            out += struct.pack("<HHIHH", tag, ftype, n, value, 0)
    out += struct.pack("<I", 0) + bits
    out += struct.pack(f"<{count}I", *offsets) + struct.pack(f"<{count}I", *[len(t) for t in tiles])
    path.write_bytes(out + b"".join(tiles))


@pytest.mark.interop  # exiftool
def test_tiled_tiff(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "tiled.tif"
    source = np.random.default_rng(5).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    _tiled_tiff(path, source)
    assert (pixels(path)[0][..., :3] == source).all(), "Pillow decodes the hand-made tiled file"
    digest = TiffContainer().payload_digest(path)
    api.write_label(path, demo_label)
    api.write_label(path, demo_label)
    assert label_of(path) == [demo_label] and exiftool_label(path) == demo_label.to_json()
    assert (pixels(path)[0][..., :3] == source).all()
    assert TiffContainer().payload_digest(path) == digest
    api.strip_label(path)
    assert api.read_labels(path) == [] and TiffContainer().payload_digest(path) == digest
    changed = source.copy()
    changed[39, 47, 2] ^= 1  # one bit in the last tile
    _tiled_tiff(path, changed)
    assert TiffContainer().payload_digest(path) != digest


def test_payload_digest_sees_pixel_changes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    _rgb(1).save(a)
    _rgb(2).save(b)
    assert TiffContainer().payload_digest(a) != TiffContainer().payload_digest(b)


def _chain(data: bytes) -> list[int]:
    """IFD offsets of a little-endian classic TIFF, following next pointers until 0 or a repeat."""
    chain: list[int] = []
    (offset,) = struct.unpack("<I", data[4:8])
    while offset and offset not in chain:
        chain.append(offset)
        (count,) = struct.unpack("<H", data[offset : offset + 2])
        (offset,) = struct.unpack("<I", data[offset + 2 + 12 * count : offset + 6 + 12 * count])
    return chain + ([offset] if offset else [])


def _loop_back(path: Path, to_first: bool) -> bytes:
    """Make the last IFD's next pointer loop back to IFD0 (or to itself)."""
    data = bytearray(path.read_bytes())
    chain = _chain(bytes(data))
    last = chain[-1]
    (count,) = struct.unpack("<H", data[last : last + 2])
    data[last + 2 + 12 * count : last + 6 + 12 * count] = struct.pack("<I", chain[0] if to_first else last)
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("fixture", ["le_lzw", "multipage"])
@pytest.mark.parametrize("with_xmp", [False, True])
def test_ifd_chain_loop_is_cut_where_readers_stop(
    fixture: str, with_xmp: bool, request: pytest.FixtureRequest, tmp_path: Path, demo_label: AIGCLabel
) -> None:
    """Pillow and libtiff stop at an IFD that comes round again; we label such a file (Pillow's
    multipage_*_loop.tiff) and cut the loop, so the output is a valid TIFF with the same pages."""
    src: Path = request.getfixturevalue(fixture)
    if with_xmp:
        api.write_label(src, demo_label)
    looped = _loop_back(src, to_first=fixture == "multipage")
    assert _chain(looped)[-1] in _chain(looped)[:-1]
    out = api.write_label(src, demo_label, tmp_path / "out.tif")
    assert src.read_bytes() == looped
    chain = _chain(out.read_bytes())
    assert len(set(chain)) == len(chain), "the output's IFD chain still loops"
    assert same_pixels(pixels(src), pixels(out))
    assert TiffContainer().payload_digest(src) == TiffContainer().payload_digest(out)
    assert exiftool_label(out) == demo_label.to_json()
    stripped = api.strip_label(out, tmp_path / "stripped.tif")
    assert label_of(stripped) == [] and same_pixels(pixels(src), pixels(stripped))


def test_bad_ifd_offset_is_typed(le_lzw: Path) -> None:
    data = bytearray(le_lzw.read_bytes())
    data[4:8] = struct.pack("<I", len(data) + 100)
    le_lzw.write_bytes(bytes(data))
    with pytest.raises(MalformedFileError):
        api.read_labels(le_lzw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=3000), flips=st.lists(st.integers(0, 8 * 3000), max_size=4))
def test_fuzz_truncation_and_bit_flips(tmp_path: Path, cut: int, flips: list[int]) -> None:
    source = tmp_path / "fuzz-src.tif"
    if not source.exists():
        _rgb(size=(9, 7)).save(source, tiffinfo=_tiffinfo(new_packet('{"Label":"1"}')))
    original = source.read_bytes()
    fuzz_once(tmp_path, "f.tif", cut_and_flip(cut, flips), original)
