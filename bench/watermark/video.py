"""Benchmark: video watermark detection after re-encoding, and what the detector decodes to find it.

Clips made by ffmpeg (synthetic test pattern, a zooming fractal, a flat cellular automaton; 2 s and 20 s, the
default GOP and a 1 s one), marked with :func:`aigclabel.watermark.video.embed_video`, then re-encoded (CRF 23,
CRF 28, scaled to 75 % at CRF 23). For each: whether the payload is read, the detection z, the frames decoded
(counted by the budget module under an unlimited budget) and the CPU seconds of detection. The clips are made
once in ``--workdir`` and reused, so two versions of the package can be compared on the same files::

    PYTHONPATH=OLD_CHECKOUT python bench/watermark/video.py
    PYTHONPATH=. python bench/watermark/video.py
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from aigclabel import _budget
from aigclabel.watermark.payload import DEMO_KEY, Payload
from aigclabel.watermark.video import detect_video, embed_video

SOURCES = {
    "testsrc2": "testsrc2=size=480x360:rate=25",
    "mandelbrot": "mandelbrot=size=480x360:rate=25",
    "life": "life=size=480x360:rate=25:mold=10:ratio=0.1",
}
#: (name, seconds, extra x264 options)
SHAPES = [("2s", 2, []), ("20s-gop250", 20, []), ("20s-gop25", 20, ["-g", "25"])]
ATTACKS = {
    "crf23": ["-c:v", "libx264", "-crf", "23", "-preset", "veryfast"],
    "crf28": ["-c:v", "libx264", "-crf", "28", "-preset", "veryfast"],
    "scale75-crf23": ["-vf", "scale=360:270", "-c:v", "libx264", "-crf", "23", "-preset", "veryfast"],
}
PAYLOAD = Payload.for_produce_id("bench-video", key_id=3)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def clips(workdir: Path) -> list[tuple[str, str, Path]]:
    """(clip, attack, file) for every clip and attack; made once."""
    made: list[tuple[str, str, Path]] = []
    for source, graph in SOURCES.items():
        for shape, seconds, options in SHAPES:
            name = f"{source}-{shape}"
            plain = workdir / f"{name}.mp4"
            if not plain.exists():
                ffmpeg("-f", "lavfi", "-i", graph, "-t", str(seconds), "-c:v", "libx264", *options,
                       "-pix_fmt", "yuv420p", str(plain))  # fmt: skip
            marked = workdir / f"{name}-marked.mp4"
            if not marked.exists():
                embed_video(plain, marked, PAYLOAD)
            made.append((name, "none", marked))
            for attack, arguments in ATTACKS.items():
                out = workdir / f"{name}-{attack}.mp4"
                if not out.exists():
                    ffmpeg("-i", str(marked), *arguments, *options, str(out))
                made.append((name, attack, out))
            made.append((name, "unmarked", plain))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aigclabel-bench-video-mark")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = clips(args.workdir)
    print(f"{'clip':22} {'attack':14} {'read':>4} {'z':>7} {'frames':>6} {'cpu s':>6}")
    read = marked = false = frames_total = 0
    cpu_total = 0.0
    for name, attack, path in rows:
        unlimited = _budget.Budget(seconds=1e9, pixels=10**12, samples=10**12, frames=10**9)
        start = time.process_time()
        with _budget.budget(unlimited), _budget.stage("bench") as spent:
            found = detect_video(path, DEMO_KEY)
        cpu = time.process_time() - start
        assert spent is not None
        ok = found.present and found.mac_ok and found.payload == PAYLOAD
        if attack == "unmarked":
            false += found.present
        else:
            marked += 1
            read += ok
        frames_total += spent.used_frames
        cpu_total += cpu
        print(f"{name:22} {attack:14} {'yes' if ok else 'no':>4} {found.z:7.2f} {spent.used_frames:6d} {cpu:6.2f}")
    print(f"payload read {read}/{marked} marked clips; unmarked clips reported present: {false}")
    print(f"frames decoded {frames_total}, detection CPU {cpu_total:.1f} s")


if __name__ == "__main__":
    main()
