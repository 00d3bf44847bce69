"""Benchmark: labelling a large faststart MP4 versus ``cp`` and an ffmpeg ``-c copy`` remux.

Usage::

    python bench/video.py [--size-gb 1.0] [--workdir DIR] [--runs 3]

The test file (``moov`` before ``mdat``, so every chunk offset must be patched) is made once with
ffmpeg from a lavfi clip looped with ``-c copy`` and reused on later runs. Each contender writes a
new file next to it; the median of ``--runs`` timings is reported (page cache warm for all). Our
write fsyncs its output before the atomic rename, so ``cp`` followed by ``sync FILE`` is shown as
the like-for-like peer next to plain ``cp``.
Our peak RSS is measured in a child process (its ``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, re, sys, time
from pathlib import Path
from aigclabel import AIGCLabel, DEMO_PROVIDER_CODE
from aigclabel.api import write_label
from aigclabel.containers import registered
registered()  # import every format plugin first: a one-time cost, not part of labelling a file
label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
start = time.perf_counter()
write_label(Path(sys.argv[1]), label, Path(sys.argv[2]))
elapsed = time.perf_counter() - start
# VmHWM is this process's own peak; ru_maxrss would include the parent that spawned it (Linux keeps it across exec)
peak = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"seconds": elapsed, "maxrss_kb": peak}))
"""


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def make_source(workdir: Path, size_gb: float) -> Path:
    target = workdir / f"bench-{size_gb:g}GB-faststart.mp4"
    if target.exists():
        return target
    clip = workdir / "clip.mp4"
    if not clip.exists():
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-v", "error", "-y",
                "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=10",
                "-f", "lavfi", "-i", "sine=frequency=440:duration=10",
                "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "20M", "-c:a", "aac", "-shortest", str(clip),
            ],
            check=True,
        )  # fmt: skip
    loops = max(1, round(size_gb * (1 << 30) / clip.stat().st_size))
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(clip),
            "-c", "copy", "-movflags", "+faststart", str(target),
        ],
        check=True,
    )  # fmt: skip
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aigclabel-bench")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = make_source(args.workdir, args.size_gb)
    out = args.workdir / "out.mp4"
    label_json = '{"Label":"1","ContentProducer":"001191110000MA00DEMQ0B1DEMO","ProduceID":"x"}'
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    ours: list[float] = []
    rss: list[int] = []
    copies: list[float] = []
    synced: list[float] = []
    remux: list[float] = []
    shutil.copyfile(source, out)  # warm the page cache once for everyone

    def do_cp() -> None:
        copies.append(run(["cp", str(source), str(out)]))

    def do_cp_sync() -> None:
        synced.append(run(["cp", str(source), str(out)]) + run(["sync", str(out)]))

    def do_ours() -> None:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(source), str(out)], check=True, capture_output=True, text=True, env=env
        )
        result = json.loads(done.stdout)
        ours.append(result["seconds"])
        rss.append(result["maxrss_kb"])

    def do_ffmpeg() -> None:
        remux.append(
            run(
                [
                    "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-map", "0", "-c", "copy",
                    "-movflags", "use_metadata_tags", "-metadata", f"AIGC={label_json}", str(out),
                ]
            )
        )  # fmt: skip

    contenders = [do_cp, do_cp_sync, do_ours, do_ffmpeg]
    for index in range(args.runs):
        for contender in contenders[index % 4 :] + contenders[: index % 4]:  # rotate: no one always goes first
            out.unlink(missing_ok=True)
            subprocess.run(["sync"], check=True)  # start each timing with no dirty pages from the last one
            contender()
    out.unlink(missing_ok=True)
    size = source.stat().st_size
    t_ours, t_cp, t_ff = statistics.median(ours), statistics.median(copies), statistics.median(remux)
    t_sync = statistics.median(synced)
    print(f"file: {source.name}  {size / (1 << 30):.2f} GiB  (moov before mdat)  runs: {args.runs}")
    print(f"aigclabel write : {t_ours:7.2f} s  {size / t_ours / (1 << 20):8.0f} MiB/s")
    print(f"cp              : {t_cp:7.2f} s  {size / t_cp / (1 << 20):8.0f} MiB/s")
    print(f"cp + sync FILE  : {t_sync:7.2f} s  {size / t_sync / (1 << 20):8.0f} MiB/s")
    print(f"ffmpeg -c copy  : {t_ff:7.2f} s  {size / t_ff / (1 << 20):8.0f} MiB/s")
    print(f"ratio aigclabel/cp     : {t_ours / t_cp:.2f}x  (target <= 1.5x; we also fsync for atomicity)")
    print(f"ratio aigclabel/cp+sync: {t_ours / t_sync:.2f}x  (same durability as our atomic write)")
    print(f"ratio aigclabel/ffmpeg : {t_ours / t_ff:.2f}x")
    print(
        f"best-of-{args.runs} ratios (less sensitive to a busy machine): vs cp {min(ours) / min(copies):.2f}x, ", end=""
    )
    print(f"vs cp+sync {min(ours) / min(synced):.2f}x, vs ffmpeg {min(ours) / min(remux):.2f}x")
    print(f"aigclabel peak RSS     : {max(rss) / 1024:.1f} MiB  (child process, includes the interpreter)")


if __name__ == "__main__":
    main()
