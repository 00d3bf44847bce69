"""PNG/APNG container: lossless XMP iTXt labels, the tEXt AIGC alternative, exiftool and libxmp interop.

The interop helpers here (exiftool with a TC260 config, python-xmp-toolkit as in the TC260 image
guide) are shared by the WebP, TIFF and HEIF tests.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from aigclabel import AIGCLabel, AIGCLabelError, api
from aigclabel.containers.png import PngContainer
from aigclabel.errors import LimitExceededError, MalformedFileError
from aigclabel.xmp import TC260_NS, new_packet

from .conftest import require_tool

FOREIGN_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    b' <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    b' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Paint 1.0">'
    b'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Sunset</rdf:li></rdf:Alt></dc:title>'
    b"</rdf:Description>\n </rdf:RDF></x:xmpmeta>\n" + b" " * 300 + b'\n<?xpacket end="w"?>'
)

EXIFTOOL_CONFIG = """%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        TC260 => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::TC260' } },
    },
);
%Image::ExifTool::UserDefined::TC260 = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-TC260', 2 => 'Image' },
    NAMESPACE => { 'TC260' => 'http://www.tc260.org.cn/ns/AIGC/1.0/' },
    WRITABLE => 'string',
    AIGC => { },
);
1;
"""


def make_exif() -> Image.Exif:
    """EXIF with IFD0 Make = "Camera" (checked with exiftool after our rewrite)."""
    exif = Image.Exif()
    exif[0x010F] = "Camera"
    return exif


# ---------------------------------------------------------------------------- shared helpers


def pixels(path: Path) -> list[np.ndarray]:
    """Decoded pixels of every frame (Pillow is the independent decoder)."""
    with Image.open(path) as image:
        frames = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGBA")).copy())
        return frames


def same_pixels(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and (x == y).all() for x, y in zip(a, b, strict=True))


def exiftool_read(path: Path) -> dict[str, object]:
    """Every tag exiftool sees, grouped by family-1 group (``XMP-TC260:Aigc`` etc.)."""
    out = subprocess.run(
        [require_tool("exiftool"), "-j", "-a", "-G1", "-struct", str(path)], capture_output=True, check=True
    )
    data: dict[str, object] = json.loads(out.stdout)[0]
    return data


def exiftool_label(path: Path) -> str | None:
    tags = exiftool_read(path)
    values = [v for k, v in tags.items() if k.lower() == "xmp-tc260:aigc"]
    assert len(values) <= 1
    return str(values[0]) if values else None


def exiftool_write(path: Path, value: str, tmp_path: Path) -> None:
    """Write ``TC260:AIGC`` with exiftool, which needs a config defining the namespace."""
    config = tmp_path / "tc260.config"
    config.write_text(EXIFTOOL_CONFIG)
    subprocess.run(
        [
            require_tool("exiftool"),
            "-config",
            str(config),
            "-overwrite_original",
            f"-XMP-TC260:AIGC={value}",
            str(path),
        ],
        capture_output=True,
        check=True,
    )


def libxmp_write(path: Path, value: str) -> None:
    """The TC260 image guide's own method (python-xmp-toolkit on exempi)."""
    from libxmp import XMPFiles, XMPMeta

    XMPMeta.register_namespace(TC260_NS, "TC260")
    xmpfile = XMPFiles(file_path=str(path), open_forupdate=True)
    xmp = xmpfile.get_xmp() or XMPMeta()
    xmp.set_property(TC260_NS, "AIGC", value)
    assert xmpfile.can_put_xmp(xmp)
    xmpfile.put_xmp(xmp)
    xmpfile.close_file()


def libxmp_read(path: Path) -> str | None:
    from libxmp import XMPFiles, XMPMeta

    XMPMeta.register_namespace(TC260_NS, "TC260")
    xmpfile = XMPFiles(file_path=str(path))
    xmp = xmpfile.get_xmp()
    xmpfile.close_file()
    if xmp is None or not xmp.does_property_exist(TC260_NS, "AIGC"):
        return None
    return str(xmp.get_property(TC260_NS, "AIGC"))


def fuzz_once(path: Path, mutate: Callable[[bytes], bytes], original: bytes, label: AIGCLabel) -> None:
    """Mutated bytes give a typed error or a valid result, and a failed write leaves them intact."""
    mutated = mutate(original)
    path.write_bytes(mutated)
    with contextlib.suppress(AIGCLabelError):
        api.read_labels(path)
    try:
        api.write_label(path, label)
    except AIGCLabelError:
        assert path.read_bytes() == mutated
    else:
        assert [f.label for f in api.read_labels(path)] == [label]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".aigclabel-tmp")]


def pillow_xmp_label(packet: bytes | str) -> str | None:
    """TC260:AIGC from the XMP bytes Pillow hands out, parsed with ElementTree (not our parser)."""
    text = packet.decode() if isinstance(packet, bytes) else packet
    root = ElementTree.fromstring(text[text.index("<x:xmpmeta") : text.rindex("</x:xmpmeta>") + 12])
    element = root.find(f".//{{{TC260_NS}}}AIGC")
    return None if element is None else element.text


def label_of(path: Path) -> list[AIGCLabel | None]:
    return [found.label for found in api.read_labels(path)]


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


def test_zlib_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    _image().save(path)
    parts = chunks(path.read_bytes())
    bomb = (b"iTXt", b"XML:com.adobe.xmp\0\x01\0\0\0" + zlib.compress(b" " * (20 << 20), 9))
    path.write_bytes(build([parts[0], bomb, *parts[1:]]))
    original = path.read_bytes()
    with pytest.raises(LimitExceededError):
        api.read_labels(path)
    with pytest.raises(LimitExceededError):
        api.write_label(path, AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO"))
    assert path.read_bytes() == original


def test_bad_crc_on_label_chunk_is_malformed_and_input_kept(rich_png: Path, demo_label: AIGCLabel) -> None:
    data = bytearray(rich_png.read_bytes())
    at = data.index(b"tEXtAIGC")
    data[at + 10] ^= 0x01  # inside the chunk data, so the stored CRC no longer matches
    rich_png.write_bytes(bytes(data))
    with pytest.raises(MalformedFileError, match="CRC"):
        api.read_labels(rich_png)
    with pytest.raises(MalformedFileError):
        api.write_label(rich_png, demo_label)
    assert rich_png.read_bytes() == bytes(data)
    assert sorted(p.name for p in rich_png.parent.iterdir()) == ["rich.png"]


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


def test_strip_without_label_is_byte_identical(rich_png: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    _image().save(plain)
    out = tmp_path / "out.png"
    api.strip_label(plain, out)
    assert out.read_bytes() == plain.read_bytes()


def test_truncated_file_is_typed(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = tmp_path / "t.png"
    _image().save(path)
    data = path.read_bytes()
    for cut in (9, 20, len(data) - 13, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(MalformedFileError):
            api.read_labels(path)
        with pytest.raises(MalformedFileError):
            api.write_label(path, demo_label)
        assert path.read_bytes() == data[:cut]


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
    label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO", "fuzz")

    def mutate(data: bytes) -> bytes:
        out = bytearray(data[: max(cut, 8)] if cut < len(data) else data)
        for bit in flips:
            if bit // 8 < len(out):
                out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    work = tmp_path / "fuzz"
    work.mkdir(exist_ok=True)
    fuzz_once(work / "f.png", mutate, original, label)
    shutil.rmtree(work)
