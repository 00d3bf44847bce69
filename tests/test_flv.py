"""FLV labels: the onMetaData ``AIGC`` key, with PreviousTagSize and keyframe positions kept valid."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigclabel import AIGCLabel
from aigclabel.api import read_labels, write_label
from aigclabel.containers.flv import FLVContainer, parse_script
from aigclabel.errors import MalformedFileError, TruncatedFileError
from tests._tools import assert_hostile_cases, assert_typed_error_or_valid, truncate_or_flip
from tests._video import AUDIO, VIDEO, Fresh, copier, decode_errors, ffmpeg, ffprobe_tags, packet_count, stream_hash
from tests.conftest import require_tool

pytestmark = pytest.mark.interop  # ffmpeg makes the fixtures; ffprobe reads them back


def check_structure(path: Path) -> dict[str, Any]:
    """Independent walk: every PreviousTagSize matches, keyframe positions hit video keyframe tags.

    Returns onMetaData as a plain dict.
    """
    data = path.read_bytes()
    assert data[:3] == b"FLV"
    (offset,) = struct.unpack_from(">I", data, 5)
    assert data[offset : offset + 4] == bytes(4)
    pos = offset + 4
    meta: dict[str, Any] = {}
    video_keyframes = set()
    while pos < len(data):
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        (previous,) = struct.unpack_from(">I", data, pos + 11 + size)
        assert previous == 11 + size
        if data[pos] == 18 and not meta:
            name, value, _ = parse_script(data[pos + 11 : pos + 11 + size])
            assert name == "onMetaData" and value is not None
            meta = {k: v[1] for k, v in value[1]}
        if data[pos] == 9 and data[pos + 11] >> 4 == 1:
            video_keyframes.add(pos)
        pos += 11 + size + 4
    assert pos == len(data)
    keyframes = meta.get("keyframes")
    if keyframes:
        positions = {int(v[1]) for k, v in keyframes if k == "filepositions" for v in v[1]}
        assert positions and positions <= video_keyframes
    if "filesize" in meta:
        assert meta["filesize"] == len(data)
    return meta


FLV1_INDEXED = [*VIDEO, *AUDIO, "-c:v", "flv1", "-g", "3", "-c:a", "libmp3lame", "-ar", "44100", "-shortest"]
FLV1_INDEXED += ["-flvflags", "add_keyframe_index"]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("flv")
    made = {
        "flv1_index": ffmpeg(d / "flv1.flv", *FLV1_INDEXED),
        "h264": ffmpeg(d / "h264.flv", *VIDEO, *AUDIO, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"),
    }
    # The same stream without any script tag (some encoders write none).
    data = made["h264"].read_bytes()
    first = 13
    assert data[first] == 18
    size = int.from_bytes(data[first + 1 : first + 4], "big")
    bare = d / "nometa.flv"
    bare.write_bytes(data[:first] + data[first + 11 + size + 4 :])
    made["no_metadata"] = bare
    return made


@pytest.fixture
def fresh(fixtures: dict[str, Path], tmp_path: Path) -> Fresh:
    return copier(fixtures, tmp_path)


@pytest.mark.parametrize("name", ["flv1_index", "h264", "no_metadata"])
def test_write_is_lossless_and_read_by_ffprobe(fresh: Fresh, name: str, demo_label: AIGCLabel) -> None:
    src = fresh(name)
    before = src.read_bytes()
    out = src.with_name("labelled.flv")
    write_label(src, demo_label, out)
    assert src.read_bytes() == before
    assert stream_hash(out) == stream_hash(src)
    assert packet_count(out) == packet_count(src)
    assert decode_errors(out) == ""
    assert FLVContainer().payload_digest(out) == FLVContainer().payload_digest(src)
    meta = check_structure(out)
    assert meta["AIGC"] == demo_label.to_json()
    found = read_labels(out)
    assert [f.location for f in found] == ["script tag #0 onMetaData/AIGC"] and found[0].label == demo_label
    assert ffprobe_tags(out)["AIGC"] == demo_label.to_json()
    require_tool("exiftool")
    shown = subprocess.run(["exiftool", "-j", "-Flash:AIGC", str(out)], capture_output=True, check=True).stdout
    assert json.loads(shown)[0]["AIGC"] == demo_label.to_json()


def test_keyframe_index_moves_with_the_data(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("flv1_index")
    before = check_structure(src)
    assert before.get("keyframes"), "fixture should carry a keyframe index"
    write_label(src, demo_label)
    after = check_structure(src)
    moved = after["lastkeyframelocation"] - before["lastkeyframelocation"]
    assert moved == len(src.read_bytes()) - before["filesize"] != 0  # moved with the data


def test_relabel_strip_and_reads_ffmpeg_label(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = fresh("h264")
    tagged = ffmpeg(tmp_path / "ff.flv", "-i", str(src), "-c", "copy", "-metadata", f"AIGC={demo_label.to_json()}")
    found = read_labels(tagged)
    assert len(found) == 1 and found[0].label == demo_label
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(tagged, second)
    write_label(tagged, second)
    assert [f.label for f in read_labels(tagged)] == [second]
    tags = ffprobe_tags(tagged)
    assert tags["AIGC"] == second.to_json() and tags["encoder"].startswith("Lavf")
    FLVContainer().strip(tagged, tagged)
    assert read_labels(tagged) == [] and "AIGC" not in ffprobe_tags(tagged)
    assert stream_hash(tagged) == stream_hash(src)
    check_structure(tagged)


def test_hostile_inputs_raise_typed_errors(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    good = fresh("h264").read_bytes()
    deep = bytearray(good[:13])
    body = b"\x02\x00\x0aonMetaData" + b"\x0a\x00\x00\x00\x01" * 200 + b"\x05"
    deep += bytes([18]) + len(body).to_bytes(3, "big") + bytes(7) + body + struct.pack(">I", 11 + len(body))
    cases = {
        "cut_in_metadata": (good[:40], TruncatedFileError),
        "bad_header": (b"FLV\x01\x05\x00\x00\x00\x02" + bytes(8), MalformedFileError),
        "nesting_bomb": (bytes(deep), MalformedFileError),
    }
    assert_hostile_cases(FLVContainer(), cases, tmp_path, ".flv", demo_label)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_truncation_and_bit_flips(fixtures: dict[str, Path], tmp_path: Path, data: st.DataObject) -> None:
    original = fixtures["flv1_index"].read_bytes()
    mutated = truncate_or_flip(data, original, at=st.integers(0, min(len(original) - 1, 1200)))  # header, onMetaData
    label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO")
    path, out = tmp_path / "fuzz.flv", tmp_path / "fuzz-out.flv"
    assert_typed_error_or_valid(path, out, mutated, label, container=FLVContainer())


@pytest.mark.parametrize("name", ["flv1_index", "h264"])
def test_cut_short_recording_is_labelled(fresh: Fresh, name: str, tmp_path: Path, demo_label: AIGCLabel) -> None:
    """A file ending inside an audio/video tag (``dd`` of a recording) is labelled; the cut tag stays."""
    whole = fresh(name).read_bytes()
    cut = tmp_path / "cut.flv"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    out = write_label(cut, demo_label, tmp_path / "labelled.flv")
    assert [f.label for f in read_labels(out)] == [demo_label]
    assert ffprobe_tags(out)["AIGC"] == demo_label.to_json()
    assert stream_hash(out) == stream_hash(cut)
    assert FLVContainer().payload_digest(out) == FLVContainer().payload_digest(cut)
    assert out.read_bytes().endswith(whole[len(whole) * 2 // 3 - 100 : len(whole) * 2 // 3])
