"""Matroska/WebM labels: EBML edits checked with ffprobe, mkvinfo, mkvextract and stream hashes."""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigclabel import AIGCLabel
from aigclabel.api import read_labels, strip_label, write_label
from aigclabel.containers import matroska as mkv
from aigclabel.containers.matroska import MatroskaContainer
from aigclabel.errors import MalformedFileError, NeedsRepairError, TruncatedFileError
from tests._tools import assert_hostile_cases, assert_typed_error_or_valid, exiftool_tags, truncate_or_flip
from tests._video import AUDIO, VIDEO, Fresh, copier, decode_errors, ffmpeg, ffprobe_tags, packet_count, stream_hash
from tests.conftest import require_tool

pytestmark = pytest.mark.interop  # ffmpeg makes the fixtures; mkvtoolnix reads them back

H264_AAC = [*VIDEO, *AUDIO, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"]
VP9_OPUS = [*VIDEO, *AUDIO, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"]
VP9_OPUS += ["-shortest"]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mkv")
    made = {
        "mkv": ffmpeg(d / "h264.mkv", *H264_AAC, "-metadata", "title=kept", "-metadata", "COMMENT=other"),
        "webm_vp8": ffmpeg(d / "vp8.webm", *VIDEO, *AUDIO, "-c:v", "libvpx", "-c:a", "libopus", "-shortest"),
        "webm_vp9": ffmpeg(d / "vp9.webm", *VP9_OPUS),
        "live": ffmpeg(d / "live.mkv", *H264_AAC, "-live", "1", "-f", "matroska"),
    }
    require_tool("mkvmerge")
    merged = d / "mkvmerge.mkv"
    done = subprocess.run(["mkvmerge", "-q", "-o", str(merged), str(made["mkv"])], capture_output=True, check=False)
    assert done.returncode in (0, 1), done.stdout  # 1 = warnings
    made["mkvmerge"] = merged
    bare = d / "mkvmerge-notags.mkv"
    cmd = [
        "mkvmerge",
        "-q",
        "--no-global-tags",
        "--no-track-tags",
        "--disable-track-statistics-tags",
        "-o",
        str(bare),
        str(made["mkv"]),
    ]
    done = subprocess.run(cmd, capture_output=True, check=False)
    assert done.returncode in (0, 1), done.stdout
    made["mkvmerge_notags"] = bare
    return made


@pytest.fixture
def fresh(fixtures: dict[str, Path], tmp_path: Path) -> Fresh:
    return copier(fixtures, tmp_path)


# ------------------------------------------------------------------ independent EBML position check
def _vint(data: bytes, pos: int) -> tuple[int, int]:
    length = 9 - data[pos].bit_length()
    return int.from_bytes(data[pos : pos + length], "big") & ((1 << (7 * length)) - 1), length


def _elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        id_len = 9 - data[pos].bit_length()
        element_id = int.from_bytes(data[pos : pos + id_len], "big")
        size, size_len = _vint(data, pos + id_len)
        begin = pos + id_len + size_len
        if size == (1 << (7 * size_len)) - 1:  # unknown size: only clusters; stop scanning inside
            out.append((element_id, begin, end))
            break
        out.append((element_id, begin, begin + size))
        pos = begin + size
    return out


def check_positions(path: Path, crcs: list[int] | None = None) -> int:
    """Every SeekHead and Cues position must land on an element with the expected ID, every level-1
    CRC-32 must match; returns the number of cue positions checked."""
    crcs = crcs if crcs is not None else []
    data = path.read_bytes()
    (_ebml, _s, header_end), *_ = _elements(data, 0, 64)[:1]
    seg_id_at = header_end
    _size, size_len = _vint(data, seg_id_at + 4)
    data_start = seg_id_at + 4 + size_len
    checked = 0
    for element_id, begin, end in _elements(data, data_start, len(data)):
        if element_id != 0x1F43B675 and data[begin : begin + 2] == b"\xbf\x84":  # CRC-32 as first child
            assert data[begin + 2 : begin + 6] == struct.pack("<I", zlib.crc32(data[begin + 6 : end]))
            crcs.append(element_id)
        if element_id == 0x114D9B74:
            for seek_id, sb, se in _elements(data, begin, end):
                if seek_id != 0x4DBB:
                    continue
                fields = {i: data[b:e] for i, b, e in _elements(data, sb, se)}
                target = data_start + int.from_bytes(fields[0x53AC], "big")
                assert data[target : target + len(fields[0x53AB])] == fields[0x53AB]
        if element_id == 0x1C53BB6B:
            for point_id, pb, pe in _elements(data, begin, end):
                for tp_id, tb, te in _elements(data, pb, pe):
                    if point_id == 0xBB and tp_id == 0xB7:
                        fields = {i: data[b:e] for i, b, e in _elements(data, tb, te)}
                        target = data_start + int.from_bytes(fields[0xF1], "big")
                        assert data[target : target + 4] == bytes.fromhex("1F43B675")
                        checked += 1
    return checked


def mkvextract_tags(path: Path) -> dict[str, list[str]]:
    require_tool("mkvextract")
    xml_path = path.with_suffix(".tags.xml")
    subprocess.run(["mkvextract", str(path), "tags", str(xml_path)], capture_output=True, check=True)
    if not xml_path.exists() or not xml_path.stat().st_size:
        return {}
    found: dict[str, list[str]] = {}
    for simple in ElementTree.parse(xml_path).getroot().iter("Simple"):
        found.setdefault(simple.findtext("Name") or "", []).append(simple.findtext("String") or "")
    return found


@pytest.mark.parametrize("name", ["mkv", "webm_vp8", "webm_vp9", "live", "mkvmerge", "mkvmerge_notags"])
def test_write_is_lossless_and_readable_by_other_tools(fresh: Fresh, name: str, demo_label: AIGCLabel) -> None:
    src = fresh(name)
    before = src.read_bytes()
    cues_before = check_positions(src)
    out = src.with_name("labelled" + src.suffix)
    write_label(src, demo_label, out)
    assert src.read_bytes() == before
    assert stream_hash(out) == stream_hash(src)
    assert decode_errors(out) == ""
    assert packet_count(out) == packet_count(src)
    assert MatroskaContainer().payload_digest(out) == MatroskaContainer().payload_digest(src)
    crcs: list[int] = []
    assert check_positions(out, crcs) == cues_before
    if name == "mkv":
        assert 0x1254C367 in crcs and 0x114D9B74 in crcs  # ffmpeg's Matroska output carries CRC-32s
    found = read_labels(out)
    assert len(found) == 1 and found[0].label == demo_label
    assert found[0].location.endswith("Tag(global)/SimpleTag(AIGC)")
    assert ffprobe_tags(out)["AIGC"] == demo_label.to_json()
    assert mkvextract_tags(out)["AIGC"] == [demo_label.to_json()]
    info = subprocess.run(["mkvinfo", "-a", str(out)], capture_output=True, text=True, check=True).stdout
    assert "Name: AIGC" in info
    if name == "mkvmerge_notags":  # no Tags yet: the new one goes into mkvmerge's reserved Void
        assert out.stat().st_size == src.stat().st_size


def test_relabel_strip_and_other_tags_kept(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("mkv")
    original_hash = stream_hash(src)
    original_tags = mkvextract_tags(src)
    write_label(src, demo_label)
    size_after_first = src.stat().st_size
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(src, second)
    assert src.stat().st_size == size_after_first  # same-size label: rewritten in place, nothing appended
    longer = AIGCLabel.for_producer(demo_label.content_producer, reserved_code1="ab" * 40)
    write_label(src, longer)
    assert src.stat().st_size == size_after_first + 80  # the trailing Tags grew where it was
    assert [f.label for f in read_labels(src)] == [longer] and check_positions(src)
    assert [f.label for f in read_labels(src)] == [longer]
    tags = mkvextract_tags(src)
    assert tags["AIGC"] == [longer.to_json()]
    for key, values in original_tags.items():
        assert tags[key] == values  # ENCODER, DURATION per track, COMMENT
    assert ffprobe_tags(src)["title"] == "kept"
    MatroskaContainer().strip(src, src)
    assert read_labels(src) == []
    assert "AIGC" not in mkvextract_tags(src)
    assert mkvextract_tags(src) == original_tags
    assert stream_hash(src) == original_hash
    check_positions(src)


def test_reads_label_written_by_ffmpeg(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = fresh("mkv")
    tagged = ffmpeg(tmp_path / "ff.mkv", "-i", str(src), "-c", "copy", "-metadata", f"AIGC={demo_label.to_json()}")
    found = read_labels(tagged)
    assert len(found) == 1 and found[0].label == demo_label
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(tagged, second)
    assert [f.label for f in read_labels(tagged)] == [second]
    assert ffprobe_tags(tagged)["AIGC"] == second.to_json()


@pytest.mark.parametrize(("target", "where"), [("track:1", "Tag(TrackUID="), ("global", "Tag(global)")])
def test_reads_labels_written_by_mkvpropedit(
    fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel, target: str, where: str
) -> None:
    src = fresh("mkvmerge")
    xml = tmp_path / "tags.xml"
    targets = "<Targets><TrackUID>1</TrackUID></Targets>" if target != "global" else "<Targets/>"
    xml.write_text(
        f"<Tags><Tag>{targets}"
        f"<Simple><Name>AIGC</Name><String>{demo_label.to_json().replace('&', '&amp;')}</String></Simple>"
        "</Tag></Tags>"
    )
    require_tool("mkvpropedit")
    subprocess.run(["mkvpropedit", "-q", str(src), "--tags", f"{target}:{xml}"], check=True, capture_output=True)
    found = read_labels(src)
    assert len(found) == 1 and where in found[0].location and found[0].label == demo_label
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(src, second)
    found = read_labels(src)
    assert [(f.location.endswith("Tag(global)/SimpleTag(AIGC)"), f.label) for f in found] == [(True, second)]
    assert mkvextract_tags(src)["AIGC"] == [second.to_json()]
    check_positions(src)


def test_hostile_inputs_raise_typed_errors(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    good = fresh("mkv").read_bytes()
    cases = {
        "cut_in_tags": (good[: good.find(bytes.fromhex("1F43B675")) - 20], TruncatedFileError),
        "not_ebml": (b"\x1a\x45\xdf\xa3\x80" + bytes(40), MalformedFileError),
        "no_segment": (good[:40], MalformedFileError),
    }
    tags_id = bytes.fromhex("1254C367")
    tags_at = good.find(tags_id, good.find(tags_id) + 4)  # the first hit is the SeekHead's SeekID
    bomb = bytearray(good)
    bomb[tags_at + 4 : tags_at + 12] = bytes.fromhex("01FFFFFFFFFFFFFE")  # Tags claims ~2^56 bytes
    cases["huge_tags"] = (bytes(bomb), MalformedFileError)
    nested = b""
    for _ in range(60):  # SimpleTag inside SimpleTag, far deeper than any real file
        nested = bytes.fromhex("67C8") + (0x4000 | len(nested)).to_bytes(2, "big") + nested
    tags = bytes.fromhex("1254C367") + (0x4000 | len(nested)).to_bytes(2, "big") + nested
    header = bytes.fromhex("1A45DFA3") + bytes([0x80 + 11]) + bytes.fromhex("4282") + b"\x88matroska"
    segment = bytes.fromhex("18538067") + bytes.fromhex("01FFFFFFFFFFFFFF") + tags
    cases["nesting_bomb"] = (header + segment, MalformedFileError)
    assert_hostile_cases(MatroskaContainer(), cases, tmp_path, ".mkv", demo_label)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_truncation_and_bit_flips(fixtures: dict[str, Path], tmp_path: Path, data: st.DataObject) -> None:
    original = fixtures["mkv"].read_bytes()
    at = st.one_of(st.integers(0, 800), st.integers(len(original) - 120, len(original) - 1))
    mutated = truncate_or_flip(data, original, at=at)
    label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO")
    path, out = tmp_path / "fuzz.mkv", tmp_path / "fuzz-out.mkv"
    assert_typed_error_or_valid(path, out, mutated, label, container=MatroskaContainer())


def test_label_in_a_second_tags_element_is_replaced(fresh: Fresh, demo_label: AIGCLabel) -> None:
    """Two Tags elements (the second appended after the Clusters, unlisted in the SeekHead)."""
    src = fresh("mkv")
    data = bytearray(src.read_bytes())
    with open(src, "rb") as handle:
        layout = mkv.scan(handle)
    assert layout.data_end == len(data) and not layout.size_unknown
    value = demo_label.to_json().encode()
    simple = mkv.Node(mkv.SIMPLE_TAG, children=[mkv.Node(mkv.TAG_NAME, b"AIGC"), mkv.Node(mkv.TAG_STRING, value)])
    tag = mkv.Node(mkv.TAG, children=[mkv.Node(mkv.TARGETS, children=[]), simple])
    extra = mkv.Node(mkv.TAGS, children=[tag]).to_bytes()
    data += extra
    new_size = mkv.encode_size(layout.data_end - layout.data_start + len(extra), layout.size_width)
    data[layout.size_offset : layout.size_offset + layout.size_width] = new_size
    src.write_bytes(bytes(data))
    info = subprocess.run(["mkvinfo", "-a", str(src)], capture_output=True, text=True, check=True).stdout
    assert "Name: AIGC" in info  # ffprobe misses it (not in the SeekHead); a full scan finds it
    assert [f.location for f in read_labels(src)] == ["Segment/Tags#1/Tag(global)/SimpleTag(AIGC)"]
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(src, second)
    assert [f.label for f in read_labels(src)] == [second]
    assert ffprobe_tags(src)["AIGC"] == second.to_json()
    check_positions(src)
    MatroskaContainer().strip(src, src)
    assert read_labels(src) == [] and "AIGC" not in ffprobe_tags(src)
    check_positions(src)


def test_full_seekhead_is_chained_to_a_second_one(fresh: Fresh, demo_label: AIGCLabel) -> None:
    """No Void after the SeekHead: its entries move to a second SeekHead at the end, pointed to by the first."""
    src = fresh("mkv")
    data = bytearray(src.read_bytes())
    with open(src, "rb") as handle:
        kids = mkv.scan(handle).children
    assert kids[0].id == mkv.SEEKHEAD and kids[1].id == mkv.VOID
    # A SeekHead without a Tags entry and without spare room: the reserve after it becomes an unknown
    # level-1 element (which readers skip), so adding the entry cannot fit.
    with open(src, "rb") as handle:
        head = mkv._load(handle, kids[0])
    entries = [(sid, pos) for sid, pos in mkv._seek_entries(head) if sid != mkv.encode_id(mkv.TAGS)]
    tight = mkv._seekhead(entries, crc=True).to_bytes()
    region = kids[1].end - kids[0].offset
    filler = b"\x1f\x00\x00\x01" + mkv.encode_size(region - len(tight) - 12, 8) + bytes(region - len(tight) - 12)
    data[kids[0].offset : kids[1].end] = tight + filler
    src.write_bytes(bytes(data))
    assert stream_hash(src) and check_positions(src)
    write_label(src, demo_label)
    assert [f.label for f in read_labels(src)] == [demo_label]
    assert ffprobe_tags(src)["AIGC"] == demo_label.to_json()
    assert mkvextract_tags(src)["AIGC"] == [demo_label.to_json()]
    with open(src, "rb") as handle:
        heads = [e for e in mkv.scan(handle).children if e.id == mkv.SEEKHEAD]
    assert len(heads) == 2
    check_positions(src)
    longer = AIGCLabel.for_producer(demo_label.content_producer, reserved_code1="cd" * 30)
    write_label(src, longer)
    assert [f.label for f in read_labels(src)] == [longer] and ffprobe_tags(src)["AIGC"] == longer.to_json()
    check_positions(src)
    MatroskaContainer().strip(src, src)
    assert read_labels(src) == [] and "AIGC" not in ffprobe_tags(src)
    assert stream_hash(src) == stream_hash(fresh("mkv"))
    check_positions(src)


# ------------------------------------------------------------------ browser recordings and cut-short files
UNKNOWN = bytes.fromhex("01FFFFFFFFFFFFFF")


def mediarecorder_copy(src: Path, dst: Path) -> Path:
    """``src`` laid out the way Chrome's MediaRecorder (libwebm live mode) writes WebM: no SeekHead,
    Void, Tags or Cues; a Segment and Clusters of unknown size."""
    data = src.read_bytes()
    with open(src, "rb") as handle:
        layout = mkv.scan(handle)
    out = bytearray(data[: layout.segment_offset]) + mkv.encode_id(mkv.SEGMENT) + UNKNOWN
    for elem in layout.children:
        if elem.id in (0x1549A966, 0x1654AE6B):  # Info, Tracks
            out += data[elem.offset : elem.end]
        elif elem.id == mkv.CLUSTER:
            out += mkv.encode_id(mkv.CLUSTER) + UNKNOWN + data[elem.offset + elem.header : elem.end]
    dst.write_bytes(bytes(out))
    return dst


def exiftool_mkv_label(path: Path) -> str | None:
    """The AIGC tag exiftool reads by default (it stops at the first Cluster unless given ``-ee``)."""
    values = [str(v) for k, v in exiftool_tags(path).items() if k.split(":")[-1].upper() == "AIGC"]
    assert len(values) <= 1
    return values[0] if values else None


def assert_labelled_everywhere(src: Path, out: Path, label: AIGCLabel, *, remuxed: bool = False) -> None:
    """ffprobe, exiftool (no ``-ee``), mkvinfo and we read ``label``; media identical to ``src`` (the
    same packets; also the same Cluster bytes unless ``remuxed``)."""
    assert [f.label for f in read_labels(out)] == [label]
    assert ffprobe_tags(out)["AIGC"] == label.to_json()
    assert exiftool_mkv_label(out) == label.to_json()
    mkvinfo = subprocess.run([require_tool("mkvinfo"), str(out)], capture_output=True, text=True, check=False)
    assert label.to_json() in mkvinfo.stdout
    assert stream_hash(out) == stream_hash(src)
    container = MatroskaContainer()
    assert remuxed or container.payload_digest(out) == container.payload_digest(src)

    def complaints(path: Path) -> str:
        return re.sub(r" @ 0x[0-9a-f]+", "", decode_errors(path))

    # a cut-short source keeps its "ended prematurely"; a remuxed one ends cleanly
    assert complaints(out) == ("" if remuxed else complaints(src))


def test_mediarecorder_webm_without_seekhead_is_labelled(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = mediarecorder_copy(fresh("webm_vp9"), tmp_path / "recording.webm")
    assert not any(e.id == mkv.SEEKHEAD for e in mkv.scan(open(src, "rb")).children)  # noqa: SIM115
    out = write_label(src, demo_label, tmp_path / "labelled.webm")
    assert_labelled_everywhere(src, out, demo_label)
    relabel = AIGCLabel.for_producer("001191110000MA00DEMQ0B1OTHERS")
    again = write_label(out, relabel, tmp_path / "relabelled.webm")
    assert again.stat().st_size == out.stat().st_size  # the reserve Void took the new label in place
    assert_labelled_everywhere(src, again, relabel)
    stripped = strip_label(again, tmp_path / "stripped.webm")
    assert read_labels(stripped) == [] and stream_hash(stripped) == stream_hash(src)


def test_cut_short_recordings(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    """A browser recording cut inside a Cluster is labelled; an ffmpeg file cut there (whose Tags only fit
    after the Clusters) is refused with a remux hint and left as it was."""
    whole = mediarecorder_copy(fresh("webm_vp9"), tmp_path / "whole.webm").read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    out = write_label(cut, demo_label, tmp_path / "cut-labelled.webm")
    assert_labelled_everywhere(cut, out, demo_label)
    data = fresh("mkv").read_bytes()
    cut_mkv = tmp_path / "cut.mkv"
    cut_mkv.write_bytes(data[: len(data) * 2 // 3])
    assert read_labels(cut_mkv) == []
    with pytest.raises(NeedsRepairError, match="--repair"):
        write_label(cut_mkv, demo_label)
    assert cut_mkv.read_bytes() == data[: len(data) * 2 // 3]


def test_tags_after_clusters_move_into_void_before_them(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    """mkvmerge puts Tags after the Clusters and reserves Void before them: the labelled Tags go there,
    so exiftool sees them without ``-ee``; Clusters and Cues stay where they were."""
    src = fresh("mkvmerge")
    before = mkvextract_tags(src)
    with open(src, "rb") as handle:
        clusters = [e.offset for e in mkv.scan(handle).children if e.id == mkv.CLUSTER]
    out = write_label(src, demo_label, tmp_path / "labelled.mkv")
    assert_labelled_everywhere(src, out, demo_label)
    with open(out, "rb") as handle:
        kids = mkv.scan(handle).children
    assert [e.offset for e in kids if e.id == mkv.CLUSTER] == clusters
    assert max(e.offset for e in kids if e.id == mkv.TAGS) < clusters[0]
    assert out.stat().st_size <= src.stat().st_size
    assert mkvextract_tags(out) == {**before, "AIGC": [demo_label.to_json()]}
    assert check_positions(out) > 0


def test_repair_remuxes_a_cut_file_write_refuses(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    """``--repair``: the cut ffmpeg file (label only fits after the Clusters) is remuxed with PyAV and labelled
    before its Clusters; the packets are the ones the cut source has."""
    data = fresh("mkv").read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(NeedsRepairError, match="--repair"):
        write_label(cut, demo_label)
    out = write_label(cut, demo_label, tmp_path / "repaired.mkv", repair=True)
    assert cut.read_bytes() == data[: len(data) * 2 // 3]
    assert_labelled_everywhere(cut, out, demo_label, remuxed=True)
    assert ffprobe_tags(out)["title"] == "kept"
    assert check_positions(out) > 0
