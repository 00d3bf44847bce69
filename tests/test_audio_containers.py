"""Audio containers (MP3, WAV, FLAC, Ogg Vorbis/Opus/FLAC/Speex): lossless labels, checked both ways
with ffmpeg/ffprobe, mutagen, exiftool, sox, python-xmp-toolkit and the stdlib ``wave`` module."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import subprocess
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path

import mutagen
import mutagen.apev2
import mutagen.flac
import mutagen.id3
import mutagen.ogg
import mutagen.wave
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aigclabel import (
    DEMO_PROVIDER_CODE,
    AIGCLabel,
    AIGCLabelError,
    MalformedFileError,
    TruncatedFileError,
    UnsupportedFormatError,
    api,
    open_container,
)

from ._tools import DC_NS, assert_refused, exiftool_tags, libxmp_write
from ._video import stream_hash
from .conftest import require_tool

pytestmark = pytest.mark.interop  # ffmpeg makes the fixtures; ffprobe, exiftool and sox read them back

SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
#: name -> (suffix, ffmpeg output options, container name)
FORMATS: dict[str, tuple[str, list[str], str]] = {
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3"),
    "mp3v23": (".mp3", ["-c:a", "libmp3lame", "-b:a", "64k", "-id3v2_version", "3"], "mp3"),
    "mp2": (".mp2", ["-c:a", "mp2"], "mp3"),  # the mp2 muxer writes no tag: the fixture adds one
    "mp3_8k": (".mp3", ["-c:a", "libmp3lame", "-ar", "8000"], "mp3"),  # MPEG-2.5 frames
    "wav": (".wav", ["-c:a", "pcm_s16le", "-ar", "8000"], "wav"),
    "flac": (".flac", ["-c:a", "flac"], "flac"),
    "vorbis": (".ogg", ["-c:a", "libvorbis"], "ogg"),
    "opus": (".opus", ["-c:a", "libopus"], "ogg"),
    "oggflac": (".oga", ["-c:a", "flac", "-f", "ogg"], "ogg"),
    "speex": (".spx", ["-c:a", "libspeex", "-ar", "16000"], "ogg"),
}
#: Formats whose AIGC tag ffmpeg can write with ``-metadata`` and ffprobe shows.
FFMPEG_TAGGED = ["mp3", "mp3v23", "flac", "vorbis", "opus", "oggflac"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True)


def _ffmpeg(out: Path, *options: str, source: list[str] | None = None) -> Path:
    require_tool("ffmpeg")
    _run("ffmpeg", "-v", "error", "-y", *(source or SINE), *options, str(out))
    return out


def _stream_md5(path: Path) -> str:
    """MD5 of the demuxed audio packets, as ffmpeg sees them (metadata excluded)."""
    return _run("ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy", "-f", "md5", "-").stdout.strip()


def _ffprobe_tags(path: Path) -> dict[str, str]:
    probe = json.loads(_run("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)).stdout)
    tags: dict[str, str] = {}
    for section in [probe.get("format", {}), *probe.get("streams", [])]:
        tags.update({key.upper(): value for key, value in section.get("tags", {}).items()})
    return tags


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small file per format, each already carrying a title tag."""
    folder = tmp_path_factory.mktemp("audio")
    made = {
        name: _ffmpeg(folder / f"{name}{suffix}", "-metadata", "title=Hello", *options)
        for name, (suffix, options, _container) in FORMATS.items()
    }
    tag = mutagen.id3.ID3()
    tag.add(mutagen.id3.TIT2(encoding=3, text=["Hello"]))
    tag.save(made["mp2"])
    return made


