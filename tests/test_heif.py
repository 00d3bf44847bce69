"""HEIF/HEIC and AVIF container: XMP metadata items read and written losslessly, with interop checks."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from aigclabel import AIGCLabel, api
from aigclabel.containers import heif, open_container
from aigclabel.containers.heif import HeifContainer
from aigclabel.errors import MalformedFileError, WriteNotSupportedError
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
    make_exif,
    pillow_xmp_label,
    pixels,
    same_pixels,
)

pillow_heif.register_heif_opener()


def _rgb(seed: int = 1, size: tuple[int, int] = (48, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _save(path: Path, xmp: bytes | None = None, exif: bool = False) -> Path:
    kwargs: dict[str, object] = {"quality": 80}
    if xmp is not None:
        kwargs["xmp"] = xmp
    if exif:
        kwargs["exif"] = make_exif().tobytes()
    _rgb().save(path, **kwargs)
    return path


def _mdat_payloads(data: bytes) -> list[bytes]:
    """Payloads of the top-level mdat boxes (a tiny independent box walker)."""
    found, at = [], 0
    while at < len(data):
        size, btype = struct.unpack(">I4s", data[at : at + 8])
        if btype == b"mdat":
            found.append(data[at + 8 : at + size])
        at += size
    return found


def _pillow_xmp(path: Path) -> bytes | None:
    with Image.open(path) as image:
        value = image.info.get("xmp")
        return value if value else None


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize(
    ("suffix", "xmp", "exif"),
    [(".heic", None, False), (".heic", FOREIGN_XMP, True), (".avif", None, True), (".avif", FOREIGN_XMP, False)],
    ids=["heic", "heic-foreign-xmp-exif", "avif-exif", "avif-foreign-xmp"],
)
def test_write_twice_and_strip_lossless(
    tmp_path: Path, demo_label: AIGCLabel, suffix: str, xmp: bytes | None, exif: bool
) -> None:
    path = _save(tmp_path / f"img{suffix}", xmp, exif)
    assert isinstance(open_container(path), HeifContainer)
    before, before_pixels = path.read_bytes(), pixels(path)
    digest = HeifContainer().payload_digest(path)
    coded = _mdat_payloads(before)[0]

    api.write_label(path, demo_label)
    relabel = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(path, relabel)
    after = path.read_bytes()
    assert label_of(path) == [relabel]
    assert after.count(demo_label.produce_id.encode()) == 0, "the superseded packet is zeroed"
    assert HeifContainer().payload_digest(path) == digest
    assert same_pixels(pixels(path), before_pixels)
    if xmp is None:
        assert coded in _mdat_payloads(after), "the coded image bytes are copied unchanged"
    packet = _pillow_xmp(path)
    assert packet is not None and pillow_xmp_label(packet) == relabel.to_json()
    assert exiftool_label(path) == relabel.to_json()
    assert libxmp_read(path) == relabel.to_json()
    tags = exiftool_read(path)
    if xmp is not None:
        assert tags.get("XMP-dc:Title") == "Sunset" and b"Sunset" in packet
    if exif:
        assert tags.get("IFD0:Make") == "Camera"

    api.strip_label(path)
    assert api.read_labels(path) == [] and exiftool_label(path) is None
    assert HeifContainer().payload_digest(path) == digest
    assert same_pixels(pixels(path), before_pixels)
    if xmp is None:
        assert coded in _mdat_payloads(path.read_bytes())
    packet = _pillow_xmp(path)
    if xmp is None:
        assert packet is None
    else:
        assert packet is not None and b"Sunset" in packet and b"AIGC" not in packet


def test_read_pillow_heif_xmp_item(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = _save(tmp_path / "p.heic", new_packet(demo_label.to_json()))
    found = api.read_labels(path)
    assert [f.label for f in found] == [demo_label]
    assert found[0].location.startswith("XMP TC260:AIGC in HEIF item")


@pytest.mark.interop  # exiftool
def test_exiftool_writes_we_read_and_replace(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = _save(tmp_path / "e.heic", exif=True)
    before_pixels = pixels(path)
    exiftool_write(path, demo_label.to_json(), tmp_path)
    assert label_of(path) == [demo_label]
    other = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(path, other)
    assert label_of(path) == [other] and exiftool_label(path) == other.to_json()
    assert exiftool_read(path).get("IFD0:Make") == "Camera"
    assert same_pixels(pixels(path), before_pixels)


def _move_xmp_into_idat(path: Path) -> None:
    """Rebuild a libheif file so its XMP item lives in the meta box's idat (construction method 1)."""
    with open(path, "rb") as handle:
        boxes = heif._top_boxes(handle)
        meta = heif._load_meta(handle, boxes)
        (item,) = heif._xmp_items(meta)
        packet = heif._item_bytes(handle, meta, item.item_id)
        _, old_ranges = heif._item_ranges(handle, meta, item.item_id)
    assert meta.iloc is not None
    data = bytearray(path.read_bytes())
    for start, length in old_ranges:  # the mdat copy is now unreferenced: blank it
        data[start : start + length] = bytes(length)
    delta = 0
    for _ in range(3):
        locations = [
            heif._Location(loc.item_id, 1, 0, 0, [heif._Extent(0, 0, len(packet))])
            if loc.item_id == item.item_id
            else HeifContainer._shifted(loc, meta.box, delta)
            for loc in meta.iloc.items
        ]
        iloc = heif._serialize_iloc(replace(meta.iloc, version=1, items=locations))
        children = [iloc if c.type == b"iloc" else meta.data[c.start : c.end] for c in meta.children]
        body = meta.data[meta.box.header : meta.box.header + 4] + b"".join(children) + heif._box(b"idat", packet)
        new_meta = heif._box(b"meta", body)
        if len(new_meta) - (meta.box.end - meta.box.start) == delta:
            break
        delta = len(new_meta) - (meta.box.end - meta.box.start)
    path.write_bytes(bytes(data[: meta.box.start]) + new_meta + bytes(data[meta.box.end :]))


