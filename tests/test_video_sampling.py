"""How :func:`aigclabel._decode.video_frames` samples real videos under the service's frame budget: a 60 s phone-style
or default-GOP H.264 video is covered to its end within 240 decoded frames, and hostile videos (one keyframe in ten
minutes, all keyframes, a frame over the pixel limit) stay bounded with a partial result or a typed error."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

from aigclabel import _budget
from aigclabel._decode import sampled_times, video_frames
from aigclabel.errors import LimitExceededError

from ._video import ffmpeg, late_face_video

pytestmark = pytest.mark.interop  # ffmpeg makes the videos


def _sample(video: Path) -> tuple[list[float], int]:
    """The times taken under the service's default budget, and the frames that cost."""
    with _budget.budget(_budget.Budget()), _budget.stage("faces") as spent:
        times = [at for at, _ in video_frames(video)]
        assert spent is not None
        return times, spent.used_frames


def _keyframes(video: Path) -> list[float]:
    """Keyframe times as ffprobe reads them (independently of PyAV's demuxing)."""
    cmd = ["ffprobe", "-v", "error", "-select_streams", "v", "-skip_frame", "nokey", "-show_entries",
           "frame=pts_time", "-of", "csv=p=0", str(video)]  # fmt: skip
    listed = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [float(line.split(",")[0]) for line in listed.split()]


@pytest.mark.parametrize("gop", [None, 30])
def test_a_minute_of_30_fps_is_covered_within_the_budget(tmp_path: Path, gop: int | None) -> None:
    """Default GOP (keyint 250, 8.3 s): the keyframes (ffprobe's) stand in for the samples between them; a 1 s GOP:
    every one of the 30 samples, 2.07 s apart, at a few frames' cost each. Before: over budget after 8 s."""
    pytest.importorskip("skimage")
    from PIL import Image
    from skimage import data

    face = tmp_path / "face.png"
    Image.fromarray(data.astronaut()).save(face)
    video = late_face_video(tmp_path / "late.mp4", face, gop=gop)
    with sampled_times() as recorded:
        times, frames = _sample(video)
    assert recorded == times and frames <= 240
    assert times[0] == 0.0 and times[-1] > 56 and any(40 <= at < 50 for at in times)
    if gop is None:
        keys = _keyframes(video)
        assert len(keys) < 12 and all(any(abs(key - at) < 0.02 for at in times) for key in keys)
    else:
        assert len(times) == 30 and frames < 30 * 16  # at most half a GOP per sample
        assert max(b - a for a, b in itertools.pairwise(times)) <= 60 / 29 + 1  # a keyframe: <= 0.5 s off


def test_one_keyframe_in_ten_minutes_gives_a_partial_result(tmp_path: Path) -> None:
    """18 000 frames after a single keyframe: the first frame only, not 18 000 decoded frames or a hang."""
    video = ffmpeg(tmp_path / "one.mp4", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30:duration=600",
                   "-c:v", "libx264", "-preset", "ultrafast", "-g", "100000", "-x264-params", "scenecut=0")  # fmt: skip
    times, frames = _sample(video)
    assert times == [0.0] and frames == 1


def test_all_keyframe_mjpeg_costs_a_frame_per_sample(tmp_path: Path) -> None:
    video = ffmpeg(tmp_path / "all.avi", "-f", "lavfi", "-i", "color=c=gray:size=32x32:rate=30:duration=600",
                   "-c:v", "mjpeg")  # fmt: skip
    times, frames = _sample(video)
    assert len(times) == frames == 30 and times[-1] == pytest.approx(600, abs=0.1)


def test_a_frame_over_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    video = ffmpeg(tmp_path / "big.mkv", "-f", "lavfi", "-i", "color=c=gray:s=8192x6400:d=0.04:r=25",
                   "-frames:v", "1", "-c:v", "mjpeg")  # fmt: skip
    with pytest.raises(LimitExceededError, match="8192x6400 video is over"):
        _sample(video)


def test_decoded_frames_are_charged_as_pixels(tmp_path: Path) -> None:
    """Each decoded frame also costs its pixels: a budget of ten 640x480 frames' pixels stops the sampler there."""
    video = ffmpeg(tmp_path / "vga.mp4", "-f", "lavfi", "-i", "color=c=gray:size=640x480:rate=10:duration=30",
                   "-c:v", "libx264", "-preset", "ultrafast", "-g", "10")  # fmt: skip
    limits = _budget.Budget(video_pixels=10 * 640 * 480)
    with _budget.budget(limits), _budget.stage("faces") as spent:
        with pytest.raises(_budget.BudgetExceeded, match=r"needs 3\.4 MP of frames decoded, the faces budget is 3 MP"):
            list(video_frames(video))
        assert spent is not None and spent.used_frames == 11