@pytest.fixture
def sample(fixtures: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of a format's fixture."""

    def copy(name: str) -> Path:
        target = tmp_path / fixtures[name].name
        shutil.copyfile(fixtures[name], target)
        return target

    return copy


def _locations(path: Path) -> list[str]:
    return [found.location for found in api.read_labels(path)]


# ---------------------------------------------------------------------------- every format


@pytest.mark.parametrize("name", list(FORMATS))
def test_write_read_strip_keep_audio_and_tags(name: str, sample: Callable[[str], Path], demo_label: AIGCLabel) -> None:
    src = sample(name)
    original = src.read_bytes()
    container = open_container(src)
    assert container.name == FORMATS[name][2]
    assert api.read_labels(src) == []
    md5, digest = _stream_md5(src), container.payload_digest(src)

    out = src.with_name("labelled" + src.suffix)
    api.write_label(src, demo_label, out)
    assert src.read_bytes() == original
    found = api.read_labels(out)
    assert len(found) == 1 and found[0].label == demo_label and found[0].parsed is not None
    assert found[0].parsed.shape == "bare" and found[0].raw == demo_label.to_json()
    assert _stream_md5(out) == md5
    assert container.payload_digest(out) == digest
    assert _ffprobe_tags(out).get("TITLE") == "Hello"

    second = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    api.write_label(out, second)  # in place: replaces, never appends
    assert [f.label for f in api.read_labels(out)] == [second]
    assert api.inspect(out).ok

    api.strip_label(out)
    assert api.read_labels(out) == []
    assert _stream_md5(out) == md5
    assert container.payload_digest(out) == digest
    assert _ffprobe_tags(out).get("TITLE") == "Hello"


@pytest.mark.parametrize("name", list(FORMATS))
def test_payload_digest_sees_audio_changes(name: str, sample: Callable[[str], Path]) -> None:
    src = sample(name)
    container = open_container(src)
    before = container.payload_digest(src)
    data = bytearray(src.read_bytes())
    data[-40] ^= 0x10  # inside the last audio frame / page / sample block
    src.write_bytes(bytes(data))
    assert container.payload_digest(src) != before


@pytest.mark.parametrize("name", FFMPEG_TAGGED)
def test_ffprobe_mutagen_exiftool_read_our_label(
    name: str, sample: Callable[[str], Path], demo_label: AIGCLabel
) -> None:
    src = sample(name)
    api.write_label(src, demo_label)
    assert _ffprobe_tags(src)["AIGC"] == demo_label.to_json()
    tags = mutagen.File(src).tags
    if isinstance(tags, mutagen.id3.ID3):
        assert tags.getall("TXXX:AIGC")[0].text == [demo_label.to_json()]
        assert exiftool_tags(src)[f"ID3v2_{tags.version[1]}:UserDefinedText"] == f"(AIGC) {demo_label.to_json()}"
    else:
        assert tags["aigc"] == [demo_label.to_json()]
        assert exiftool_tags(src)["Vorbis:Aigc"] == demo_label.to_json()


def test_exiftool_and_stdlib_wave_read_our_wav(sample: Callable[[str], Path], demo_label: AIGCLabel) -> None:
    src = sample("wav")
    with wave.open(str(src)) as before:
        params, frames = before.getparams(), before.readframes(before.getnframes())
    api.write_label(src, demo_label)
    assert exiftool_tags(src, "-U", "-b")["RIFF:Unknown_AIGC"] == demo_label.to_json()
    with wave.open(str(src)) as after:
        assert after.getparams() == params and after.readframes(after.getnframes()) == frames
    require_tool("sox")
    assert "Sample Rate    : 8000" in _run("sox", "--i", str(src)).stdout


@pytest.mark.parametrize("name", FFMPEG_TAGGED)
def test_reads_and_replaces_ffmpeg_label(name: str, fixtures: dict[str, Path], tmp_path: Path) -> None:
    suffix, options, _container = FORMATS[name]
    foreign = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "ffmpeg1")
    src = _ffmpeg(tmp_path / f"f{suffix}", "-metadata", f"AIGC={foreign.to_json()}", *options)
    assert [f.label for f in api.read_labels(src)] == [foreign]
    mine = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "mine1")
    api.write_label(src, mine)
    assert [f.label for f in api.read_labels(src)] == [mine]


def test_ffmpeg_wav_muxer_drops_unknown_keys(tmp_path: Path) -> None:
    """ffmpeg's LIST/INFO writer knows fixed keys only, so it cannot label a WAV: nothing to read."""
    src = _ffmpeg(tmp_path / "f.wav", "-metadata", 'AIGC={"Label":"1"}', "-metadata", "title=T")
    assert api.read_labels(src) == []
    assert _ffprobe_tags(src)["TITLE"] == "T"


@pytest.mark.parametrize("name", ["flac", "vorbis"])
def test_reads_sox_comment(name: str, fixtures: dict[str, Path], tmp_path: Path) -> None:
    require_tool("sox")
    foreign = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "sox1")
    out = tmp_path / f"sox{FORMATS[name][0]}"
    _run("sox", str(fixtures["wav"]), "--comment", f"AIGC={foreign.to_json()}", str(out))
    assert [f.label for f in api.read_labels(out)] == [foreign]


@pytest.mark.parametrize("name", ["flac", "vorbis", "opus", "oggflac", "speex"])
def test_reads_mutagen_vorbis_comments_any_case(name: str, sample: Callable[[str], Path]) -> None:
    src = sample(name)
    audio = mutagen.File(src)
    audio.tags["aigc"] = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "m1").to_json()
    audio.tags["X_AIGC_COPY"] = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "m2").to_json()
    audio.tags["ARTIST"] = "Someone"
    audio.save()
    assert [f.label.produce_id for f in api.read_labels(src) if f.label] == ["m1", "m2"]
    assert len(api.inspect(src).labels) == 2 and not api.inspect(src).ok
    api.write_label(src, AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "m3"))
    assert [f.label.produce_id for f in api.read_labels(src) if f.label] == ["m3"]
    tags = mutagen.File(src).tags
    assert tags["artist"] == ["Someone"] and tags["title"] == ["Hello"]