@pytest.mark.interop  # exiftool
def test_xmp_item_in_idat(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = _save(tmp_path / "idat.heic", new_packet(demo_label.to_json()))
    before_pixels = pixels(path)
    _move_xmp_into_idat(path)
    # libheif agrees the crafted file is sound (exiftool 12.57 does not look into idat for XMP).
    packet = _pillow_xmp(path)
    assert packet is not None and pillow_xmp_label(packet) == demo_label.to_json()
    assert same_pixels(pixels(path), before_pixels)
    assert label_of(path) == [demo_label]

    other = AIGCLabel.for_producer(demo_label.content_producer)
    api.write_label(path, other)
    assert label_of(path) == [other] and exiftool_label(path) == other.to_json()
    assert path.read_bytes().count(demo_label.produce_id.encode()) == 0, "the idat copy is zeroed"
    packet = _pillow_xmp(path)
    assert packet is not None and pillow_xmp_label(packet) == other.to_json()
    assert same_pixels(pixels(path), before_pixels)
    api.strip_label(path)
    assert api.read_labels(path) == [] and exiftool_label(path) is None
    assert same_pixels(pixels(path), before_pixels)


@pytest.mark.interop  # exiftool
def test_image_collection_and_sequence(tmp_path: Path, demo_label: AIGCLabel) -> None:
    frames = [_rgb(seed, (24, 16)) for seed in (1, 2, 3)]
    collection = tmp_path / "multi.heic"  # libheif writes three image items, no moov
    frames[0].save(collection, save_all=True, append_images=frames[1:], quality=70)
    before = pixels(collection)
    api.write_label(collection, demo_label)
    assert len(before) == 3 and same_pixels(pixels(collection), before)
    assert label_of(collection) == [demo_label] and exiftool_label(collection) == demo_label.to_json()

    sequence = tmp_path / "anim.avif"  # an AVIF image sequence: a moov box with sample tables
    frames[0].save(sequence, save_all=True, append_images=frames[1:], quality=70, xmp=new_packet(demo_label.to_json()))
    original = sequence.read_bytes()
    assert label_of(sequence) == [demo_label]
    with pytest.raises(WriteNotSupportedError):
        api.write_label(sequence, AIGCLabel.for_producer(demo_label.content_producer))
    assert sequence.read_bytes() == original


def test_payload_digest_sees_pixel_changes(tmp_path: Path) -> None:
    a = _save(tmp_path / "a.heic")
    b = tmp_path / "b.heic"
    _rgb(2).save(b, quality=80)
    assert HeifContainer().payload_digest(a) != HeifContainer().payload_digest(b)


def test_broken_iloc_is_typed_and_input_kept(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = _save(tmp_path / "x.heic", new_packet("{}"))
    data = bytearray(path.read_bytes())
    at = data.index(b"iloc")
    data[at + 8 : at + 10] = b"\x33\x30"  # offset/length sizes 3 and 3: not allowed
    path.write_bytes(bytes(data))
    assert_refused(path, MalformedFileError, demo_label)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=2500), flips=st.lists(st.integers(0, 8 * 600), max_size=4))
def test_fuzz_truncation_and_bit_flips(tmp_path: Path, cut: int, flips: list[int]) -> None:
    source = tmp_path / "fuzz-src.heic"
    if not source.exists():
        _rgb(size=(16, 16)).save(source, quality=30, xmp=new_packet('{"Label":"1"}'))
    original = source.read_bytes()
    # flips hit the first 600 bytes: ftyp and meta, where the parsing happens
    fuzz_once(tmp_path, "f.heic", cut_and_flip(cut, flips), original)
