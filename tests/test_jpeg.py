"""JPEG container: lossless labels in every placement, checked with exiftool and python-xmp-toolkit."""

from __future__ import annotations

import contextlib
import hashlib
import io
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from aigclabel import AIGCLabel, AIGCLabelError, api
from aigclabel.containers.jpeg import EXT_SIG, XMP_SIG, JpegContainer
from aigclabel.errors import LimitExceededError, MalformedFileError, TruncatedFileError
from aigclabel.xmp import TC260_NS, new_packet

from ._tools import (
    FOREIGN_XMP,
    FuzzDir,
    assert_refused_untouched,
    exiftool_json,
    exiftool_label,
    exiftool_read,
    libxmp_read,
    run_every_action,
    write_exiftool_config,
)
from .conftest import require_module, require_tool

# ---------------------------------------------------------------------------- fixtures and helpers


def _image(width: int = 64, height: int = 48, seed: int = 1) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _exif(user_comment: bytes | None = None, *, in_ifd0: bool = False) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x0110] = "Model 7"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2026:01:02 03:04:05"
    if user_comment is not None:
        if in_ifd0:
            exif[0x9286] = user_comment
        else:
            sub[0x9286] = user_comment
    return exif


def _icc() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _rich_jpeg(path: Path, **save: object) -> Path:
    """EXIF + ICC profile + COM + a foreign XMP packet with other properties."""
    options = {"exif": _exif(), "icc_profile": _icc(), "xmp": FOREIGN_XMP, "comment": b"kept comment", **save}
    _image().save(path, "JPEG", quality=90, **options)
    return path