# ---------------------------------------------------------------------------- MP3


def _id3_version(path: Path) -> int:
    return path.read_bytes()[3]


@pytest.mark.parametrize(("name", "version"), [("mp3", 4), ("mp3v23", 3)])
def test_mp3_keeps_id3_version_and_frames(
    name: str, version: int, sample: Callable[[str], Path], demo_label: AIGCLabel, tmp_path: Path
) -> None:
    src = sample(name)
    tags = mutagen.id3.ID3(src)
    tags.add(mutagen.id3.APIC(encoding=3, mime="image/png", type=3, desc="cover", data=b"\x89PNG fake" * 50))
    tags.add(mutagen.id3.COMM(encoding=3, lang="eng", desc="", text=["a comment"]))
    tags.add(mutagen.id3.TXXX(encoding=3, desc="aigc_old", text=['{"Label":"2","ContentProducer":"old"}']))
    tags.save(v2_version=version)
    assert _id3_version(src) == version
    assert [f.location for f in api.read_labels(src)] == [f"ID3v2.{version} TXXX:aigc_old"]
    audio = src.read_bytes()[mutagen.id3.ID3(src).size :]  # mutagen's idea of where the tag ends

    api.write_label(src, demo_label)
    assert _id3_version(src) == version
    assert _locations(src) == [f"ID3v2.{version} TXXX:AIGC"]
    after = mutagen.id3.ID3(src)
    assert after.getall("APIC")[0].data == b"\x89PNG fake" * 50
    assert after.getall("COMM")[0].text == ["a comment"] and after["TIT2"].text == ["Hello"]
    assert not after.getall("TXXX:aigc_old")
    assert src.read_bytes()[after.size :] == audio


def test_mp3_without_tag_gets_v23_and_strip_restores_bytes(demo_label: AIGCLabel, tmp_path: Path) -> None:
    src = _ffmpeg(tmp_path / "bare.mp3", "-c:a", "libmp3lame", "-write_xing", "0", "-id3v2_version", "0")
    original = src.read_bytes()
    assert original[:3] != b"ID3"
    assert open_container(src).name == "mp3"
    api.write_label(src, demo_label)
    assert _id3_version(src) == 3 and _locations(src) == ["ID3v2.3 TXXX:AIGC"]
    api.strip_label(src)
    assert src.read_bytes() == original


def test_mp3_id3v22_tag_keeps_its_version(sample: Callable[[str], Path], demo_label: AIGCLabel) -> None:
    src = sample("mp3")
    audio = src.read_bytes()[mutagen.id3.ID3(src).size :]
    frame = b"TT2" + struct.pack(">I", 6)[1:] + b"\x00Hello"
    src.write_bytes(b"ID3\x02\x00\x00" + bytes([0, 0, 0, len(frame)]) + frame + audio)
    api.write_label(src, demo_label)
    assert _id3_version(src) == 2 and _locations(src) == ["ID3v2.2 TXXX:AIGC"]
    assert mutagen.id3.ID3(src)["TIT2"].text == ["Hello"]
    assert _ffprobe_tags(src)["AIGC"] == demo_label.to_json()
    assert exiftool_tags(src)["ID3v2_2:UserDefinedText"] == f"(AIGC) {demo_label.to_json()}"
    assert src.read_bytes().endswith(audio)


def _raw_id3_frame(version: int, frame_id: str, body: bytes) -> bytes:
    size = bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0)) if version == 4 else struct.pack(">I", len(body))
    return frame_id.encode() + size + b"\0\0" + body


def _raw_id3(version: int, frames: list[bytes], padding: int = 64) -> bytes:
    body = b"".join(frames) + bytes(padding)
    return b"ID3" + bytes([version, 0, 0]) + bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0)) + body


@pytest.mark.parametrize("version", [3, 4])
def test_mp3_other_frames_kept_byte_for_byte(
    version: int, sample: Callable[[str], Path], demo_label: AIGCLabel
) -> None:
    """A v2.4-only frame in a v2.3 tag (TSOP, as iTunes writes), an empty frame and a multi-value TPE1
    survive exactly: mutagen's re-rendering would drop, drop and join them."""
    src = sample("mp3")
    audio = src.read_bytes()[mutagen.id3.ID3(src).size :]
    frames = [
        _raw_id3_frame(version, "TIT2", b"\x00Title"),
        _raw_id3_frame(version, "TPE1", b"\x00Alpha\x00Beta" if version == 4 else b"\x00Alpha/Beta"),
        _raw_id3_frame(version, "TSOP", b"\x00Sort Artist"),
        _raw_id3_frame(version, "TALB", b"\x00"),  # empty
        _raw_id3_frame(version, "TXXX", b"\x00aigc_old\x00" + b'{"Label":"2","ContentProducer":"old"}'),
        _raw_id3_frame(version, "COMM", b"\x00eng\x00"),  # empty comment
    ]
    src.write_bytes(_raw_id3(version, frames) + audio)
    api.write_label(src, demo_label)
    data = src.read_bytes()
    assert _id3_version(src) == version and _locations(src) == [f"ID3v2.{version} TXXX:AIGC"]
    kept = b"".join(frames[:4] + frames[5:])
    assert data[10 : 10 + len(kept)] == kept  # every other frame, in order, byte for byte
    assert data.endswith(audio)
    tags = mutagen.id3.ID3(src, translate=False)
    assert tags["TSOP"].text == ["Sort Artist"]  # mutagen skips empty frames when reading: bytes checked above
    if version == 4:
        assert tags["TPE1"].text == ["Alpha", "Beta"]
    assert _ffprobe_tags(src)["AIGC"] == demo_label.to_json()
    assert exiftool_tags(src)[f"ID3v2_{version}:UserDefinedText"] == f"(AIGC) {demo_label.to_json()}"
    api.strip_label(src)
    assert src.read_bytes()[10 : 10 + len(kept)] == kept and _locations(src) == []


