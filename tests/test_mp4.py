"""ISO-BMFF (MP4/MOV/M4A) labels: lossless writes checked with ffmpeg, ffprobe, exiftool and mutagen."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import mutagen.mp4
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigclabel import AIGCLabel
from aigclabel.api import read_labels, write_label
from aigclabel.containers import mp4 as mp4mod
from aigclabel.containers import open_container
from aigclabel.containers.mp4 import MP4Container, scan_top
from aigclabel.errors import LimitExceededError, MalformedFileError, TruncatedFileError
from aigclabel.xmp import TC260_NS
from tests._tools import DC_NS, assert_hostile_cases, assert_typed_error_or_valid, libxmp_write, truncate_or_flip
from tests._video import AUDIO, VIDEO, Fresh, copier, decode_errors, ffmpeg, ffprobe_tags, packet_count, stream_hash
from tests.conftest import require_module, require_tool

pytestmark = pytest.mark.interop  # ffmpeg makes the fixtures; ffprobe and exiftool read them back

H264_AAC = [*VIDEO, *AUDIO, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("mp4")
    made = {
        "faststart": ffmpeg(d / "faststart.mp4", *H264_AAC, "-movflags", "+faststart", "-metadata", "title=kept"),
        "moov_at_end": ffmpeg(d / "end.mp4", *H264_AAC, "-metadata", "title=kept"),
        "mov": ffmpeg(d / "clip.mov", *H264_AAC, "-movflags", "+faststart"),
        "m4a": ffmpeg(d / "audio.m4a", *AUDIO, "-c:a", "aac", "-movflags", "+faststart"),
        "3gp": ffmpeg(d / "clip.3gp", *H264_AAC, "-ar", "16000", "-movflags", "+faststart"),
        "fragmented": ffmpeg(d / "frag.mp4", *H264_AAC, "-g", "3", "-movflags", "frag_keyframe+empty_moov"),
    }
    return made


@pytest.fixture
def fresh(fixtures: dict[str, Path], tmp_path: Path) -> Fresh:
    return copier(fixtures, tmp_path)


def _top_types(path: Path) -> list[bytes]:
    with open(path, "rb") as handle:
        return [b.type for b in scan_top(handle)]


@pytest.mark.parametrize("name", ["faststart", "moov_at_end", "mov", "m4a", "3gp", "fragmented"])
def test_write_is_lossless_and_readable_by_ffprobe_and_exiftool(fresh: Fresh, name: str, demo_label: AIGCLabel) -> None:
    src = fresh(name)
    before_hash, before_bytes = stream_hash(src), src.read_bytes()
    out = src.with_name("labelled" + src.suffix)
    write_label(src, demo_label, out)
    assert src.read_bytes() == before_bytes
    assert stream_hash(out) == before_hash
    assert decode_errors(out) == ""
    assert packet_count(out) == packet_count(src)
    container = MP4Container()
    assert container.payload_digest(out) == container.payload_digest(src)
    found = read_labels(out)
    assert [f.location for f in found] == ["moov/udta/meta(mdta) keys:AIGC"]
    assert found[0].label == demo_label
    assert ffprobe_tags(out)["AIGC"] == demo_label.to_json()
    require_tool("exiftool")
    tags = json.loads(subprocess.run(["exiftool", "-j", "-Keys:all", str(out)], capture_output=True, check=True).stdout)
    assert tags[0]["AIGC"] == demo_label.to_json()
    assert _top_types(out).index(b"moov") < _top_types(out).index(b"mdat") or name == "moov_at_end"


@pytest.mark.parametrize("name", ["faststart", "moov_at_end", "fragmented"])
def test_relabel_and_strip(fresh: Fresh, name: str, demo_label: AIGCLabel) -> None:
    src = fresh(name)
    original_hash = stream_hash(src)
    write_label(src, demo_label)
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(src, second)
    found = read_labels(src)
    assert len(found) == 1 and found[0].label == second
    assert stream_hash(src) == original_hash
    MP4Container().strip(src, src)
    assert read_labels(src) == []
    assert "AIGC" not in ffprobe_tags(src)
    assert stream_hash(src) == original_hash


def test_strip_restores_moov_at_end_file_exactly(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("moov_at_end")
    original = src.read_bytes()
    write_label(src, demo_label)
    assert src.read_bytes() != original
    MP4Container().strip(src, src)
    assert src.read_bytes() == original


def test_faststart_chunk_offsets_are_shifted(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("faststart")
    out = src.with_name("o.mp4")
    write_label(src, demo_label, out)
    with open(src, "rb") as a, open(out, "rb") as b:
        old = {t.type: t for t in scan_top(a)}
        new = {t.type: t for t in scan_top(b)}
    assert new[b"mdat"].offset != old[b"mdat"].offset  # media moved: only valid if stco was patched
    assert stream_hash(out) == stream_hash(src)


def test_other_tags_are_kept(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("faststart")
    write_label(src, demo_label)
    tags = ffprobe_tags(src)
    assert tags["title"] == "kept"
    assert tags["encoder"].startswith("Lavf")
    assert mutagen.mp4.MP4(src).tags["\xa9nam"] == ["kept"]  # type: ignore[no-untyped-call,index]  # iTunes mdir list untouched


def test_reads_and_merges_ffmpeg_use_metadata_tags(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("moov_at_end")
    tagged = src.with_name("ff.mp4")
    ffmpeg(
        tagged,
        "-i", str(src), "-c", "copy", "-movflags", "use_metadata_tags",
        "-metadata", f"AIGC={demo_label.to_json()}", "-metadata", "comment=other-key",
    )  # fmt: skip
    found = read_labels(tagged)
    assert [f.location for f in found] == ["moov/udta/meta(mdta) keys:AIGC"]
    assert found[0].label == demo_label
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(tagged, second)
    tags = ffprobe_tags(tagged)
    assert tags["AIGC"] == second.to_json()
    assert tags["comment"] == "other-key"  # the other mdta keys survive the renumbering
    assert tags["title"] == "kept"
    assert len(read_labels(tagged)) == 1


def test_reads_mutagen_freeform_and_replaces_it(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("m4a")
    audio = mutagen.mp4.MP4(src)  # type: ignore[no-untyped-call]
    audio["----:com.apple.iTunes:AIGC"] = [mutagen.mp4.MP4FreeForm(demo_label.to_json().encode())]  # type: ignore[no-untyped-call]
    audio["\xa9ART"] = ["someone"]
    audio.save()  # type: ignore[no-untyped-call]
    found = read_labels(src)
    assert len(found) == 1 and found[0].location.endswith("----:AIGC") and found[0].label == demo_label
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(src, second)
    found = read_labels(src)
    assert [f.location for f in found] == ["moov/udta/meta(mdta) keys:AIGC"] and found[0].label == second
    tags = mutagen.mp4.MP4(src).tags  # type: ignore[no-untyped-call]
    assert tags is not None and "----:com.apple.iTunes:AIGC" not in tags
    assert tags["\xa9ART"] == ["someone"]
    assert decode_errors(src) == ""


@pytest.mark.parametrize(("name", "where"), [("faststart", "uuid (top level)"), ("mov", "moov/udta/XMP_")])
def test_reads_and_strips_xmp_written_by_exempi(fresh: Fresh, name: str, where: str, demo_label: AIGCLabel) -> None:
    libxmp = require_module("libxmp")
    src = fresh(name)
    original_hash = stream_hash(src)
    libxmp_write(src, demo_label.to_json(), extra={(DC_NS, "format"): "video/mp4"})
    found = read_labels(src)
    assert [(f.location, f.label) for f in found] == [(f"{where} XMP TC260:AIGC", demo_label)]
    write_label(src, demo_label)
    assert stream_hash(src) == original_hash
    found = read_labels(src)
    assert [f.location for f in found] == ["moov/udta/meta(mdta) keys:AIGC"]
    handle = libxmp.XMPFiles(file_path=str(src))
    remaining = handle.get_xmp()
    handle.close_file()
    assert remaining is not None and remaining.get_property(DC_NS, "format")
    assert not remaining.does_property_exist(TC260_NS, "AIGC")


def test_free_box_after_moov_absorbs_growth(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = fresh("faststart")
    roomy = ffmpeg(tmp_path / "roomy.mp4", "-i", str(src), "-c", "copy", "-moov_size", "8192")
    with open(roomy, "rb") as handle:
        before = {t.type: t.offset for t in scan_top(handle)}
    assert before[b"moov"] < before[b"mdat"]
    write_label(roomy, demo_label)
    with open(roomy, "rb") as handle:
        after = {t.type: t.offset for t in scan_top(handle)}
    assert after[b"mdat"] == before[b"mdat"]  # nothing moved
    assert stream_hash(roomy) == stream_hash(src)
    assert ffprobe_tags(roomy)["AIGC"] == demo_label.to_json()


def test_fragmented_absolute_base_offsets_are_patched(fresh: Fresh, demo_label: AIGCLabel) -> None:
    src = fresh("fragmented")
    data = src.read_bytes()
    at = data.find(b"tfhd")
    assert int.from_bytes(data[at + 5 : at + 8], "big") & 1, "fixture should carry absolute base-data-offsets"
    assert b"tfra" in data
    write_label(src, demo_label)
    assert stream_hash(src) == stream_hash(fresh("fragmented"))
    assert decode_errors(src) == ""
    out = src.read_bytes()
    moof = out.find(b"moof") - 4
    at = out.find(b"tfhd")
    (base,) = struct.unpack_from(">Q", out, at + 12)
    assert base == moof  # ffmpeg's base offset is the moof start; it moved with it


def test_large_size_and_size_zero_boxes(fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = fresh("moov_at_end")
    data = src.read_bytes()
    with open(src, "rb") as handle:
        tops = {t.type: t for t in scan_top(handle)}
    free, mdat = tops[b"free"], tops[b"mdat"]
    assert free.size == 8 and free.offset + 8 == mdat.offset
    large = struct.pack(">I4sQ", 1, b"mdat", mdat.size + 8)  # ffmpeg's reserved free becomes a 64-bit header
    big = tmp_path / "large.mp4"
    big.write_bytes(data[: free.offset] + large + data[mdat.offset + 8 :])
    assert stream_hash(big) == stream_hash(src)
    write_label(big, demo_label)
    assert stream_hash(big) == stream_hash(src) and len(read_labels(big)) == 1
    fast = fresh("faststart")
    raw = bytearray(fast.read_bytes())
    with open(fast, "rb") as handle:
        last = scan_top(handle)[-1]
    assert last.type == b"mdat"
    struct.pack_into(">I", raw, last.offset, 0)  # size 0: "to the end of the file"
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(bytes(raw))
    write_label(zero, demo_label)
    assert stream_hash(zero) == stream_hash(fast) and len(read_labels(zero)) == 1


def test_heif_is_not_claimed(tmp_path: Path) -> None:
    heic = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"heic", 0, b"mif1", b"heic")
    assert not MP4Container.accept(heic, tmp_path / "x.heic")
    mp4 = struct.pack(">I4s4sI4s", 20, b"ftyp", b"isom", 512, b"isom")
    assert MP4Container.accept(mp4, tmp_path / "x.mp4")
    avif_path = tmp_path / "x.avif"
    avif_path.write_bytes(struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"avif", 0, b"mif1", b"avif") + bytes(64))
    assert open_container(avif_path).name != "mp4"


def _moov_bytes(children: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(children), b"moov") + children


def test_hostile_inputs_raise_typed_errors(
    fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel, monkeypatch: pytest.MonkeyPatch
) -> None:
    ftyp = struct.pack(">I4s4sI4s", 20, b"ftyp", b"isom", 0, b"isom")
    cases: dict[str, tuple[bytes, type[Exception]]] = {
        "no_moov": (ftyp + struct.pack(">I4s", 16, b"mdat") + bytes(8), MalformedFileError),
        "beyond_eof": (ftyp + struct.pack(">I4s", 1 << 20, b"moov") + bytes(32), TruncatedFileError),
        "tiny_size": (ftyp + struct.pack(">I4s", 3, b"moov"), MalformedFileError),
        "two_moov": (ftyp + _moov_bytes(b"") * 2, MalformedFileError),
    }
    nested = struct.pack(">I4s", 8, b"udta")
    for _ in range(40):
        nested = struct.pack(">I4s", 8 + len(nested), b"udta") + nested
    cases["recursion_bomb"] = (ftyp + _moov_bytes(nested), MalformedFileError)
    keys = struct.pack(">I4sII", 16, b"keys", 0, 0xFFFFFFFF)
    hdlr = struct.pack(">I4s", 33, b"hdlr") + bytes(8) + b"mdta" + bytes(13)
    ilst = struct.pack(">I4s", 8, b"ilst")
    meta = struct.pack(">I4sI", 12 + len(hdlr + keys + ilst), b"meta", 0) + hdlr + keys + ilst
    udta = struct.pack(">I4s", 8 + len(meta), b"udta") + meta
    cases["absurd_key_count"] = (ftyp + _moov_bytes(udta), MalformedFileError)
    stco = struct.pack(">I4sII", 16, b"stco", 0, 1 << 30)
    stbl = struct.pack(">I4s", 8 + len(stco), b"stbl") + stco
    cases["absurd_stco_count"] = (ftyp + _moov_bytes(stbl), MalformedFileError)
    assert_hostile_cases(MP4Container(), cases, tmp_path, ".mp4", demo_label, or_on_write=True)
    src = fresh("faststart")
    monkeypatch.setattr(mp4mod, "MAX_MOOV_BYTES", 512)
    with pytest.raises(LimitExceededError):
        write_label(src, demo_label)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_truncation_and_bit_flips(fixtures: dict[str, Path], tmp_path: Path, data: st.DataObject) -> None:
    original = fixtures["faststart"].read_bytes()
    mutated = truncate_or_flip(data, original, at=st.integers(0, 2100))  # the header and moov: the structure
    label = AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO")
    path, out = tmp_path / "fuzz.mp4", tmp_path / "fuzz-out.mp4"
    assert_typed_error_or_valid(path, out, mutated, label, container=MP4Container())


# Peak RSS is read from VmHWM, which belongs to the child's own address space: ru_maxrss survives
# exec on Linux and would report the (large) pytest parent that vfork-spawned the child.
CHILD = """
import json, re, sys
from pathlib import Path
from aigclabel import AIGCLabel, DEMO_PROVIDER_CODE
from aigclabel.api import write_label
write_label(Path(sys.argv[1]), AIGCLabel.for_producer(DEMO_PROVIDER_CODE), Path(sys.argv[2]))
status = Path("/proc/self/status").read_text()
print(json.dumps(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))))
"""


@pytest.mark.slow
def test_peak_memory_stays_bounded_on_a_large_file(fixtures: dict[str, Path], tmp_path: Path) -> None:
    """A faststart file with a 384 MiB (sparse) mdat is labelled in a child process under 100 MiB RSS."""
    src = fixtures["faststart"]
    data = bytearray(src.read_bytes())
    with open(src, "rb") as handle:
        last = scan_top(handle)[-1]
    assert last.type == b"mdat" and last.header == 8
    extra = 384 << 20
    struct.pack_into(">I", data, last.offset, last.size + extra)
    big = tmp_path / "big.mp4"
    with open(big, "wb") as handle:
        handle.write(data)
        handle.truncate(len(data) + extra)  # sparse: cheap to create, still copied byte for byte
    out = tmp_path / "big-labelled.mp4"
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(big), str(out)],
        capture_output=True, text=True, check=True, cwd=repo,
    )  # fmt: skip
    peak_kib = json.loads(done.stdout)
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib / 1024:.1f} MiB"
    assert out.stat().st_size > big.stat().st_size
    assert stream_hash(out) == stream_hash(src)


def test_chunk_offsets_past_4_gib_upgrade_stco_to_co64() -> None:
    """Growing a moov that precedes media ending near 4 GiB turns ``stco`` into ``co64`` (layout only)."""
    first, last = 0xFFFFFF00 - 64, 0xFFFFFF00
    stco = struct.pack(">I4sII", 24, b"stco", 0, 2) + struct.pack(">II", first, last)
    stbl = struct.pack(">I4s", 8 + len(stco), b"stbl") + stco
    moov = mp4mod.parse_moov(_moov_bytes(stbl))
    old_size = moov.size()
    tops = [
        mp4mod.TopBox(b"ftyp", 0, 8, 24),
        mp4mod.TopBox(b"moov", 24, 8, old_size),
        mp4mod.TopBox(b"mdat", 24 + old_size, 16, (1 << 33) - 24 - old_size),
    ]
    mp4mod.edit_moov(moov, AIGCLabel.for_producer("001191110000MA00DEMQ0B1DEMO"))
    tables = mp4mod._chunk_tables(moov)
    mapping = MP4Container._layout(tops, 1, moov, tables, {})
    growth = moov.size() - old_size
    table = next(box for _p, box, _parent in moov.walk() if box.type in (b"stco", b"co64"))
    assert table.type == b"co64"
    count, *values = struct.unpack(">IQQ", bytes(table.payload[4:]))
    assert count == 2 and values == [first + growth, last + growth] and last + growth > 0xFFFFFFFF
    assert mapping.one(tops[2].offset) == tops[2].offset + growth


def test_reads_meta_directly_under_moov_and_keeps_its_other_keys(
    fresh: Fresh, tmp_path: Path, demo_label: AIGCLabel
) -> None:
    """The QuickTime placement (``moov/meta``, as Apple devices and Doubao exports write it) is read."""
    src = fresh("moov_at_end")
    tagged = ffmpeg(
        tmp_path / "ff.mp4", "-i", str(src), "-c", "copy", "-map_metadata", "-1", "-movflags", "use_metadata_tags",
        "-metadata", f"AIGC={demo_label.to_json()}", "-metadata", "com.apple.quicktime.make=Acme",
    )  # fmt: skip
    data = tagged.read_bytes()
    with open(tagged, "rb") as handle:
        moov = next(t for t in scan_top(handle) if t.type == b"moov")
    assert moov.end == len(data)  # moov last: moving boxes inside it shifts no media
    udta_at = data.index(b"udta", moov.offset) - 4
    (udta_size,) = struct.unpack_from(">I", data, udta_at)
    assert (
        data[udta_at + 12 : udta_at + 16] == b"meta" and udta_size == 8 + struct.unpack_from(">I", data, udta_at + 8)[0]
    )
    moved = bytearray(data[:udta_at] + data[udta_at + 8 : udta_at + udta_size])  # meta hoisted out of udta
    struct.pack_into(">I", moved, moov.offset, moov.size - 8)
    quicktime = tmp_path / "qt.mov"
    quicktime.write_bytes(bytes(moved))
    assert ffprobe_tags(quicktime)["AIGC"] == demo_label.to_json()  # ffmpeg agrees the file is valid
    found = read_labels(quicktime)
    assert [f.location for f in found] == ["moov/meta(mdta) keys:AIGC"] and found[0].label == demo_label
    second = AIGCLabel.for_producer(demo_label.content_producer)
    write_label(quicktime, second)
    # The label joins the existing keys table: ffmpeg reads only the first one in a file.
    assert [(f.location, f.label) for f in read_labels(quicktime)] == [("moov/meta(mdta) keys:AIGC", second)]
    tags = ffprobe_tags(quicktime)
    assert tags["AIGC"] == second.to_json() and tags["com.apple.quicktime.make"] == "Acme"
    assert stream_hash(quicktime) == stream_hash(src)


def test_output_is_byte_identical_to_ffmpeg_use_metadata_tags(fresh: Fresh, tmp_path: Path) -> None:
    """Labelling ffmpeg's own untagged output gives exactly the bytes ffmpeg writes with -metadata AIGC=."""
    src = fresh("moov_at_end")
    label = AIGCLabel(label="1", content_producer="001191110000MA00DEMQ0B1DEMO", produce_id="abc")
    common = ["-i", str(src), "-c", "copy", "-map_metadata", "-1", "-fflags", "+bitexact"]
    untagged = ffmpeg(tmp_path / "untagged.mp4", *common, "-movflags", "use_metadata_tags")
    reference = ffmpeg(
        tmp_path / "reference.mp4", *common, "-movflags", "use_metadata_tags", "-metadata", f"AIGC={label.to_json()}"
    )
    ours = write_label(untagged, label, tmp_path / "ours.mp4")
    assert ours.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize("name", ["faststart", "m4a"])
