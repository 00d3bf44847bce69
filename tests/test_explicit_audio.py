"""Audible labels (GB 45438 §5.3): cue timings and positions measured on the decoded output by the
detector and, independently, by an STFT envelope over audio decoded with the ffmpeg CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import mutagen
import numpy as np
import numpy.typing as npt
import pytest
from scipy import signal

from aigclabel import AIGCLabel, api
from aigclabel.errors import InvalidLabelError, MalformedFileError, UnsupportedFormatError
from aigclabel.explicit import CueTiming, add_audio_label, detect_cue, make_cue
from aigclabel.explicit.audio import find_spoken_label, load_mono

from .conftest import require_tool

pytestmark = pytest.mark.interop  # ffmpeg makes and reads every file

RATE = 16000
FORMATS = {".wav": "pcm_s16le", ".mp3": "mp3", ".flac": "flac", ".ogg": "opus", ".m4a": "aac"}


def _fixture(
    path: Path, seconds: float = 3.0, rate: int = 44100, channels: int = 2, source: str = "sine=f=440"
) -> Path:
    ffmpeg = require_tool("ffmpeg")
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"{source}:d={seconds}",
         "-ar", str(rate), "-ac", str(channels), str(path)],
        check=True,
    )  # fmt: skip
    return path


def _decode_cli(path: Path) -> npt.NDArray[np.float32]:
    """Mono float32 at RATE, decoded by the ffmpeg CLI (not PyAV)."""
    raw = subprocess.run(
        [require_tool("ffmpeg"), "-nostdin", "-loglevel", "error", "-i", str(path), "-ac", "1", "-ar", str(RATE),
         "-f", "f32le", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.float32)


def _probe(path: Path) -> dict[str, str]:
    out = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-show_entries",
         "stream=codec_name,sample_rate,channels:format=duration", "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out)
    return {**data["streams"][0], "duration": data["format"]["duration"]}


def _tones(samples: npt.NDArray[np.float32], freq: float = 1000.0) -> list[tuple[float, float]]:
    """(start, duration) of tone runs: STFT magnitude at ``freq``, 2 ms hop, half-maximum threshold."""
    f, t, z = signal.stft(samples, RATE, nperseg=256, noverlap=256 - 32)
    mag = np.abs(z[np.argmin(np.abs(f - freq))])
    on = mag > 0.5 * mag.max()
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])))
    hop = t[1] - t[0]
    return [(float(t[s]), float((e - s) * hop)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def test_generated_cue_has_morse_timings() -> None:
    runs = _tones(make_cue(RATE))
    assert len(runs) == 4
    for (_, measured), expected in zip(runs, (0.12, 0.36, 0.12, 0.12), strict=True):
        assert measured == pytest.approx(expected, abs=0.012)
    gaps = [runs[i + 1][0] - (runs[i][0] + runs[i][1]) for i in range(3)]
    assert gaps == pytest.approx([0.12] * 3, abs=0.012)


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_cue_at_start_in_every_output_format(tmp_path: Path, suffix: str) -> None:
    src = _fixture(tmp_path / "in.wav")
    dst = tmp_path / f"out{suffix}"
    result = add_audio_label(src, dst, kind="cue", implicit="if-supported")
    info = _probe(dst)
    assert info["codec_name"] == FORMATS[suffix]
    assert int(info["channels"]) == 2
    assert int(info["sample_rate"]) == (48000 if suffix == ".ogg" else 44100)
    assert float(info["duration"]) == pytest.approx(3.0 + result.label_seconds, abs=0.08)
    samples = _decode_cli(dst)
    # detector
    (match,) = detect_cue(samples, RATE)
    assert match.start == pytest.approx(0.25, abs=0.06)  # after the 250 ms lead-in, codec delay allowed
    assert match.tones == pytest.approx((0.12, 0.36, 0.12, 0.12), abs=0.02)
    # independent envelope: the four tones, their durations within 15 ms
    runs = [r for r in _tones(samples) if r[0] < 2.0]
    assert [round(d / 0.12) for _, d in runs] == [1, 3, 1, 1]
    assert [d for _, d in runs] == pytest.approx([0.12, 0.36, 0.12, 0.12], abs=0.015)


def test_start_middle_end_positions_insert(tmp_path: Path) -> None:
    src = _fixture(tmp_path / "in.wav", seconds=3.0, rate=22050, channels=1)
    dst = tmp_path / "out.mp3"
    result = add_audio_label(src, dst, kind="cue", positions=("start", "middle", "end"), implicit="if-supported")
    label = result.label_seconds
    assert result.offsets == pytest.approx([0.0, 1.5 + label, 3.0 + 2 * label], abs=0.01)
    samples = _decode_cli(dst)
    starts = [m.start for m in detect_cue(samples, RATE)]
    assert starts == pytest.approx([o + 0.25 for o in result.offsets], abs=0.06)
    assert len(_tones(samples)) == 12


def test_mix_keeps_duration_and_is_detected(tmp_path: Path) -> None:
    src = _fixture(tmp_path / "in.flac", seconds=6.0, source="anoisesrc=a=0.2")
    dst = tmp_path / "out.wav"
    result = add_audio_label(src, dst, kind="cue", positions=("start", "end"), mode="mix", implicit="if-supported")
    assert float(_probe(dst)["duration"]) == pytest.approx(6.0, abs=0.01)
    starts = [m.start for m in detect_cue(_decode_cli(dst), RATE)]
    assert starts == pytest.approx([0.25, 6.0 - result.label_seconds + 0.25], abs=0.02)


def test_spoken_label_is_normal_speed_and_found(tmp_path: Path) -> None:
    clip = resources.files("aigclabel") / "data" / "spoken-label-zh.flac"
    with resources.as_file(clip) as path:
        info = _probe(path)
        assert info["codec_name"] == "flac" and int(info["sample_rate"]) == 16000 and int(info["channels"]) == 1
        seconds = float(info["duration"])
        assert path.stat().st_size < 100_000
    chars_per_minute = 6 / seconds * 60
    assert 120 <= chars_per_minute <= 160, chars_per_minute  # GB 45438 §5.3 note 4
    # the speech itself fills the clip: no long silences inside (20 ms RMS above -40 dBFS most of the time)
    speech = _decode_cli(path)
    frames = speech[: speech.size // 320 * 320].reshape(-1, 320)
    voiced = (np.sqrt((frames**2).mean(axis=1)) > 0.01).mean()
    assert voiced > 0.6
    src = _fixture(tmp_path / "in.wav")
    dst = tmp_path / "out.m4a"
    add_audio_label(src, dst, kind="speech", positions=("end",), implicit="if-supported")
    hits = find_spoken_label(load_mono(dst))
    assert hits == pytest.approx([3.25], abs=0.05)
    assert detect_cue(_decode_cli(dst), RATE) == []


def test_detector_has_no_false_positives(tmp_path: Path) -> None:
    for source in ("sine=f=1000", "anoisesrc=a=0.3", "sine=f=440"):
        samples = _decode_cli(_fixture(tmp_path / "x.wav", seconds=3.0, source=source))
        assert detect_cue(samples, RATE) == []
    # a rhythm in the wrong order (long-short-short-short) is not the cue
    cue = make_cue(RATE)
    dot, dash, gap = (round(x * RATE) for x in (0.12, 0.36, 0.12))
    swapped = np.concatenate([cue[dot + gap : dot + gap + dash], np.zeros(gap, np.float32), cue[:dot]] * 2)
    assert detect_cue(swapped.astype(np.float32), RATE) == []


def test_custom_timing_is_honoured_and_validated(tmp_path: Path) -> None:
    timing = CueTiming(dot=0.08, dash=0.24, gap=0.08, frequency=800.0)
    runs = _tones(make_cue(RATE, timing), freq=800.0)
    assert [d for _, d in runs] == pytest.approx([0.08, 0.24, 0.08, 0.08], abs=0.012)
    assert len(detect_cue(make_cue(RATE, timing), RATE, timing)) == 1
    for bad in ({"dot": 0.01}, {"dash": 0.1}, {"amplitude": 2.0}, {"frequency": 50.0}):
        with pytest.raises(InvalidLabelError):
            CueTiming(**bad)


def test_implicit_label_and_tags_carried_over(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src = _fixture(tmp_path / "in.mp3")
    api.write_label(src, demo_label)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    for suffix in (".mp3", ".wav", ".flac", ".ogg", ".m4a"):
        dst = tmp_path / f"out{suffix}"
        assert add_audio_label(src, dst, kind="cue").implicit_label_kept
        inspection = api.inspect(dst)
        assert inspection.ok and inspection.label == demo_label and len(inspection.labels) == 1, suffix
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest
    tags = mutagen.File(tmp_path / "out.mp3").tags  # independent reader
    assert demo_label.produce_id in str(tags["TXXX:AIGC"])


def test_bad_inputs_are_typed_errors_and_write_nothing(tmp_path: Path) -> None:
    src = _fixture(tmp_path / "in.wav")
    with pytest.raises(UnsupportedFormatError):
        add_audio_label(src, tmp_path / "out.xyz", implicit="if-supported")
    with pytest.raises(InvalidLabelError):
        add_audio_label(src, tmp_path / "out.wav", positions=("start", "end"), mode="mix", implicit="if-supported")
    with pytest.raises(InvalidLabelError):
        add_audio_label(src, tmp_path / "out.wav", positions=(), implicit="if-supported")
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\x00not audio" * 100)
    with pytest.raises((MalformedFileError, UnsupportedFormatError)):
        add_audio_label(garbage, tmp_path / "out.wav", implicit="if-supported")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.mp3", "in.wav"]


def test_windowed_scan_finds_each_label_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aigclabel.explicit import audio

    src = _fixture(tmp_path / "in.wav", seconds=8.0, rate=16000, channels=1, source="anoisesrc=a=0.05")
    dst = tmp_path / "out.flac"
    result = add_audio_label(src, dst, kind="both", positions=("start", "middle", "end"), implicit="if-supported")
    whole = audio.scan_audio(dst)
    monkeypatch.setattr(audio, "SCAN_WINDOW_SECONDS", 1.3)  # many window edges cut through labels
    windowed = audio.scan_audio(dst)
    assert [c.start for c in windowed.cues] == pytest.approx([c.start for c in whole.cues], abs=0.002)
    assert windowed.spoken == pytest.approx(whole.spoken, abs=0.002)
    assert [c.start for c in whole.cues] == pytest.approx([o + 0.25 for o in result.offsets], abs=0.01)
    assert len(whole.spoken) == 3
    assert windowed.duration == pytest.approx(8.0 + 3 * result.label_seconds, abs=0.01)


def test_pcm_stream_is_labelled_without_buffering() -> None:
    from aigclabel.explicit import label_pcm_stream

    pulled: list[int] = []

    def tts() -> Iterator[npt.NDArray[np.float32]]:
        for i in range(3):
            pulled.append(i)
            yield (0.1 * np.sin(np.arange(RATE // 2) * 2 * np.pi * 300 / RATE)).astype(np.float32)

    stream = label_pcm_stream(tts(), RATE, position="both")
    first = next(stream)
    assert pulled == [] and first.shape[0] == 1  # the cue is out before the synthesiser is asked
    rest = list(stream)
    assert pulled == [0, 1, 2]
    mono = np.concatenate([first, *rest], axis=1)[0]
    starts = [m.start for m in detect_cue(mono, RATE)]
    label = first.shape[1] / RATE
    assert starts == pytest.approx([0.25, label + 1.5 + 0.25], abs=0.01)


def test_pcm_stream_refuses_a_position_it_would_not_label() -> None:
    from aigclabel.explicit import label_pcm_stream

    with pytest.raises(InvalidLabelError, match="position must be start, end or both"):
        next(label_pcm_stream(iter(()), RATE, position="middle"))  # type: ignore[arg-type]