def test_mp3_with_only_id3v1_keeps_title_and_artist_visible(demo_label: AIGCLabel, tmp_path: Path) -> None:
    """Readers stop at an ID3v2 tag: the new one carries the v1 fields too, and v1 stays."""
    src = _ffmpeg(tmp_path / "v1.mp3", "-c:a", "libmp3lame", "-write_xing", "0", "-id3v2_version", "0")
    v1 = b"TAG" + b"Song".ljust(30, b"\0") + b"Singer".ljust(30, b"\0") + b"Record".ljust(30, b"\0") + b"1999"
    v1 += b"note".ljust(28, b"\0") + b"\0\x07" + b"\x0d"
    src.write_bytes(src.read_bytes() + v1)
    before = _ffprobe_tags(src)
    assert before["TITLE"] == "Song" and before["ARTIST"] == "Singer"
    api.write_label(src, demo_label)
    after = _ffprobe_tags(src)
    assert after["AIGC"] == demo_label.to_json()
    assert (after["TITLE"], after["ARTIST"], after["ALBUM"]) == ("Song", "Singer", "Record")
    assert src.read_bytes().endswith(v1)
    assert exiftool_tags(src)["ID3v1:Title"] == "Song"


def test_mp3_with_bytes_before_the_first_frame(demo_label: AIGCLabel, tmp_path: Path) -> None:
    """Junk before the first frame (no tag): ffmpeg skips it, so it is labelled and the junk is kept."""
    bare = _ffmpeg(tmp_path / "bare.mp3", "-c:a", "libmp3lame", "-write_xing", "0", "-id3v2_version", "0")
    src = tmp_path / "junk.mp3"
    src.write_bytes(b"RECORDER HEADER\x01\x02" * 40 + bare.read_bytes())
    assert open_container(src).name == "mp3"
    digest = open_container(src).payload_digest(src)
    api.write_label(src, demo_label)
    assert _ffprobe_tags(src)["AIGC"] == demo_label.to_json()
    assert _stream_md5(src) == _stream_md5(bare) and open_container(src).payload_digest(src) == digest
    other = tmp_path / "junk.bin"
    other.write_bytes(b"RECORDER HEADER\x01\x02" * 40 + bare.read_bytes())
    with pytest.raises(UnsupportedFormatError):
        open_container(other)  # a frame chain after junk counts only for an MP3 file name


def test_mp3_id3v1_and_apev2_kept_ape_label_replaced(sample: Callable[[str], Path], demo_label: AIGCLabel) -> None:
    src = sample("mp3")
    ape = mutagen.apev2.APEv2()
    ape["Artist"] = "Ape Artist"
    ape["AIGC"] = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "ape1").to_json()
    ape.save(src)
    mutagen.id3.ID3(src).save(v1=2)  # add an ID3v1 tag from the v2 frames, after the APEv2 tag
    v1 = src.read_bytes()[-128:]
    assert v1[:3] == b"TAG"
    assert _locations(src) == ["APEv2 AIGC"]

    api.write_label(src, demo_label)
    assert _locations(src) == ["ID3v2.4 TXXX:AIGC"]
    assert src.read_bytes()[-128:] == v1
    kept = mutagen.apev2.APEv2(src)
    assert dict(kept) == {"Artist": kept["Artist"]} and str(kept["Artist"]) == "Ape Artist"
    assert exiftool_tags(src)["ID3v1:Title"] == "Hello"


def test_mp3_reads_and_removes_xmp_label(sample: Callable[[str], Path], demo_label: AIGCLabel) -> None:
    src = sample("mp3")
    _xmp_write(src)
    assert [f.location for f in api.read_labels(src)] == ["ID3v2.4 PRIV:XMP TC260:AIGC"]
    api.write_label(src, demo_label)
    assert _locations(src) == ["ID3v2.4 TXXX:AIGC"]
    assert exiftool_tags(src)["XMP-dc:Format"] == "audio/x-test"