def _segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Independent minimal walker: marker segments before SOS, and everything from SOS on."""
    assert data[:2] == b"\xff\xd8"
    out: list[tuple[int, bytes]] = []
    pos = 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append((data[pos + 1], data[pos : pos + 2 + length]))
        pos += 2 + length
    return out, data[pos:]


def _non_xmp(data: bytes) -> list[tuple[int, bytes]]:
    segments, _ = _segments(data)
    return [(m, s) for m, s in segments if not (m == 0xE1 and s[4:].startswith((XMP_SIG, EXT_SIG)))]


def _pixels(path: Path) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def _exiftool(*args: str | Path, config: Path | None = None) -> list[dict[str, object]]:
    return exiftool_json("-struct", *args, config=config)


def _aigc_labels(path: Path) -> list[str]:
    return [found.raw for found in api.read_labels(path) if found.label is not None]


def _assert_lossless(before: Path, after: Path) -> None:
    a, b = before.read_bytes(), after.read_bytes()
    assert _segments(a)[1] == _segments(b)[1], "scan data changed"
    assert _non_xmp(a) == _non_xmp(b), "a non-XMP segment changed"
    assert _pixels(before) == _pixels(after)
    container = JpegContainer()
    assert container.payload_digest(before) == container.payload_digest(after)


def _user_comment(label: AIGCLabel, prefix: bytes = b"ASCII\x00\x00\x00") -> bytes:
    text = label.to_json("wrapped")  # Pillow writes big-endian EXIF; UNICODE follows the EXIF byte order
    return prefix + (text.encode("utf-16-be") if prefix.startswith(b"UNICODE") else text.encode())


# ---------------------------------------------------------------------------- round trips


@pytest.mark.interop  # exiftool
def test_write_keeps_exif_icc_and_foreign_xmp(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = _rich_jpeg(tmp_path / "in.jpg")
    out = tmp_path / "out.jpg"
    api.write_label(src, demo_label, out)
    assert api.read_label(out) == demo_label
    [found] = api.read_labels(out)
    assert found.location == "APP1 XMP TC260:AIGC" and found.parsed is not None and found.parsed.shape == "bare"
    _assert_lossless(src, out)
    [meta] = _exiftool(out)
    assert meta["XMP-TC260:Aigc"] == demo_label.to_json()
    assert meta["XMP-xmp:CreatorTool"] == "Paint 1.0" and meta["XMP-dc:Title"] == "Sunset"
    assert meta["IFD0:Make"] == "TestCam" and meta["ExifIFD:DateTimeOriginal"] == "2026:01:02 03:04:05"
    assert meta["ICC-header:ProfileCreator"] == "Little CMS" and meta["File:Comment"] == "kept comment"
    [before], [after] = _exiftool("-validate", "-warning", "-a", src), _exiftool("-validate", "-warning", "-a", out)
    assert after["ExifTool:Validate"] == before["ExifTool:Validate"]  # no new structural warning
    # Removing the label gives back the original file byte for byte.
    stripped = tmp_path / "stripped.jpg"
    api.strip_label(out, stripped)
    assert stripped.read_bytes() == src.read_bytes()


def test_multi_segment_icc_profile_is_kept(tmp_path: Path, demo_label: AIGCLabel) -> None:
    icc = _icc() + bytes(range(256)) * 560  # 143 kB: Pillow splits it over three APP2 segments
    src = tmp_path / "icc.jpg"
    _image().save(src, "JPEG", icc_profile=icc)
    assert sum(1 for m, s in _segments(src.read_bytes())[0] if m == 0xE2) == 3
    out = tmp_path / "out.jpg"
    api.write_label(src, demo_label, out)
    _assert_lossless(src, out)
    with Image.open(out) as im:
        assert im.info["icc_profile"] == icc
    assert api.read_label(out) == demo_label


@pytest.mark.parametrize("progressive", [False, True])
def test_new_xmp_segment_goes_after_app0_and_exif(tmp_path: Path, demo_label: AIGCLabel, progressive: bool) -> None:
    src = tmp_path / "in.jpg"
    _image(80, 40).save(src, "JPEG", exif=_exif(), icc_profile=_icc(), progressive=progressive, quality=80)
    out = tmp_path / "out.jpg"
    api.write_label(src, demo_label, out)
    markers = [(m, s[4:10]) for m, s in _segments(out.read_bytes())[0]]
    assert markers[0] == (0xE0, b"JFIF\x00\x01")
    assert markers[1] == (0xE1, b"Exif\x00\x00")
    assert markers[2] == (0xE1, XMP_SIG[:6])
    _assert_lossless(src, out)
    assert _aigc_labels(out) == [demo_label.to_json()]
    api.strip_label(out)
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.interop  # exiftool
def test_labelling_twice_leaves_exactly_one_label(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = _rich_jpeg(tmp_path / "a.jpg")
    api.write_label(path, demo_label)
    second = demo_label.with_propagation(demo_label.content_producer)
    api.write_label(path, second)
    assert api.read_labels(path)[0].label == second
    assert len(api.read_labels(path)) == 1
    [meta] = _exiftool("-XMP-TC260:all", path)
    assert meta["XMP-TC260:Aigc"] == second.to_json()


def test_strip_on_unlabelled_file_changes_nothing(tmp_path: Path) -> None:
    src = _rich_jpeg(tmp_path / "in.jpg")
    out = tmp_path / "out.jpg"
    api.strip_label(src, out)
    assert out.read_bytes() == src.read_bytes()


def test_in_place_write_is_atomic_and_keeps_mode(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = _rich_jpeg(tmp_path / "a.jpg")
    path.chmod(0o640)
    api.write_label(path, demo_label)
    assert api.read_label(path) == demo_label
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]
    assert path.stat().st_mode & 0o777 == 0o640


# ---------------------------------------------------------------------------- EXIF UserComment


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize(
    ("prefix", "in_ifd0", "where"),
    [
        (b"ASCII\x00\x00\x00", False, "APP1 EXIF Exif SubIFD UserComment"),
        (b"ASCII\x00\x00\x00", True, "APP1 EXIF IFD0 UserComment"),
        (b"UNICODE\x00", False, "APP1 EXIF Exif SubIFD UserComment"),
    ],
)
def test_user_comment_label_is_read_and_neutralised_in_place(
    tmp_path: Path, demo_label: AIGCLabel, prefix: bytes, in_ifd0: bool, where: str
) -> None:
    old = AIGCLabel.for_producer(demo_label.content_producer, label="2")
    src = tmp_path / "in.jpg"
    exif = _exif(_user_comment(old, prefix), in_ifd0=in_ifd0)
    xmp = new_packet(old.to_json())
    _image().save(src, "JPEG", exif=exif, icc_profile=_icc(), xmp=xmp)
    found = api.read_labels(src)
    assert [f.location for f in found] == [where, "APP1 XMP TC260:AIGC"]
    assert all(f.label == old for f in found)
    assert found[0].parsed is not None and found[0].parsed.shape == "wrapped"
    report = api.inspect(src)
    assert "multiple-labels" in {p.code for p in report.problems} and not report.ok

    out = tmp_path / "out.jpg"
    api.write_label(src, demo_label, out)
    assert [(f.location, f.label) for f in api.read_labels(out)] == [("APP1 XMP TC260:AIGC", demo_label)]
    assert api.inspect(out).ok
    exif_before = [s for m, s in _segments(src.read_bytes())[0] if s[4:10] == b"Exif\x00\x00"]
    exif_after = [s for m, s in _segments(out.read_bytes())[0] if s[4:10] == b"Exif\x00\x00"]
    assert len(exif_before[0]) == len(exif_after[0])
    changed = [i for i, (x, y) in enumerate(zip(exif_before[0], exif_after[0], strict=True)) if x != y]
    assert changed, "the comment was not blanked"
    assert max(changed) - min(changed) < len(_user_comment(old, prefix)), "bytes outside the comment changed"
    [meta] = _exiftool(out)
    assert not str(meta.get("ExifIFD:UserComment", meta.get("IFD0:UserComment", ""))).strip()
    assert meta["IFD0:Make"] == "TestCam" and meta["ExifIFD:DateTimeOriginal"] == "2026:01:02 03:04:05"
    assert _pixels(src) == _pixels(out)
    assert _segments(src.read_bytes())[1] == _segments(out.read_bytes())[1]

    api.strip_label(out)
    assert api.read_labels(out) == []


def test_user_comment_only_label_gets_xmp_after_the_blanked_exif(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = tmp_path / "in.jpg"
    _image().save(src, "JPEG", exif=_exif(_user_comment(demo_label)))
    assert [f.location for f in api.read_labels(src)] == ["APP1 EXIF Exif SubIFD UserComment"]
    out = tmp_path / "out.jpg"
    api.write_label(src, demo_label, out)
    assert [(f.location, f.label) for f in api.read_labels(out)] == [("APP1 XMP TC260:AIGC", demo_label)]
    markers = [(m, s[4:10]) for m, s in _segments(out.read_bytes())[0]]
    assert markers[:3] == [(0xE0, b"JFIF\x00\x01"), (0xE1, b"Exif\x00\x00"), (0xE1, XMP_SIG[:6])]
    api.strip_label(out)
    assert api.read_labels(out) == []
    assert _segments(out.read_bytes())[1] == _segments(src.read_bytes())[1]


@pytest.mark.interop  # exiftool
def test_plain_user_comment_is_not_a_label(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = tmp_path / "in.jpg"
    _image().save(src, "JPEG", exif=_exif(b"ASCII\x00\x00\x00holiday photo"))
    assert api.read_labels(src) == []
    api.write_label(src, demo_label)
    [meta] = _exiftool(src)
    assert meta["ExifIFD:UserComment"] == "holiday photo"


# ---------------------------------------------------------------------------- Extended XMP


def _extended_jpeg(path: Path, extended: bytes, main_extra: str = "") -> bytes:
    """A JPEG whose Extended XMP (split over APP1 chunks) holds ``extended``; returns its GUID."""
    guid = hashlib.md5(extended).hexdigest().upper().encode()
    main = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmpNote="http://ns.adobe.com/xmp/note/"'
        f' xmpNote:HasExtendedXMP="{guid.decode()}"{main_extra}/></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    ).encode()
    buffer = io.BytesIO()
    _image().save(buffer, "JPEG", exif=_exif())
    data = buffer.getvalue()
    segments, rest = _segments(data)
    chunks = []
    for offset in range(0, len(extended), 65000):
        payload = EXT_SIG + guid + struct.pack(">II", len(extended), offset) + extended[offset : offset + 65000]
        chunks.append(b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload)
    main_segment = b"\xff\xe1" + struct.pack(">H", len(XMP_SIG) + len(main) + 2) + XMP_SIG + main
    head = b"".join(s for _, s in segments[:2])
    path.write_bytes(b"\xff\xd8" + head + main_segment + b"".join(chunks) + b"".join(s for _, s in segments[2:]) + rest)
    return guid


def _extended_packet(label: AIGCLabel | None, description: str) -> bytes:
    value = label.to_json().replace(chr(34), "&quot;") if label else ""
    aigc = f'<TC260:AIGC xmlns:TC260="{TC260_NS}">{value}</TC260:AIGC>'
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li></rdf:Alt></dc:description>'
        f"{aigc if label else ''}</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


@pytest.mark.interop  # exiftool
def test_label_in_extended_xmp_is_found_and_moved(tmp_path: Path, demo_label: AIGCLabel) -> None:
    old = AIGCLabel.for_producer(demo_label.content_producer, label="3")
    description = "long " * 20000  # 100 kB: two Extended XMP chunks
    src = tmp_path / "ext.jpg"
    old_guid = _extended_jpeg(src, _extended_packet(old, description))
    [meta] = _exiftool(src, config=write_exiftool_config(tmp_path))
    assert meta["XMP-TC260:AIGC"] == old.to_json()  # exiftool accepts our hand-made fixture
    [found] = api.read_labels(src)
    assert found.location == "APP1 Extended XMP TC260:AIGC" and found.label == old

    out = tmp_path / "out.jpg"
    api.write_label(src, demo_label, out)
    assert [(f.location, f.label) for f in api.read_labels(out)] == [("APP1 XMP TC260:AIGC", demo_label)]
    [meta] = _exiftool(out, config=write_exiftool_config(tmp_path))
    assert meta["XMP-TC260:AIGC"] == demo_label.to_json()
    assert str(meta["XMP-dc:Description"]).strip() == description.strip()
    assert not [key for key in meta if key.endswith("Warning")]
    guid = str(meta["XMP-xmpNote:HasExtendedXMP"])
    assert guid != old_guid.decode()
    chunks = [s for m, s in _segments(out.read_bytes())[0] if s[4:].startswith(EXT_SIG)]
    assert len(chunks) == 2
    extended = b"".join(c[4 + len(EXT_SIG) + 40 :] for c in chunks)
    assert hashlib.md5(extended).hexdigest().upper() == guid
    assert _pixels(src) == _pixels(out)

    api.strip_label(out)
    assert api.read_labels(out) == []
    [meta] = _exiftool(out)
    assert not [key for key in meta if key.endswith("Warning")]
    assert str(meta["XMP-dc:Description"]).strip() == description.strip()


def test_incomplete_extended_xmp_with_label_is_reported(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = tmp_path / "ext.jpg"
    _extended_jpeg(src, _extended_packet(demo_label, "x" * 70000))
    segments, rest = _segments(src.read_bytes())
    first_chunk = min(i for i, (_, s) in enumerate(segments) if s[4:].startswith(EXT_SIG))
    kept = [s for i, (_, s) in enumerate(segments) if i != first_chunk]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8" + b"".join(kept) + rest)
    [found] = api.read_labels(broken)
    assert found.error is not None and "incomplete" in found.error
    api.write_label(broken, demo_label)
    assert [f.location for f in api.read_labels(broken)] == ["APP1 XMP TC260:AIGC"]


def _with_segments(src: Path, dst: Path, *payloads: bytes) -> None:
    """``src`` with APP1 segments holding ``payloads`` inserted after its APP0."""
    segments, rest = _segments(src.read_bytes())
    extra = b"".join(b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p for p in payloads)
    dst.write_bytes(b"\xff\xd8" + segments[0][1] + extra + b"".join(s for _, s in segments[1:]) + rest)


def test_duplicate_and_unreferenced_placements_are_all_reported_and_cleaned(
    tmp_path: Path, demo_label: AIGCLabel
) -> None:
    old = AIGCLabel.for_producer(demo_label.content_producer, label="2")
    plain = tmp_path / "plain.jpg"
    _image().save(plain, "JPEG", icc_profile=_icc())
    orphan = _extended_packet(old, "orphan")
    guid = hashlib.md5(orphan).hexdigest().upper().encode()
    src = tmp_path / "many.jpg"
    _with_segments(
        plain,
        src,
        XMP_SIG + FOREIGN_XMP,
        XMP_SIG + new_packet(old.to_json()),
        EXT_SIG + guid + struct.pack(">II", len(orphan), 0) + orphan,
    )
    found = api.read_labels(src)
    assert [f.location for f in found] == [
        "APP1 XMP TC260:AIGC (XMP segment 2 of 2)",
        f"APP1 Extended XMP TC260:AIGC (unreferenced GUID {guid.decode()})",
    ]
    assert all(f.label == old for f in found)
    out = tmp_path / "out.jpg"
    api.write_label(src, demo_label, out)
    assert [(f.location, f.label) for f in api.read_labels(out)] == [("APP1 XMP TC260:AIGC", demo_label)]
    data = out.read_bytes()
    assert data.count(XMP_SIG) == 1 and b"Sunset" in data and b"orphan" in data
    assert _segments(data)[1] == _segments(src.read_bytes())[1] and _pixels(out) == _pixels(src)
    api.strip_label(out)
    assert api.read_labels(out) == []
    assert b"Sunset" in out.read_bytes()


# ---------------------------------------------------------------------------- size limit


@pytest.mark.interop  # exiftool
def test_xmp_padding_is_dropped_when_that_makes_room(tmp_path: Path, demo_label: AIGCLabel) -> None:
    body = FOREIGN_XMP.replace(b"Sunset", b"S" * 60000)
    padded = body.replace(b" " * 300, b" " * (65502 - len(body) + 300))
    assert len(padded) == 65502
    src = tmp_path / "padded.jpg"
    _image().save(src, "JPEG", xmp=padded)
    api.write_label(src, demo_label)
    assert api.read_label(src) == demo_label
    assert EXT_SIG not in src.read_bytes()
    [meta] = _exiftool(src)
    assert meta["XMP-dc:Title"] == "S" * 60000


@pytest.mark.interop  # exiftool
def test_oversized_xmp_spills_into_extended_xmp(tmp_path: Path, demo_label: AIGCLabel) -> None:
    title = "T" * (65502 - len(FOREIGN_XMP) + 6)
    full = FOREIGN_XMP.replace(b"Sunset", title.encode()).replace(b" " * 300, b" ")
    src = tmp_path / "big.jpg"
    _image().save(src, "JPEG", xmp=full, icc_profile=_icc())
    out = tmp_path / "out.jpg"
    api.write_label(src, demo_label, out)
    assert [(f.location, f.label) for f in api.read_labels(out)] == [("APP1 XMP TC260:AIGC", demo_label)]
    segments, rest = _segments(out.read_bytes())
    standard = [s for _, s in segments if s[4:].startswith(XMP_SIG)]
    assert len(standard) == 1 and len(standard[0]) - 4 - len(XMP_SIG) <= 65502
    assert b"TC260:AIGC" in standard[0]  # the label stays where every reader looks
    [meta] = _exiftool(out, config=write_exiftool_config(tmp_path))
    assert not [key for key in meta if key.endswith("Warning")]
    assert meta["XMP-TC260:AIGC"] == demo_label.to_json()
    assert meta["XMP-dc:Title"] == title and meta["XMP-xmp:CreatorTool"] == "Paint 1.0"
    assert rest == _segments(src.read_bytes())[1] and _pixels(out) == _pixels(src)
    libxmp = require_module("libxmp")
    files = libxmp.XMPFiles(file_path=str(out))
    xmp = files.get_xmp()
    files.close_file()
    assert xmp.get_localized_text("http://purl.org/dc/elements/1.1/", "title", None, "x-default") == title
    api.strip_label(out)
    assert api.read_labels(out) == []
    [meta] = _exiftool(out)
    assert meta["XMP-dc:Title"] == title


def test_oversized_xmp_with_extended_xmp_already_is_refused(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = tmp_path / "ext.jpg"
    _extended_jpeg(
        src,
        _extended_packet(None, "small"),
        main_extra=f' xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="{"f" * 65000}"',
    )
    before = src.read_bytes()
    with pytest.raises(LimitExceededError, match="65502"):
        api.write_label(src, demo_label)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext.jpg"]


# ---------------------------------------------------------------------------- interop


@pytest.mark.interop  # exiftool
def test_exiftool_written_label_is_read_and_replaced(tmp_path: Path, demo_label: AIGCLabel) -> None:
    exe = require_tool("exiftool")
    path = _rich_jpeg(tmp_path / "et.jpg")
    theirs = AIGCLabel.for_producer(demo_label.content_producer, label="2")
    subprocess.run(
        [
            exe,
            "-config",
            str(write_exiftool_config(tmp_path)),
            "-q",
            "-overwrite_original",
            f"-XMP-TC260:AIGC={theirs.to_json()}",
            str(path),
        ],
        check=True,
    )
    assert [(f.location, f.label) for f in api.read_labels(path)] == [("APP1 XMP TC260:AIGC", theirs)]
    before = path.read_bytes()
    api.write_label(path, demo_label)
    assert [f.label for f in api.read_labels(path)] == [demo_label]
    assert _segments(before)[1] == _segments(path.read_bytes())[1]
    [meta] = _exiftool(path, config=write_exiftool_config(tmp_path))
    assert meta["XMP-TC260:AIGC"] == demo_label.to_json() and meta["XMP-dc:Title"] == "Sunset"


def test_python_xmp_toolkit_both_ways(tmp_path: Path, demo_label: AIGCLabel) -> None:
    libxmp = require_module("libxmp")
    libxmp.XMPMeta.register_namespace(TC260_NS, "TC260")
    ours = _rich_jpeg(tmp_path / "ours.jpg")
    api.write_label(ours, demo_label)
    files = libxmp.XMPFiles(file_path=str(ours))
    meta = files.get_xmp()
    files.close_file()
    assert meta.get_property(TC260_NS, "AIGC") == demo_label.to_json()
    assert meta.get_property("http://ns.adobe.com/xap/1.0/", "CreatorTool") == "Paint 1.0"

    # The TC260 image guide's own method writes; we read, then replace.
    theirs = _rich_jpeg(tmp_path / "theirs.jpg")
    label = AIGCLabel.for_producer(demo_label.content_producer, label="3")
    files = libxmp.XMPFiles(file_path=str(theirs), open_forupdate=True)
    meta = files.get_xmp()
    meta.set_property(TC260_NS, "AIGC", label.to_json())
    files.put_xmp(meta)
    files.close_file()
    assert [f.label for f in api.read_labels(theirs)] == [label]
    api.write_label(theirs, demo_label)
    assert [f.label for f in api.read_labels(theirs)] == [demo_label]
    assert libxmp_read(theirs) == demo_label.to_json()


# ---------------------------------------------------------------------------- payload digest


def test_payload_digest_tracks_pixels_not_metadata(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = _rich_jpeg(tmp_path / "a.jpg", progressive=True)
    container = JpegContainer()
    digest = container.payload_digest(src)
    data = src.read_bytes()
    _, rest = _segments(data)
    at = len(data) - len(rest) + 200  # inside the first scan's entropy-coded data
    flipped = tmp_path / "flipped.jpg"
    flipped.write_bytes(data[:at] + bytes([data[at] ^ 0x10 if data[at] not in (0xEF, 0xFF) else 0x11]) + data[at + 1 :])
    assert container.payload_digest(flipped) != digest
    api.write_label(src, demo_label)
    assert container.payload_digest(src) == digest
    with pytest.raises(TruncatedFileError):
        truncated = tmp_path / "truncated.jpg"
        truncated.write_bytes(data[:-2])  # no EOI
        container.payload_digest(truncated)


# ---------------------------------------------------------------------------- malformed input

_SOI_APP0 = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (_SOI_APP0 + b"\x00\x00\x00\x00", MalformedFileError, "expected a marker"),
        (_SOI_APP0 + b"\xff\xfe\x00\x01", MalformedFileError, "invalid length"),
        (_SOI_APP0 + b"\xff\xd9", MalformedFileError, "EOI comes before"),
        (_SOI_APP0 + b"\xff\xfe\x01\x00abc", TruncatedFileError, "ends inside segment"),
        (_SOI_APP0, TruncatedFileError, "no SOS"),
        (_SOI_APP0 + b"\xff\xd8", MalformedFileError, "invalid marker"),
        (_SOI_APP0 + b"\xff" * 70000, LimitExceededError, "fill bytes"),
    ],
)
def test_malformed_files_raise_typed_errors(
    tmp_path: Path, demo_label: AIGCLabel, data: bytes, error: type[Exception], match: str
) -> None:
    assert_refused_untouched(tmp_path / "bad.jpg", data, error, match, demo_label)


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("junk", [b"hello", b"\xff\x00", b"\x01"])
def test_stray_bytes_between_header_segments_are_skipped_and_kept(
    tmp_path: Path, demo_label: AIGCLabel, junk: bytes
) -> None:
    """libjpeg (Pillow) skips extraneous bytes before a marker; so do we, and the bytes stay."""
    clean = _rich_jpeg(tmp_path / "clean.jpg")
    data = clean.read_bytes()
    at = len(_SOI_APP0)  # right after Pillow's APP0
    src = tmp_path / "junk.jpg"
    src.write_bytes(data[:at] + junk + data[at:])
    assert _pixels(src) == _pixels(clean)
    out = api.write_label(src, demo_label, tmp_path / "out.jpg")
    written = out.read_bytes()
    assert written[written.index(b"\xff\xda") :] == data[data.index(b"\xff\xda") :], "scan data changed"
    assert junk in written[: written.index(b"\xff\xda")]
    assert _pixels(out) == _pixels(clean)
    assert JpegContainer().payload_digest(out) == JpegContainer().payload_digest(clean)
    assert _aigc_labels(out) == [demo_label.to_json()]
    assert exiftool_label(out) == demo_label.to_json()


def _jpeg_with_xmp(path: Path, packet: bytes) -> Path:
    """A plain Pillow JPEG with ``packet`` as its XMP segment, right after APP0, bytes as given."""
    _image().save(path, "JPEG")
    clean = path.read_bytes()
    segment = b"\xff\xe1" + struct.pack(">H", 2 + len(XMP_SIG) + len(packet)) + XMP_SIG + packet
    path.write_bytes(clean[: len(_SOI_APP0)] + segment + clean[len(_SOI_APP0) :])
    return path


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le"])
def test_utf16_xmp_packet_is_merged_into_and_written_as_utf8(
    tmp_path: Path, demo_label: AIGCLabel, encoding: str
) -> None:
    """XMP may be UTF-16 (XMP Part 1, 7.1); its properties are kept, the packet is written back as UTF-8."""
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"/></rdf:RDF></x:xmpmeta>'
        '<?xpacket end="w"?>'
    ).encode(encoding)
    src = _jpeg_with_xmp(tmp_path / "utf16.jpg", packet)
    out = api.write_label(src, demo_label, tmp_path / "out.jpg")
    _assert_lossless(src, out)
    assert exiftool_label(out) == demo_label.to_json()
    assert exiftool_read(out).get("XMP-dc:Format") == "image/jpeg"


@pytest.mark.interop  # exiftool
def test_empty_xmpmeta_packet_gets_an_rdf_element(tmp_path: Path, demo_label: AIGCLabel) -> None:
    """An ``x:xmpmeta`` with no ``rdf:RDF`` (as in Pillow's test images) is labelled, not refused."""
    packet = b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/" />'
    src = _jpeg_with_xmp(tmp_path / "empty.jpg", packet)
    out = api.write_label(src, demo_label, tmp_path / "out.jpg")
    _assert_lossless(src, out)
    assert exiftool_label(out) == demo_label.to_json()


@pytest.mark.interop  # exiftool
def test_mpo_index_offsets_follow_an_xmp_packet_stored_after_it(tmp_path: Path, demo_label: AIGCLabel) -> None:
    """Pillow writes an MPO's MPF index (APP2) before its XMP: when the packet grows, the second
    image moves away from the index, whose offsets are moved with it."""
    rng = np.random.default_rng(3)
    first, second = (Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)) for _ in range(2))
    src = tmp_path / "in.mpo"
    first.save(src, save_all=True, append_images=[second], xmp=FOREIGN_XMP)
    data = src.read_bytes()
    assert data.index(b"MPF\0") < data.index(XMP_SIG), "Pillow stores the index first"

    def frames(path: Path) -> list[bytes]:
        with Image.open(path) as image:
            assert image.n_frames == 2
            out = []
            for index in range(2):
                image.seek(index)
                out.append(image.convert("RGB").tobytes())
            return out

    out = api.write_label(src, demo_label, tmp_path / "out.mpo")
    assert len(out.read_bytes()) > len(data) + 100
    assert frames(out) == frames(src)
    tags = _exiftool("-MPF:all", "-ExifTool:Warning", "-b", out)[0]
    assert "ExifTool:Warning" not in tags, tags
    assert exiftool_label(out) == demo_label.to_json()
    stripped = api.strip_label(out, tmp_path / "stripped.mpo")
    assert frames(stripped) == frames(src)


