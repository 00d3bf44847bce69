"""AVI labels: LIST/INFO ``AIGC`` written without moving ``movi``, checked with ffprobe and ffmpeg."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigclabel import AIGCLabel
from aigclabel.api import read_labels, write_label
from aigclabel.containers.avi import AVIContainer, scan
from aigclabel.errors import MalformedFileError, NeedsRepairError, TruncatedFileError
from tests._tools import assert_hostile_cases, assert_typed_error_or_valid, truncate_or_flip
from tests._video import AUDIO, VIDEO, Fresh, copier, decode_errors, ffmpeg, ffprobe_tags, packet_count, stream_hash

pytestmark = pytest.mark.interop  # ffmpeg makes the fixtures; ffprobe reads them back


def _children(path: Path) -> list[tuple[bytes, bytes, int]]:
    with open(path, "rb") as handle:
        return [(c.id, c.list_type, c.offset) for c in scan(handle).children]


def _without_junk(src: Path, dst: Path) -> Path:
    """The same AVI without the JUNK chunk ffmpeg reserves before ``movi`` (idx1 is movi-relative)."""
    data = bytearray(src.read_bytes())
    with open(src, "rb") as handle:
        junk = next(c for c in scan(handle).children if c.id == b"JUNK")
    del data[junk.offset : junk.end]
    struct.pack_into("<I", data, 4, len(data) - 8)
    dst.write_bytes(bytes(data))
    return dst


def _with_trailing_junk(src: Path, dst: Path, size: int) -> Path:
    """``src`` with a JUNK chunk of ``size`` data bytes after idx1, ending the RIFF (some writers pad so)."""
    data = bytearray(src.read_bytes()) + b"JUNK" + struct.pack("<I", size) + bytes(size)
    struct.pack_into("<I", data, 4, len(data) - 8)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("avi")
    common = [*VIDEO, *AUDIO, "-c:v", "mpeg4", "-c:a", "pcm_s16le", "-shortest"]
    made = {
        "info": ffmpeg(d / "info.avi", *common, "-metadata", "title=kept"),
        "bare": ffmpeg(d / "bare.avi", *common, "-map_metadata", "-1", "-fflags", "+bitexact"),
    }
    made["no_room"] = _without_junk(made["bare"], d / "noroom.avi")
    made["small_tail"] = _with_trailing_junk(made["no_room"], d / "smalltail.avi", 64)
    made["big_tail"] = _with_trailing_junk(made["no_room"], d / "bigtail.avi", 4096)
    return made


@pytest.fixture
def fresh(fixtures: dict[str, Path], tmp_path: Path) -> Fresh:
    return copier(fixtures, tmp_path)


@pytest.mark.parametrize("name", ["info", "bare", "no_room"])
def test_write_is_lossless_and_read_by_ffprobe(fresh: Fresh, name: str, demo_label: AIGCLabel) -> None:
    src = fresh(name)
    before = src.read_bytes()
    movi_before = next(o for i, t, o in _children(src) if t == b"movi")
    out = src.with_name("labelled.avi")
    write_label(src, demo_label, out)
    assert src.read_bytes() == before
    assert stream_hash(out) == stream_hash(src)
    assert packet_count(out) == packet_count(src)
    assert decode_errors(out) == ""
    assert AVIContainer().payload_digest(out) == AVIContainer().payload_digest(src)
    assert next(o for i, t, o in _children(out) if t == b"movi") == movi_before  # nothing before movi moved
    found = read_labels(out)
    assert [f.location for f in found] == ["RIFF/LIST-INFO/AIGC"] and found[0].label == demo_label
    assert ffprobe_tags(out)["AIGC"] == demo_label.to_json()
    if name == "no_room":
        assert _children(out)[-1][:2] == (b"LIST", b"INFO")  # appended after idx1
    else:
        assert out.stat().st_size == src.stat().st_size  # fitted into INFO + JUNK


def test_relabel_strip_and_other_info_kept(fresh: Fresh, demo_label: AIGCLabel) -> None:
    for name in ("info", "no_room"):
        src = fresh(name)
        original_hash, original = stream_hash(src), src.read_bytes()
        write_label(src, demo_label)
        size = src.stat().st_size
        second = AIGCLabel.for_producer(demo_label.content_producer)
        write_label(src, second)
        assert src.stat().st_size == size  # relabelling reuses the INFO list instead of growing the file
        assert [f.label for f in read_labels(src)] == [second]
        tags = ffprobe_tags(src)
        assert tags["AIGC"] == second.to_json()
        if name == "info":
            assert tags["title"] == "kept"
        AVIContainer().strip(src, src)
        if name == "no_room":
            assert src.read_bytes() == original  # the appended INFO list is removed again
        assert read_labels(src) == []
        assert "AIGC" not in ffprobe_tags(src)
        assert stream_hash(src) == original_hash
        if name == "info":
            assert ffprobe_tags(src)["title"] == "kept"


def test_opendml_extension_is_refused_not_damaged(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("no_room")
    data = src.read_bytes() + b"RIFF" + struct.pack("<I", 16) + b"AVIX" + b"LIST" + struct.pack("<I", 4) + b"movi"
    src.write_bytes(data)
    with pytest.raises(NeedsRepairError):
        write_label(src, demo_label)
    assert src.read_bytes() == data


def test_hostile_inputs_raise_typed_errors(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    good = fresh("info").read_bytes()
    info_at = good.find(b"INFO") - 8
    bad_info = bytearray(good)
    struct.pack_into("<I", bad_info, info_at + 12 + 4, 0x7FFFFFFF)  # first INFO entry overruns its list
    cases = {
        "cut_in_hdrl": (good[:200], TruncatedFileError),
        "not_avi": (b"RIFF" + struct.pack("<I", 4) + b"WAVE", MalformedFileError),
        "bad_info": (bytes(bad_info), MalformedFileError),
    }
    assert_hostile_cases(AVIContainer(), cases, tmp_path, ".avi", demo_label)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_truncation_and_bit_flips(fixtures: dict[str, Path], tmp_path: Path, data: st.DataObject) -> None:
    original = fixtures["info"].read_bytes()
    at = st.one_of(st.integers(0, 10000), st.integers(len(original) - 900, len(original) - 1))
    mutated = truncate_or_flip(data, original, at=at)
    label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO")
    assert_typed_error_or_valid(
        tmp_path / "fuzz.avi", tmp_path / "fuzz-out.avi", mutated, label, container=AVIContainer()
    )


def test_cut_short_recording_is_labelled_or_refused(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    """Cut inside ``movi`` (``dd`` of a recording): labelled in the INFO/JUNK room before ``movi``;
    with no room there the label would have to go after the cut chunk, so it is refused."""
    whole = fresh("info").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    out = write_label(cut, demo_label, tmp_path / "labelled.avi")
    assert [f.label for f in read_labels(out)] == [demo_label]
    assert ffprobe_tags(out)["AIGC"] == demo_label.to_json() and ffprobe_tags(out)["title"] == "kept"
    assert stream_hash(out) == stream_hash(cut) and out.stat().st_size == cut.stat().st_size
    assert AVIContainer().payload_digest(out) == AVIContainer().payload_digest(cut)
    no_room = fresh("no_room").read_bytes()[: len(whole) * 2 // 3]
    cut.write_bytes(no_room)
    with pytest.raises(NeedsRepairError, match="--repair"):
        write_label(cut, demo_label)
    assert cut.read_bytes() == no_room


def test_repair_remuxes_a_cut_file_without_room(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    """``--repair``: remuxed with PyAV (same packets, new index and JUNK room), then labelled in INFO."""
    data = fresh("no_room").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = write_label(cut, demo_label, tmp_path / "repaired.avi", repair=True)
    assert cut.read_bytes() == data[: len(data) * 2 // 3]
    assert [f.label for f in read_labels(out)] == [demo_label]
    assert ffprobe_tags(out)["AIGC"] == demo_label.to_json()
    assert stream_hash(out) == stream_hash(cut)
    assert not decode_errors(out)


@pytest.mark.parametrize("name", ["small_tail", "big_tail"])
def test_label_takes_the_place_of_junk_after_idx1(fresh: Fresh, name: str, demo_label: AIGCLabel) -> None:
    """ffmpeg stops walking after idx1 at the first chunk that is neither LIST nor idx1, so a list
    appended after a trailing JUNK would be invisible to it: the list goes where that JUNK was."""
    src = fresh(name)
    before, size = stream_hash(src), src.stat().st_size
    for label in (demo_label, AIGCLabel.for_producer(demo_label.content_producer, reserved_code1="R" * 1500)):
        write_label(src, label)
        kinds = [(chunk_id, list_type) for chunk_id, list_type, _ in _children(src)]
        assert kinds[kinds.index((b"idx1", b"")) + 1] == (b"LIST", b"INFO")
        assert ffprobe_tags(src)["AIGC"] == label.to_json()
        assert [f.label for f in read_labels(src)] == [label]
        assert stream_hash(src) == before and decode_errors(src) == ""
    if name == "big_tail":
        assert src.stat().st_size == size  # both labels fit the 4 KiB of JUNK