def _xmp_write(path: Path) -> None:
    """What the TC260 image guide's code does, applied to audio through exempi."""
    value = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "xmp1").to_json()
    libxmp_write(path, value, extra={(DC_NS, "format"): "audio/x-test"})


def test_mp3_sniffing_is_strict(tmp_path: Path) -> None:
    adts = _ffmpeg(tmp_path / "a.aac", "-c:a", "aac", "-f", "adts")
    with contextlib.suppress(UnsupportedFormatError):
        assert open_container(adts).name != "mp3"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\xff\xfb\x90\x00" + bytes(5000))  # one plausible header, no second frame
    with pytest.raises(UnsupportedFormatError):
        open_container(junk)
    bare = _ffmpeg(tmp_path / "bare.mp3", "-c:a", "libmp3lame", "-write_xing", "0", "-id3v2_version", "0")
    assert open_container(bare).name == "mp3"
    junk.write_bytes(b"BIN1" + bare.read_bytes())  # MPEG frames inside some other binary
    with pytest.raises(UnsupportedFormatError):
        open_container(junk)
    id3_flac = tmp_path / "id3.flac"
    flac = _ffmpeg(tmp_path / "plain.flac", "-c:a", "flac")
    tag = io.BytesIO()
    mutagen.id3.ID3().save(tag)
    id3_flac.write_bytes(tag.getvalue() + flac.read_bytes())
    assert open_container(id3_flac).name == "flac"
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    api.write_label(id3_flac, label)
    assert id3_flac.read_bytes()[:3] == b"ID3" and [f.label for f in api.read_labels(id3_flac)] == [label]
    assert _stream_md5(id3_flac) == _stream_md5(flac)


def test_mp3_hostile_tag_sizes(sample: Callable[[str], Path], demo_label: AIGCLabel) -> None:
    src = sample("mp3")
    data = bytearray(src.read_bytes())
    data[6:10] = bytes([0x7F, 0x7F, 0x7F, 0x7F])  # ID3v2 tag of 256 MiB in a 9 KiB file
    src.write_bytes(bytes(data))
    assert_refused(src, TruncatedFileError, demo_label)
    ape_footer = b"APETAGEX" + struct.pack("<4I", 2000, 0x7FFFFFFF, 1, 0) + bytes(8)
    src.write_bytes(sample("mp3").read_bytes() + ape_footer)
    with pytest.raises(MalformedFileError, match="APEv2"):
        api.read_labels(src)


# ---------------------------------------------------------------------------- WAV


def _chunk_ids(path: Path) -> list[bytes]:
    data = path.read_bytes()
    ids, pos = [], 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack("<4sI", data[pos : pos + 8])
        ids.append(cid)
        pos += 8 + size + size % 2
    return ids


def _chunk(path: Path, wanted: bytes) -> bytes:
    data = path.read_bytes()
    pos = 12
    while pos + 8 <= len(data):
        cid, size = struct.unpack("<4sI", data[pos : pos + 8])
        if cid == wanted:
            return data[pos + 8 : pos + 8 + size]
        pos += 8 + size + size % 2
    raise AssertionError(f"no {wanted!r} chunk")


def _riff(*chunks: tuple[bytes, bytes], form: bytes = b"RIFF") -> bytes:
    body = b"".join(cid + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) % 2) for cid, data in chunks)
    return form + struct.pack("<I", len(body) + 4) + b"WAVE" + body


FMT = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)


def test_wav_chunks_kept_in_order_label_after_fmt(demo_label: AIGCLabel, tmp_path: Path) -> None:
    src = _ffmpeg(
        tmp_path / "b.wav", "-write_bext", "1", "-metadata", "title=T", "-metadata", "comment=C", "-ar", "8000"
    )
    before = _chunk_ids(src)
    assert b"bext" in before and b"LIST" in before
    payloads = {cid: _chunk(src, cid) for cid in before}
    copy = tmp_path / "copy.wav"
    api.write_label(src, demo_label, copy)  # a copy: the label right after fmt
    fmt = before.index(b"fmt ")
    assert _chunk_ids(copy) == [*before[: fmt + 1], b"AIGC", *before[fmt + 1 :]]
    assert api.write_label_how(src, demo_label) == "in-place"  # in place: appended, nothing else moves
    assert _chunk_ids(src) == [*before, b"AIGC"]
    for path in (copy, src):
        assert all(_chunk(path, cid) == payload for cid, payload in payloads.items())
        assert _chunk(path, b"AIGC") == demo_label.to_json().encode()
        assert struct.unpack("<I", path.read_bytes()[4:8])[0] == path.stat().st_size - 8