def _afcp_trailer(start: int, text: bytes) -> bytes:
    """An AFCP trailer (big-endian 'AXS!') at absolute offset ``start`` holding one TEXT entry."""
    value_at = start + 12 + 12
    header = b"AXS!" + b"\x00\x01" + struct.pack(">HI", 1, 0)
    entry = b"TEXT" + struct.pack(">II", len(text), value_at)
    return header + entry + text + b"AXS!" + struct.pack(">II", start, 0)


@pytest.mark.interop  # exiftool
def test_afcp_trailer_offsets_follow_the_header_growth(tmp_path: Path, demo_label: AIGCLabel) -> None:
    """AFCP stores absolute offsets after EOI: they move with the bytes the new XMP segment adds, so
    exiftool reads the trailer without having to repair it."""
    _image().save(tmp_path / "plain.jpg", "JPEG")
    plain = (tmp_path / "plain.jpg").read_bytes()
    src = tmp_path / "afcp.jpg"
    src.write_bytes(plain + _afcp_trailer(len(plain), b"caption kept"))
    before = _exiftool("-AFCP:all", "-ExifTool:Warning", src)[0]
    assert before.get("AFCP:Text") == "caption kept" and "ExifTool:Warning" not in before
    out = api.write_label(src, demo_label, tmp_path / "out.jpg")
    after = _exiftool("-AFCP:all", "-ExifTool:Warning", out)[0]
    assert after.get("AFCP:Text") == "caption kept"
    assert "ExifTool:Warning" not in after, after
    assert JpegContainer().payload_digest(out) == JpegContainer().payload_digest(src)
    stripped = api.strip_label(out, tmp_path / "stripped.jpg")
    assert stripped.read_bytes() == src.read_bytes()  # strip gives the original bytes back, trailer included