def test_cut_short_faststart_recording_is_labelled(
    fresh: Fresh, name: str, tmp_path: Path, demo_label: AIGCLabel
) -> None:
    """moov first, mdat cut (``dd``): ffmpeg plays the samples that are there, so it is labelled, the
    mdat header and bytes kept; a cut file with moov at the end has no index and is refused."""
    whole = fresh(name).read_bytes()
    src = tmp_path / f"cut{fresh(name).suffix}"
    src.write_bytes(whole[: len(whole) * 2 // 3])
    out = write_label(src, demo_label, tmp_path / f"labelled{src.suffix}")
    assert [f.label for f in read_labels(out)] == [demo_label]
    assert ffprobe_tags(out)["AIGC"] == demo_label.to_json()
    tags = json.loads(subprocess.run(["exiftool", "-j", "-Keys:all", str(out)], capture_output=True, check=True).stdout)
    assert tags[0]["AIGC"] == demo_label.to_json()
    assert stream_hash(out) == stream_hash(src) and packet_count(out) == packet_count(src)
    assert MP4Container().payload_digest(out) == MP4Container().payload_digest(src)
    mdat = whole.index(b"mdat") - 4
    assert out.read_bytes().endswith(whole[mdat + 200 : len(whole) * 2 // 3])
    cut_at_end = fresh("moov_at_end").read_bytes()
    src.write_bytes(cut_at_end[: len(cut_at_end) * 2 // 3])
    with pytest.raises(MalformedFileError, match="no moov"):
        write_label(src, demo_label)