def test_wav_list_info_id3_and_xmp_fallbacks_read_and_removed(demo_label: AIGCLabel, tmp_path: Path) -> None:
    old = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "info1").to_json().encode()
    info = b"INFO" + b"INAM" + struct.pack("<I", 6) + b"Title\x00" + b"AIGC" + struct.pack("<I", len(old)) + old
    info += b"\x00" * (len(old) % 2)
    src = tmp_path / "f.wav"
    src.write_bytes(_riff((b"fmt ", FMT), (b"LIST", info), (b"data", bytes(800))))
    wav = mutagen.wave.WAVE(src)
    wav.add_tags()
    wav.tags.add(
        mutagen.id3.TXXX(encoding=3, desc="AIGC", text=[AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "i3").to_json()])
    )
    wav.tags.add(mutagen.id3.TIT2(encoding=3, text=["id3 title"]))
    wav.save()
    assert _locations(src) == ["LIST/INFO AIGC", "id3 chunk ID3v2.4 TXXX:AIGC"]
    _xmp_write(src)
    assert _locations(src)[-1] == "_PMX XMP TC260:AIGC"
    assert len(api.inspect(src).labels) == 3 and not api.inspect(src).ok

    api.write_label(src, demo_label)
    assert _locations(src) == ["RIFF AIGC chunk"]
    assert _chunk(src, b"LIST") == b"INFO" + b"INAM" + struct.pack("<I", 6) + b"Title\x00"
    assert mutagen.wave.WAVE(src).tags["TIT2"].text == ["id3 title"]
    assert exiftool_tags(src)["XMP-dc:Format"] == "audio/x-test"
    assert _chunk(src, b"data") == bytes(800)


def test_wav_every_aigc_chunk_reported_one_kept(demo_label: AIGCLabel, tmp_path: Path) -> None:
    first = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "c1").to_json().encode()
    second = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, "c2").to_json().encode() + b"\x00"
    src = tmp_path / "two.wav"
    src.write_bytes(_riff((b"fmt ", FMT), (b"data", bytes(64)), (b"AIGC", first), (b"aigc", second)))
    assert _locations(src) == ["RIFF AIGC chunk", "RIFF aigc chunk"]
    assert [f.label.produce_id for f in api.read_labels(src) if f.label] == ["c1", "c2"]
    api.write_label(src, demo_label)
    assert _chunk_ids(src) == [b"fmt ", b"AIGC", b"data"]
    api.strip_label(src)
    assert _chunk_ids(src) == [b"fmt ", b"data"] and _chunk(src, b"data") == bytes(64)


def test_wav_streamed_sizes_are_fixed(demo_label: AIGCLabel, tmp_path: Path) -> None:
    src = tmp_path / "pipe.wav"
    src.write_bytes(_run_bytes("ffmpeg", "-v", "error", *SINE, "-ar", "8000", "-f", "wav", "-"))
    assert src.read_bytes()[4:8] == b"\xff\xff\xff\xff"
    digest = open_container(src).payload_digest(src)
    api.write_label(src, demo_label)
    assert struct.unpack("<I", src.read_bytes()[4:8])[0] == src.stat().st_size - 8
    with wave.open(str(src)) as fixed:
        assert fixed.getnframes() == 8000
    assert open_container(src).payload_digest(src) == digest
    assert _locations(src) == ["RIFF AIGC chunk"]


def _run_bytes(*args: str) -> bytes:
    return subprocess.run(args, check=True, capture_output=True).stdout


def test_rf64_write_and_read(demo_label: AIGCLabel, tmp_path: Path) -> None:
    src = _ffmpeg(tmp_path / "r.wav", "-rf64", "always", "-ar", "8000")
    assert src.read_bytes()[:4] == b"RF64"
    md5 = _stream_md5(src)
    api.write_label(src, demo_label)
    data = src.read_bytes()
    assert data[:4] == b"RF64" and struct.unpack("<Q", data[20:28])[0] == len(data) - 8
    assert _locations(src) == ["RIFF AIGC chunk"]
    assert _stream_md5(src) == md5
    bw64 = src.with_name("b.wav")
    bw64.write_bytes(b"BW64" + data[4:])  # EBU Tech 3285's twin of RF64: same layout, other magic
    assert [f.label for f in api.read_labels(bw64)] == [demo_label]
    api.strip_label(bw64)
    assert api.read_labels(bw64) == [] and bw64.read_bytes()[:4] == b"BW64"


