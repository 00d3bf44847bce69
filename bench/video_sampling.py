"""Video sampling for the likeness scan: frames decoded and CPU for a minute of 30 fps video.

Makes two 60 s, 30 fps, 480x360 H.264 videos with ffmpeg (libx264's default GOP, keyint 250 with scene cuts,
and ``-g 30``, a phone-style 1 s GOP), blank but for scikit-image's astronaut from second 40 to 50, and reports
for each: the frames :func:`aigclabel._decode.video_frames` decodes and its CPU, without a budget (the CLI) and
under the service's default :class:`aigclabel._budget.Budget` (240 frames), then the CPU of
:meth:`FaceEncoder.find_in_file` (decoding plus face detection) under that budget and whether it found her.
Runs against whichever ``aigclabel`` is on ``PYTHONPATH`` (so a before/after compares two checkouts).

Usage: ``python bench/video_sampling.py``
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from aigclabel import _budget
from aigclabel._decode import video_frames
from aigclabel.errors import BudgetExceeded
from aigclabel.likeness.face import FaceEncoder


def _video(folder: Path, gop: int | None) -> Path:
    face = folder / "face.png"
    Image.fromarray(np.asarray(data.astronaut())).resize((300, 300)).save(face)
    out = folder / f"late-{gop or 'default'}.mp4"
    keyint = ["-g", str(gop)] if gop else []
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=0x284050:s=480x360:r=30:d=60",
         "-framerate", "30", "-loop", "1", "-t", "10", "-i", str(face), "-filter_complex",
         "[1]setpts=PTS+40/TB[a];[0][a]overlay=90:30:eof_action=pass", "-c:v", "libx264", "-preset", "veryfast",
         *keyint, "-pix_fmt", "yuv420p", str(out)],
        check=True,
    )  # fmt: skip
    return out


def _run(label: str, work: object, limits: _budget.Budget | None) -> None:
    start = time.process_time()
    used = "-"
    outcome = ""
    try:
        if limits is None:
            with _budget.budget(_budget.Budget(frames=10**9, seconds=600)), _budget.stage("bench") as spent:
                outcome = work()  # type: ignore[operator]
                used = str(spent.used_frames if spent else "-")
        else:
            with _budget.budget(limits), _budget.stage("bench") as spent:
                outcome = work()  # type: ignore[operator]
                used = str(spent.used_frames if spent else "-")
    except BudgetExceeded as exc:
        outcome = f"BudgetExceeded ({exc})"
    print(f"| {label} | {used} | {time.process_time() - start:.2f} | {outcome} |")


def main() -> None:
    encoder = FaceEncoder()
    reference = encoder.find(Image.fromarray(np.asarray(data.astronaut())))[0].vector
    print(f"load average {os.getloadavg()[0]:.2f}; aigclabel from {sys.modules['aigclabel'].__file__}")
    print("| video, run | frames decoded | CPU s | result |\n| --- | ---: | ---: | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for gop in (None, 30):
            video = _video(Path(tmp), gop)
            name = f"GOP {gop or 'default'}"

            def frames(path: Path = video) -> str:
                times = [round(at, 1) for at, _ in video_frames(path)]
                return f"{len(times)} samples, {times[0]}-{times[-1]} s"

            def faces(path: Path = video) -> str:
                faces = encoder.find_in_file(path)
                times = [round(f.at or 0, 1) for f in faces if encoder.matches(f.vector, reference)]
                return f"astronaut at {times} s"

            _run(f"{name}, video_frames, no budget", frames, None)
            _run(f"{name}, video_frames, 240-frame budget", frames, _budget.Budget(seconds=600))
            _run(f"{name}, find_in_file, no budget", faces, None)
            _run(f"{name}, find_in_file, 240-frame budget", faces, _budget.Budget(seconds=600))


if __name__ == "__main__":
    main()