def test_data_before_soi_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.jpg"
    path.write_bytes(b"junk" + _SOI_APP0)
    with pytest.raises(MalformedFileError, match="SOI"):
        JpegContainer().read(path)


def test_write_failure_leaves_input_untouched(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = _rich_jpeg(tmp_path / "a.jpg")
    data = path.read_bytes()
    segments, _ = _segments(data)
    cut = sum(len(s) for _, s in segments[:3]) + 2 + 10  # inside a segment before SOS
    path.write_bytes(data[:cut])
    with pytest.raises(TruncatedFileError):
        api.write_label(path, demo_label)
    assert path.read_bytes() == data[:cut]
    assert [p.name for p in tmp_path.iterdir()] == ["a.jpg"]


_FUZZ = FuzzDir("aigclabel-jpeg-fuzz-")


def _fuzz_seed(kind: str) -> bytes:
    seed = _FUZZ.path / f"seed-{kind}.jpg"
    if not seed.exists():
        label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO")
        if kind == "extended":
            _extended_jpeg(seed, _extended_packet(label, "fuzz"))
        else:
            exif = _exif(_user_comment(label))
            _image(24, 16).save(seed, "JPEG", exif=exif, xmp=new_packet(label.to_json()), progressive=True)
    return seed.read_bytes()


@pytest.mark.slow  # hypothesis
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_files_give_typed_errors_or_results(data: st.DataObject) -> None:
    seed = _fuzz_seed(data.draw(st.sampled_from(["exif+xmp", "extended"]), label="seed"))
    mutated = bytearray(seed)
    if data.draw(st.booleans(), label="truncate"):
        mutated = mutated[: data.draw(st.integers(0, len(seed) - 1), label="cut")]
    for _ in range(data.draw(st.integers(0, 6), label="flips")):
        if mutated:
            header = data.draw(st.booleans(), label="in header")  # most bytes are scan data: aim at metadata
            at = data.draw(st.integers(0, min(len(mutated), 900 if header else len(mutated)) - 1), label="at")
            mutated[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    path = _FUZZ.path / "fuzz.jpg"
    out = _FUZZ.path / "fuzz-out.jpg"
    run_every_action(path, out, bytes(mutated), JpegContainer())
    if out.exists():
        with contextlib.suppress(AIGCLabelError):
            assert len([f for f in api.read_labels(out) if f.label is not None]) <= 1
        out.unlink()


def teardown_module() -> None:
    _FUZZ.cleanup()


def test_read_back_through_the_writing_descriptor_refuses_a_wrong_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_label: AIGCLabel
) -> None:
    """The copy is read back through the descriptor that wrote it (no second open): a writer that put
    another label in the header is refused there, per file in a batch, and every input stays as it was."""
    import aigclabel.containers.jpeg as jpeg_module
    from aigclabel import write_many

    from ._tools import no_temp_files

    other = AIGCLabel.for_producer(demo_label.content_producer)
    real = jpeg_module.set_aigc
    files = [_rich_jpeg(tmp_path / f"{n}.jpg") for n in range(3)]
    before = [f.read_bytes() for f in files]
    monkeypatch.setattr(jpeg_module, "set_aigc", lambda packet, value: real(packet, other.to_json()))
    with pytest.raises(MalformedFileError, match="did not read back as written"):
        api.write_label(files[0], demo_label)
    results = write_many([(f, demo_label) for f in files])
    assert [type(r.error) for r in results] == [MalformedFileError] * 3
    assert [f.read_bytes() for f in files] == before and no_temp_files(tmp_path)
    monkeypatch.setattr(jpeg_module, "set_aigc", real)
    assert all(r.ok for r in write_many([(f, demo_label) for f in files]))
    assert [api.read_label(f) for f in files] == [demo_label] * 3