def test_wav_missing_pad_byte_tolerated(demo_label: AIGCLabel, tmp_path: Path) -> None:
    odd = b"odd"
    body = b"fmt " + struct.pack("<I", 16) + FMT + b"junk" + struct.pack("<I", 3) + odd
    body += b"data" + struct.pack("<I", 8) + bytes(8)
    src = tmp_path / "nopad.wav"
    src.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body)
    api.write_label(src, demo_label)
    assert _chunk_ids(src) == [b"fmt ", b"AIGC", b"junk", b"data"]
    assert _chunk(src, b"junk") == odd


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        (((b"data", bytes(8)),), MalformedFileError),
        (((b"fmt ", FMT),), MalformedFileError),
        (((b"fmt ", FMT), (b"\x00\x01\x02\x03", b""), (b"data", b"")), MalformedFileError),
        (((b"fmt ", FMT[:4]), (b"data", bytes(8))), MalformedFileError),
    ],
)
def test_wav_structure_errors(chunks: tuple[tuple[bytes, bytes], ...], error: type[Exception], tmp_path: Path) -> None:
    src = tmp_path / "bad.wav"
    src.write_bytes(_riff(*chunks))
    with pytest.raises(error):
        api.read_labels(src)


def test_wav_declared_size_beyond_file(demo_label: AIGCLabel, tmp_path: Path) -> None:
    src = tmp_path / "big.wav"
    data = _riff((b"fmt ", FMT), (b"AIGC", b"{}"), (b"data", bytes(16)))
    at = data.index(b"AIGC")
    data = data[: at + 4] + struct.pack("<I", 0x7FFFFFF0) + data[at + 8 :]
    src.write_bytes(data)
    assert_refused(src, TruncatedFileError, demo_label)


