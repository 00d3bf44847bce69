"""Explicit-label throughput: aigclabel vs the ffmpeg CLI doing the same job, in the same run.

* **image**: ``--count`` 1280x720 JPEGs. Ours: :func:`aigclabel.explicit.add_image_label` (measures the
  glyphs, picks a contrasting plate, keeps EXIF/ICC/XMP and re-applies the implicit label). Peer:
  ``ffmpeg -vf drawtext`` with the same font at the same pixel size and a box, quality ~95, which keeps
  no metadata.
* **video**: one ``--seconds`` long 640x360 25 fps H.264+AAC clip. Ours:
  :func:`aigclabel.explicit.add_video_label` (label on the first 3 s, CRF 18, audio remuxed). Peer:
  ``ffmpeg -vf drawtext=...:enable='lt(t,3)' -c:v libx264 -crf 18 -c:a copy``.
* **audio**: ``--count`` 3 s WAVs. Ours: :func:`aigclabel.explicit.add_audio_label` (cue inserted at the
  start, MP3 out). Peer: ffmpeg concatenating a pre-made cue WAV with the input and encoding MP3.

The script prints times and ratios (ours / peer); it asserts nothing.

Usage: ``python bench/explicit.py [--count 20] [--seconds 10] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from aigclabel.explicit import add_audio_label, add_image_label, add_video_label, find_cjk_font, make_cue, plan_label

FFMPEG = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _run(cmd: list[str]) -> Callable[[], object]:
    return lambda: subprocess.run(cmd, check=True)


def bench_images(folder: Path, count: int) -> tuple[float, float]:
    seed = folder / "seed.jpg"
    subprocess.run(
        [*FFMPEG, "-f", "lavfi", "-i", "testsrc2=s=1280x720", "-frames:v", "1", "-q:v", "2", str(seed)], check=True
    )
    layout = plan_label((1280, 720))
    font = find_cjk_font()
    ours = peer = 0.0
    for i in range(count):
        src = folder / f"img{i}.jpg"
        shutil.copy(seed, src)
        ours += _timed(partial(add_image_label, src, folder / f"ours{i}.jpg"))
        x0, y0, _, _ = layout.plate
        draw = (
            f"drawtext=fontfile={font}:text='人工智能生成':fontsize={layout.font_size}:fontcolor=white:"
            f"box=1:boxcolor=0x181818:boxborderw=8:x={x0}:y={y0}"
        )
        peer += _timed(_run([*FFMPEG, "-i", str(src), "-vf", draw, "-q:v", "2", str(folder / f"peer{i}.jpg")]))
    return ours, peer


def bench_video(folder: Path, seconds: float) -> tuple[float, float]:
    src = folder / "clip.mp4"
    subprocess.run(
        [*FFMPEG, "-f", "lavfi", "-i", f"testsrc2=s=640x360:r=25:d={seconds}", "-f", "lavfi", "-i",
         f"sine=f=440:d={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(src)],
        check=True,
    )  # fmt: skip
    layout = plan_label((640, 360))
    x0, y0, _, _ = layout.plate
    draw = (
        f"drawtext=fontfile={find_cjk_font()}:text='人工智能生成':fontsize={layout.font_size}:fontcolor=white:"
        f"box=1:boxcolor=0x181818:boxborderw=6:x={x0}:y={y0}:enable='lt(t,3)'"
    )
    ours = _timed(lambda: add_video_label(src, folder / "ours.mp4"))
    peer = _timed(
        _run([*FFMPEG, "-i", str(src), "-vf", draw, "-c:v", "libx264", "-crf", "18", "-c:a", "copy",
              str(folder / "peer.mp4")])
    )  # fmt: skip
    return ours, peer


def bench_audio(folder: Path, count: int) -> tuple[float, float]:
    seed = folder / "seed.wav"
    subprocess.run([*FFMPEG, "-f", "lavfi", "-i", "sine=f=440:d=3", "-ar", "44100", str(seed)], check=True)
    cue = folder / "cue.wav"
    with wave.open(str(cue), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes((make_cue(44100) * 32767).astype(np.int16).tobytes())
    ours = peer = 0.0
    for i in range(count):
        target = folder / f"ours{i}.mp3"
        ours += _timed(partial(add_audio_label, seed, target, kind="cue", implicit="if-supported"))
        peer += _timed(
            _run([*FFMPEG, "-i", str(cue), "-i", str(seed), "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1",
                  "-c:a", "libmp3lame", "-b:a", "128k", str(folder / f"peer{i}.mp3")])
        )  # fmt: skip
    return ours, peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="aigclabel-bench-explicit-"))
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "video", "audio"):
        (root / sub).mkdir(exist_ok=True)
    results = {
        f"image x{args.count} (1280x720 JPEG)": bench_images(root / "images", args.count),
        f"video {args.seconds:g} s 640x360": bench_video(root / "video", args.seconds),
        f"audio x{args.count} (3 s WAV -> MP3)": bench_audio(root / "audio", args.count),
    }
    print(f"{'task':36} {'aigclabel s':>12} {'ffmpeg CLI s':>13} {'ratio':>7}")
    for task, (ours, peer) in results.items():
        print(f"{task:36} {ours:12.2f} {peer:13.2f} {ours / peer:7.2f}")
    if args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
