"""Visible video labels (GB 45438 §5.4): seconds of overlay measured from frame diffs and timestamps
(ffmpeg/ffprobe decode, not PyAV), glyph height on the frames, audio packets untouched."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from aigclabel import AIGCLabel, api
from aigclabel.errors import InvalidLabelError, MalformedFileError
from aigclabel.explicit import add_video_label

from .conftest import require_tool

pytestmark = pytest.mark.interop  # ffmpeg makes and reads every file

W, H, FPS = 320, 240, 25


def _fixture(path: Path, seconds: float = 3.0, audio: bool = True) -> Path:
    cmd = [require_tool("ffmpeg"), "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc2=s={W}x{H}:r={FPS}:d={seconds}"]  # fmt: skip
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:a", "aac", "-shortest"]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", str(path)]
    subprocess.run(cmd, check=True)
    return path


def _frames(path: Path) -> npt.NDArray[np.int16]:
    raw = subprocess.run(
        [require_tool("ffmpeg"), "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, H, W, 3).astype(np.int16)


def _times(path: Path) -> list[float]:
    out = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
         "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return [float(f["pts_time"]) for f in json.loads(out)["frames"]]


def _audio_md5(path: Path) -> str:
    return subprocess.run(
        [require_tool("ffmpeg"), "-nostdin", "-loglevel", "error", "-i", str(path), "-map", "0:a", "-c", "copy",
         "-f", "md5", "-"],
        capture_output=True, check=True, text=True,
    ).stdout.strip()  # fmt: skip


def _stream_info(path: Path) -> dict[str, str]:
    out = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name,width,height,pix_fmt,r_frame_rate,nb_frames", "-of", "json", str(path)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    info: dict[str, str] = json.loads(out)["streams"][0]
    return info


def _labelled_mask(before: npt.NDArray[np.int16], after: npt.NDArray[np.int16], plate: tuple[int, ...]) -> list[bool]:
    x0, y0, x1, y1 = plate
    diff = np.abs(before[:, y0:y1, x0:x1] - after[:, y0:y1, x0:x1]).mean(axis=(1, 2, 3))
    return [bool(d > 25) for d in diff]  # x264 at CRF 18 alone differs by ~1-3 levels


def test_opening_label_lasts_at_least_two_seconds_by_timestamps(tmp_path: Path) -> None:
    src, dst = _fixture(tmp_path / "in.mp4"), tmp_path / "out.mp4"
    result = add_video_label(src, dst, seconds=2.0, implicit="if-supported")
    before, after, times = _frames(src), _frames(dst), _times(dst)
    assert before.shape == after.shape and len(times) == len(after) == 75
    labelled = _labelled_mask(before, after, result.layout.plate)
    first_off = labelled.index(False)
    assert all(labelled[:first_off]) and not any(labelled[first_off:])  # contiguous from frame 0
    shown = times[first_off] - times[0]
    assert shown >= 2.0
    assert shown == pytest.approx(result.labelled_seconds, abs=1e-3)
    assert first_off == result.labelled_frames == 50
    # glyph height on frame 0, measured from bright ink inside the changed plate
    x0, y0, x1, y1 = result.layout.plate
    plate = after[0, y0:y1, x0:x1]
    ink_rows = np.nonzero(
        ((plate.min(axis=2) > 180) if result.colours.plate[0] < 128 else (plate.max(axis=2) < 80)).any(axis=1)
    )[0]
    assert ink_rows.max() - ink_rows.min() + 1 >= 0.05 * min(W, H)


def test_stream_properties_kept_and_audio_packets_identical(tmp_path: Path) -> None:
    src, dst = _fixture(tmp_path / "in.mp4"), tmp_path / "out.mp4"
    result = add_video_label(src, dst, implicit="if-supported")
    assert result.audio_streams_copied == 1
    assert _audio_md5(dst) == _audio_md5(src)
    a, b = _stream_info(src), _stream_info(dst)
    for key in ("codec_name", "width", "height", "pix_fmt", "r_frame_rate", "nb_frames"):
        assert a[key] == b[key], key
    assert _times(src) == _times(dst)


def test_persistent_label_covers_every_frame(tmp_path: Path) -> None:
    src, dst = _fixture(tmp_path / "in.mkv", seconds=2.4, audio=False), tmp_path / "out.mkv"
    result = add_video_label(src, dst, persistent=True, placement="top-left", implicit="if-supported")
    assert all(_labelled_mask(_frames(src), _frames(dst), result.layout.plate))
    assert result.labelled_frames == result.frames == 60


def test_short_video_is_labelled_throughout(tmp_path: Path) -> None:
    src, dst = _fixture(tmp_path / "in.mp4", seconds=1.0, audio=False), tmp_path / "out.mp4"
    result = add_video_label(src, dst, implicit="if-supported")
    assert result.labelled_frames == result.frames == 25
    assert result.labelled_seconds == pytest.approx(1.0, abs=1e-6)


def test_implicit_label_carried_over(tmp_path: Path, demo_label: AIGCLabel) -> None:
    src, dst = _fixture(tmp_path / "in.mp4", seconds=2.2), tmp_path / "out.mov"
    api.write_label(src, demo_label)
    result = add_video_label(src, dst, seconds=2.0)
    assert result.implicit_label_kept
    inspection = api.inspect(dst)
    assert inspection.ok and inspection.label == demo_label and len(inspection.labels) == 1


def test_bad_arguments_and_inputs(tmp_path: Path) -> None:
    src = _fixture(tmp_path / "in.mp4", seconds=1.0, audio=False)
    with pytest.raises(InvalidLabelError):
        add_video_label(src, tmp_path / "a.mp4", seconds=1.9, implicit="if-supported")
    with pytest.raises(InvalidLabelError):
        add_video_label(src, tmp_path / "a.mp4", text="AI", implicit="if-supported")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(src.read_bytes()[:600])
    with pytest.raises(MalformedFileError):
        add_video_label(broken, tmp_path / "b.mp4", implicit="if-supported")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4", "in.mp4"]


def test_rotated_phone_video_is_labelled_upright(tmp_path: Path) -> None:
    from PIL import Image

    from aigclabel.check import check_file
    from aigclabel.explicit import locate_label

    ffmpeg = require_tool("ffmpeg")
    coded = _fixture(tmp_path / "coded.mp4", seconds=2.4, audio=False)
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    subprocess.run(
        [
            ffmpeg,
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            str(coded),
            "-c",
            "copy",
            "-metadata:s:v",
            "rotate=90",
            str(src),
        ],
        check=True,
    )
    result = add_video_label(src, dst, seconds=2.0, implicit="if-supported")
    assert result.layout.canvas == (H, W)  # planned for the portrait picture the viewer sees
    rotation = subprocess.run(
        [require_tool("ffprobe"), "-v", "error", "-show_entries", "stream_side_data=rotation", "-of", "csv=p=0",
         str(dst)],
        capture_output=True, check=True, text=True,
    ).stdout.split()  # fmt: skip
    assert rotation == ["90"]
    shown = tmp_path / "shown.png"  # the ffmpeg CLI applies the display matrix when decoding
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(dst), "-frames:v", "1", str(shown)], check=True)
    with Image.open(shown) as frame:
        assert frame.size == (H, W)
        located = locate_label(frame)
    assert located is not None and located.plate[2] > H - 20 and located.plate[3] > W - 20  # bottom-right
    assert {r.rule: r.status for r in check_file(dst, implicit=False).rules}["video-label-duration"] == "pass"