def test_wav_recording_cut_short_is_labelled(demo_label: AIGCLabel, tmp_path: Path) -> None:
    """A ``data`` chunk cut short (``dd`` of a recording): labelled, its header and bytes kept, still cut."""
    whole = _ffmpeg(tmp_path / "whole.wav", "-c:a", "pcm_s16le").read_bytes()
    src = tmp_path / "cut.wav"
    src.write_bytes(whole[: len(whole) * 2 // 3 + 1])
    digest = open_container(src).payload_digest(src)
    out = api.write_label(src, demo_label, tmp_path / "labelled.wav")
    assert [f.label for f in api.read_labels(out)] == [demo_label]
    assert _stream_md5(out) == _stream_md5(src) and open_container(out).payload_digest(out) == digest
    data = out.read_bytes()
    assert struct.unpack("<I", data[4:8])[0] == struct.unpack("<I", whole[4:8])[0] + len(data) - len(src.read_bytes())
    assert exiftool_tags(out)["RIFF:Software"].startswith("Lavf")  # ffmpeg's LIST/INFO chunk is still read
    assert api.strip_label(out).read_bytes() == src.read_bytes()


# ---------------------------------------------------------------------------- FLAC


def test_flac_comment_block_shorter_than_its_comments(demo_label: AIGCLabel, tmp_path: Path) -> None:
    """Old taggers wrote VORBIS_COMMENT lengths too short for the comments (mutagen reads them whole):
    the overflow stays where it was, so ffmpeg still sees the same packets."""
    src = _ffmpeg(tmp_path / "short.flac", "-c:a", "flac", "-metadata", "title=" + "t" * 200)
    data = src.read_bytes()
    blocks, pos = {}, 4
    while True:  # keep STREAMINFO and VORBIS_COMMENT (made the last block, declared 120 bytes short)
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        blocks[data[pos] & 0x7F] = data[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if data[pos - 4 - length] & 0x80:
            break
    comment = blocks[4]
    src.write_bytes(
        b"fLaC\x00" + len(blocks[0]).to_bytes(3, "big") + blocks[0]
        + b"\x84" + (len(comment) - 120).to_bytes(3, "big") + comment + data[pos:]
    )  # fmt: skip
    assert mutagen.flac.FLAC(src)["title"] == ["t" * 200]
    before, digest = stream_hash(src), open_container(src).payload_digest(src)
    out = api.write_label(src, demo_label, tmp_path / "labelled.flac")
    assert [f.label for f in api.read_labels(out)] == [demo_label]
    assert stream_hash(out) == before and open_container(out).payload_digest(out) == digest
    assert mutagen.flac.FLAC(out)["title"] == ["t" * 200]


def test_flac_keeps_md5_picture_padding_and_comments(sample: Callable[[str], Path], demo_label: AIGCLabel) -> None:
    src = sample("flac")
    audio = mutagen.flac.FLAC(src)
    picture = mutagen.flac.Picture()
    picture.type, picture.mime, picture.data = 3, "image/png", b"\x89PNG fake" * 40
    audio.add_picture(picture)
    audio["ARTIST"] = "Someone"
    audio.save()
    md5 = mutagen.flac.FLAC(src).info.md5_signature
    api.write_label(src, demo_label)
    after = mutagen.flac.FLAC(src)
    assert after.info.md5_signature == md5 and md5 != 0
    assert after.pictures[0].data == b"\x89PNG fake" * 40
    assert after["artist"] == ["Someone"] and after["title"] == ["Hello"]
    assert after["AIGC"] == [demo_label.to_json()]
    assert any(isinstance(block, mutagen.flac.Padding) for block in after.metadata_blocks)


# ---------------------------------------------------------------------------- hostile input


def _mutations() -> st.SearchStrategy[tuple[str, int, int]]:
    return st.tuples(st.sampled_from(["truncate", "flip", "flip"]), st.integers(0, 1 << 30), st.integers(0, 7))


def _rich_mp3(path: Path) -> None:
    """Add APEv2 and ID3v1 trailing tags so the fuzzer also hits the tail parser."""
    ape = mutagen.apev2.APEv2()
    ape["Artist"] = "Ape"
    ape.save(path)
    mutagen.id3.ID3(path).save(v1=2)


def _rich_wav(path: Path) -> None:
    wav = mutagen.wave.WAVE(path)
    wav.add_tags()
    wav.tags.add(mutagen.id3.TIT2(encoding=3, text=["id3 title"]))
    wav.save()


@pytest.mark.parametrize("name", ["mp3", "mp3v23", "wav", "flac", "vorbis", "opus", "oggflac", "speex"])
def test_hostile_files_give_typed_errors_and_stay_untouched(
    name: str, fixtures: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    labelled = tmp_path_factory.mktemp("fuzz") / fixtures[name].name
    api.write_label(fixtures[name], AIGCLabel.for_producer(DEMO_PROVIDER_CODE), labelled)
    {"mp3": _rich_mp3, "wav": _rich_wav}.get(name, lambda path: None)(labelled)
    base = labelled.read_bytes()
    # Metadata lives at the start (and, for MP3 and WAV here, the end): aim most mutations there.
    edge = min(len(base), 1024)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(_mutations())
    def check(mutation: tuple[str, int, int]) -> None:
        kind, where, bit = mutation
        data = bytearray(base)
        if kind == "truncate":
            data = data[: where % len(base)]
        else:
            spot = where % edge
            at = (spot, len(base) - 1 - spot, where % len(base))[where % 3]
            data[at] ^= 1 << bit
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / labelled.name
            path.write_bytes(bytes(data))
            for action in (
                lambda: api.read_labels(path),
                lambda: api.write_label(path, AIGCLabel.for_producer(DEMO_PROVIDER_CODE), Path(folder) / "o"),
                lambda: api.strip_label(path, Path(folder) / "s"),
                lambda: open_container(path).payload_digest(path),
            ):
                with contextlib.suppress(AIGCLabelError):
                    action()
                assert path.read_bytes() == bytes(data)

    check()


def test_ogg_theora_video_is_labelled_in_its_comment_header(demo_label: AIGCLabel, tmp_path: Path) -> None:
    video = ["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=1", *SINE]
    src = _ffmpeg(tmp_path / "v.ogv", "-c:v", "libtheora", "-c:a", "libvorbis", "-shortest", source=video)
    container = open_container(src)
    assert container.name == "ogg"
    out = api.write_label(src, demo_label, tmp_path / "labelled.ogv")
    assert [f.location for f in api.read_labels(out)] == ["Theora comment AIGC"]
    streams = json.loads(_run("ffprobe", "-v", "error", "-show_entries", "stream_tags", "-of", "json", str(out)).stdout)
    assert streams["streams"][0]["tags"]["AIGC"] == demo_label.to_json()
    assert exiftool_tags(out)["Theora:Aigc"] == demo_label.to_json()
    assert mutagen.File(out)["AIGC"] == [demo_label.to_json()]
    assert stream_hash(out) == stream_hash(src)
    assert container.payload_digest(out) == container.payload_digest(src)
    assert api.read_labels(api.strip_label(out)) == []


def test_ogg_skeleton_first_and_cut_short_theora(demo_label: AIGCLabel, tmp_path: Path) -> None:
    """A Skeleton stream before the Theora one (what ffmpeg2theora and many .ogv files have), and a
    recording cut inside its last page: both labelled in the Theora comment header, packets unchanged."""
    video = ["-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=2"]
    theora = _ffmpeg(tmp_path / "t.ogv", "-c:v", "libtheora", source=video).read_bytes()
    page = mutagen.ogg.OggPage()
    page.serial, page.first, page.position = 0x5E1E, True, 0
    page.packets = [b"fishead\0" + struct.pack("<HHqqqq", 3, 0, 0, 1000, 0, 1000) + bytes(20)]
    for name, data in (("skeleton.ogv", page.write() + theora), ("cut.ogv", theora[: len(theora) * 2 // 3])):
        src = tmp_path / name
        src.write_bytes(data)
        assert open_container(src).name == "ogg"
        digest, before = open_container(src).payload_digest(src), stream_hash(src)
        out = api.write_label(src, demo_label, tmp_path / f"labelled-{name}")
        assert [f.location for f in api.read_labels(out)] == ["Theora comment AIGC"]
        assert exiftool_tags(out)["Theora:Aigc"] == demo_label.to_json()
        assert stream_hash(out) == before and open_container(out).payload_digest(out) == digest
