"""GIF container: XMP Application Extension labels, checked with exiftool and python-xmp-toolkit."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageSequence

from aigclabel import AIGCLabel, AIGCLabelError, api
from aigclabel.containers.gif import MAGIC_TRAILER, XMP_APP_ID, GifContainer
from aigclabel.errors import LimitExceededError, MalformedFileError, TruncatedFileError

from ._tools import (
    FuzzDir,
    assert_refused_untouched,
    exiftool_json,
    libxmp_read,
    libxmp_write,
    run_every_action,
    write_exiftool_config,
)
from .conftest import require_module, require_tool

XMP_START = b"\x21\xff\x0b" + XMP_APP_ID


def _frames(count: int = 3, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (20, 32), dtype=np.uint8)).convert("P") for _ in range(count)]


def _animated(path: Path, comment: bytes = b"made by a test") -> Path:
    frames = _frames()
    frames[0].save(path, save_all=True, append_images=frames[1:], loop=0, duration=80, comment=comment)
    return path


def _all_frames(path: Path) -> list[bytes]:
    with Image.open(path) as im:
        return [frame.convert("RGBA").tobytes() for frame in ImageSequence.Iterator(im)]


def _without_xmp(data: bytes) -> bytes:
    """``data`` with its XMP extension cut out (found by its fixed header and magic trailer)."""
    start = data.find(XMP_START)
    if start < 0:
        return data
    end = data.index(MAGIC_TRAILER, start) + len(MAGIC_TRAILER)
    return data[:start] + data[end:]


@pytest.mark.interop  # exiftool
def test_write_is_lossless_for_animated_gif(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = _animated(tmp_path / "in.gif")
    out = tmp_path / "out.gif"
    api.write_label(src, demo_label, out)
    [found] = api.read_labels(out)
    assert found.label == demo_label and found.location == "GIF XMP Application Extension TC260:AIGC"
    # Every byte of the original is still there, in order: only the XMP block was added.
    assert _without_xmp(out.read_bytes()) == src.read_bytes()
    assert _all_frames(src) == _all_frames(out)
    container = GifContainer()
    assert container.payload_digest(src) == container.payload_digest(out)
    # Inserted after the colour table and the NETSCAPE loop block, before the comment and frames.
    data = out.read_bytes()
    assert data.index(b"NETSCAPE2.0") < data.index(XMP_START) < data.index(b"made by a test")
    [meta] = exiftool_json("-validate", "-warning", "-error", "-a", out)
    assert meta["ExifTool:Validate"] == "OK"
    [meta] = exiftool_json(out)
    assert meta["XMP-TC260:Aigc"] == demo_label.to_json()
    assert meta["GIF:FrameCount"] == 3 and meta["GIF:AnimationIterations"] == "Infinite"
    assert meta["File:Comment"] == "made by a test"
    api.strip_label(out)
    assert out.read_bytes() == src.read_bytes()


def test_labelling_twice_leaves_one_label(tmp_path: Path, demo_label: AIGCLabel) -> None:
    path = _animated(tmp_path / "a.gif")
    api.write_label(path, demo_label)
    second = demo_label.with_propagation(demo_label.content_producer)
    api.write_label(path, second)
    assert [f.label for f in api.read_labels(path)] == [second]
    assert path.read_bytes().count(XMP_START) == 1


def test_gif87a_is_bumped_only_when_an_extension_is_written(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = tmp_path / "old.gif"
    _frames(1)[0].save(src)
    data = src.read_bytes()
    src.write_bytes(b"GIF87a" + data[6:])  # a single plain image is valid GIF87a
    stripped = tmp_path / "stripped.gif"
    api.strip_label(src, stripped)
    assert stripped.read_bytes() == src.read_bytes()
    out = tmp_path / "out.gif"
    api.write_label(src, demo_label, out)
    assert out.read_bytes()[:6] == b"GIF89a"
    assert api.read_label(out) == demo_label
    assert _all_frames(src) == _all_frames(out)
    assert GifContainer().payload_digest(src) == GifContainer().payload_digest(out)


def test_comment_label_is_reported_and_removed(tmp_path: Path, demo_label: AIGCLabel) -> None:
    old = AIGCLabel.for_producer(demo_label.content_producer, label="2")
    src = _animated(tmp_path / "in.gif")
    api.write_label(src, old, tmp_path / "both.gif")
    data = (tmp_path / "both.gif").read_bytes()
    text = old.to_json("wrapped").encode()
    blocks = b"".join(bytes([len(text[i : i + 255])]) + text[i : i + 255] for i in range(0, len(text), 255))
    assert data.endswith(b"\x3b")
    (tmp_path / "both.gif").write_bytes(data[:-1] + b"\x21\xfe" + blocks + b"\x00\x3b")  # comment before trailer
    found = api.read_labels(tmp_path / "both.gif")
    assert [f.location for f in found] == ["GIF XMP Application Extension TC260:AIGC", "GIF Comment Extension"]
    assert {f.label for f in found} == {old}
    assert "multiple-labels" in {p.code for p in api.inspect(tmp_path / "both.gif").problems}
    out = tmp_path / "out.gif"
    api.write_label(tmp_path / "both.gif", demo_label, out)
    assert [f.label for f in api.read_labels(out)] == [demo_label]
    assert api.inspect(out).ok
    assert _all_frames(src) == _all_frames(out)
    api.strip_label(out)
    assert api.read_labels(out) == []
    assert _all_frames(src) == _all_frames(out)


@pytest.mark.interop  # exiftool
def test_exiftool_written_xmp_is_edited_in_place(tmp_path: Path, demo_label: AIGCLabel) -> None:
    exe = require_tool("exiftool")
    path = _animated(tmp_path / "et.gif")
    theirs = AIGCLabel.for_producer(demo_label.content_producer, label="3")
    config = str(write_exiftool_config(tmp_path))
    command = [exe, "-config", config, "-q", "-overwrite_original", "-XMP-dc:Title=Cat"]
    subprocess.run([*command, f"-XMP-TC260:AIGC={theirs.to_json()}", str(path)], check=True)
    assert [f.label for f in api.read_labels(path)] == [theirs]
    frames = _all_frames(path)
    api.write_label(path, demo_label)
    assert [f.label for f in api.read_labels(path)] == [demo_label]
    assert path.read_bytes().count(XMP_START) == 1
    assert _all_frames(path) == frames
    [meta] = exiftool_json(path, config=Path(config))
    assert meta["XMP-TC260:AIGC"] == demo_label.to_json() and meta["XMP-dc:Title"] == "Cat"
    api.strip_label(path)
    assert api.read_labels(path) == []
    [meta] = exiftool_json(path)
    assert meta["XMP-dc:Title"] == "Cat"


def test_python_xmp_toolkit_both_ways(tmp_path: Path, demo_label: AIGCLabel) -> None:
    require_module("libxmp")
    ours = _animated(tmp_path / "ours.gif")
    api.write_label(ours, demo_label)
    assert libxmp_read(ours) == demo_label.to_json()

    theirs = _animated(tmp_path / "theirs.gif")
    label = AIGCLabel.for_producer(demo_label.content_producer, label="2")
    libxmp_write(theirs, label.to_json())
    assert [f.label for f in api.read_labels(theirs)] == [label]
    api.write_label(theirs, demo_label)
    assert [f.label for f in api.read_labels(theirs)] == [demo_label]
    assert libxmp_read(theirs) == demo_label.to_json()


def test_payload_digest_tracks_image_data(tmp_path: Path) -> None:
    src = _animated(tmp_path / "a.gif")
    data = src.read_bytes()
    at = data.rindex(b"\x2c\x00\x00") + 20  # inside the last frame's LZW data
    flipped = tmp_path / "b.gif"
    flipped.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :])
    assert GifContainer().payload_digest(src) != GifContainer().payload_digest(flipped)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"GIF89a\x01\x00", TruncatedFileError, "Logical Screen"),
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + b"\x00" * 3, TruncatedFileError, "Global Color Table"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x99", MalformedFileError, "unknown block"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x21\xfe\x05ab", TruncatedFileError, "ends inside"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x21\xfe\x00", TruncatedFileError, "trailer"),
    ],
)
def test_malformed_files_raise_typed_errors(
    tmp_path: Path, demo_label: AIGCLabel, data: bytes, error: type[Exception], match: str
) -> None:
    assert_refused_untouched(tmp_path / "bad.gif", data, error, match, demo_label)


@pytest.mark.interop  # exiftool
def test_stray_bytes_after_an_image_are_kept_as_payload(tmp_path: Path, demo_label: AIGCLabel) -> None:
    """A file whose last image is followed by bytes that introduce no block (Pillow's
    test_extents_transparency.gif has a second GIF appended; Pillow skips such bytes) is labelled;
    the stray bytes stay."""
    clean = _animated(tmp_path / "clean.gif").read_bytes()
    assert clean.endswith(b"\x3b")
    stray = clean[:-1] + b"JUNK\x3b"
    src = tmp_path / "stray.gif"
    src.write_bytes(stray)
    out = api.write_label(src, demo_label, tmp_path / "out.gif")
    assert out.read_bytes().endswith(b"JUNK\x3b"), "the stray bytes were not copied"
    assert _all_frames(out) == _all_frames(src)
    assert GifContainer().payload_digest(out) == GifContainer().payload_digest(src)
    assert [f.raw for f in api.read_labels(out)] == [demo_label.to_json()]
    tags = exiftool_json("-XMP-TC260:AIGC", out, config=write_exiftool_config(tmp_path))[0]
    assert tags.get("XMP-TC260:AIGC") == demo_label.to_json()
    changed = tmp_path / "changed.gif"
    changed.write_bytes(stray[:-2] + b"\x00\x3b")
    assert GifContainer().payload_digest(changed) != GifContainer().payload_digest(src)


@pytest.mark.slow  # 270,000 blocks
def test_absurd_block_count_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.gif"
    path.write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00" + b"\x21\xfe\x00" * 270000 + b"\x3b")
    with pytest.raises(LimitExceededError, match="blocks"):
        api.read_labels(path)


_FUZZ = FuzzDir("aigclabel-gif-fuzz-")


def _fuzz_seed() -> bytes:
    seed = _FUZZ.path / "seed.gif"
    if not seed.exists():
        label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO")
        frames = [frame.resize((8, 6)) for frame in _frames(2)]
        frames[0].save(seed, save_all=True, append_images=frames[1:], loop=0, comment=label.to_json().encode())
        api.write_label(seed, label)
    return seed.read_bytes()


@pytest.mark.slow  # hypothesis
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_files_give_typed_errors_or_results(data: st.DataObject) -> None:
    seed = _fuzz_seed()
    mutated = bytearray(seed)
    if data.draw(st.booleans(), label="truncate"):
        mutated = mutated[: data.draw(st.integers(0, len(seed) - 1), label="cut")]
    for _ in range(data.draw(st.integers(0, 6), label="flips")):
        if mutated:
            at = data.draw(st.integers(0, len(mutated) - 1), label="at")
            mutated[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    path = _FUZZ.path / "fuzz.gif"
    out = _FUZZ.path / "fuzz-out.gif"
    run_every_action(path, out, bytes(mutated), GifContainer())
    if out.exists():
        with contextlib.suppress(AIGCLabelError):
            assert [f for f in api.read_labels(out) if f.label is not None] == []
        out.unlink()


def teardown_module() -> None:
    _FUZZ.cleanup()
