"""Audio label throughput: aigclabel vs mutagen, measured in the same run on the same files.

For MP3, WAV, FLAC, Ogg Vorbis and Opus the script makes ``--count`` copies of one ffmpeg-made file
of ``--seconds`` seconds and times, per file:

* **write**: label the file in place. Ours: :func:`aigclabel.write_label` (a journalled in-place edit
  where the format has room, FLAC padding and WAV here; else, as for ffmpeg's unpadded MP3s, stream
  to a temporary file, fsync, atomic rename). ``bench/inplace.py`` compares in-place edits alone. mutagen: load, set the
  tag (``TXXX:AIGC`` / Vorbis ``AIGC``; for WAV, the ``id3 `` chunk, since mutagen cannot write a
  RIFF ``AIGC`` chunk) and ``save()`` in place, with no temporary file and no fsync;
* **inspect**: read the label back (ours: :func:`aigclabel.inspect`, which also validates it;
  mutagen: load the file and get the tag).

mutagen edits in place and never fsyncs, so its write is expected to win. The script reports, it
does not assert.

Usage: ``python bench/audio.py [--count 200] [--seconds 1] [--formats mp3,wav,flac,ogg,opus] [--dir DIR]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mutagen
import mutagen.id3
import mutagen.wave

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, inspect, read_label, registered, write_label

_ENCODE = {
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
    "wav": (".wav", ["-c:a", "pcm_s16le"]),
    "flac": (".flac", ["-c:a", "flac"]),
    "ogg": (".ogg", ["-c:a", "libvorbis"]),
    "opus": (".opus", ["-c:a", "libopus"]),
}


def _make_files(folder: Path, fmt: str, count: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True)
    suffix, options = _ENCODE[fmt]
    seed = folder / f"seed{suffix}"
    source = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *source, "-metadata", "title=Bench", *options, str(seed)], check=True
    )
    files = []
    for index in range(count):
        path = folder / f"a{index:05d}{suffix}"
        shutil.copyfile(seed, path)
        files.append(path)
    seed.unlink()
    return files


def _mutagen_write(value: str) -> Callable[[Path], object]:
    def write(path: Path) -> None:
        audio: Any = mutagen.File(path)
        if isinstance(audio, mutagen.wave.WAVE) or isinstance(audio.tags, mutagen.id3.ID3):
            if audio.tags is None:
                audio.add_tags()
            audio.tags.delall("TXXX:AIGC")
            audio.tags.add(mutagen.id3.TXXX(encoding=0, desc="AIGC", text=[value]))
        else:
            audio.tags["AIGC"] = value
        audio.save()

    return write


def _mutagen_read(path: Path) -> object:
    audio: Any = mutagen.File(path)
    tags = audio.tags
    if isinstance(tags, mutagen.id3.ID3):
        return tags.getall("TXXX:AIGC")
    return tags.get("AIGC")


def _rate(files: list[Path], action: Callable[[Path], object]) -> float:
    start = time.perf_counter()
    for path in files:
        action(path)
    return len(files) / (time.perf_counter() - start)


def _bench_format(fmt: str, root: Path, count: int, seconds: float, label: AIGCLabel) -> list[str]:
    ours = _make_files(root / f"{fmt}-ours", fmt, count, seconds)
    theirs = _make_files(root / f"{fmt}-mutagen", fmt, count, seconds)
    size = ours[0].stat().st_size
    rates = {
        ("write", "aigclabel"): _rate(ours, lambda p: write_label(p, label)),
        ("inspect", "aigclabel"): _rate(ours, inspect),
        ("write", "mutagen"): _rate(theirs, _mutagen_write(label.to_json())),
        ("inspect", "mutagen"): _rate(theirs, _mutagen_read),
    }
    if read_label(ours[-1]) != label:
        raise SystemExit(f"aigclabel does not read back its own {fmt} label")
    if fmt != "wav" and read_label(theirs[-1]) != label:
        raise SystemExit(f"aigclabel does not read mutagen's {fmt} label")
    lines = []
    for op in ("write", "inspect"):
        mine, peer = rates[op, "aigclabel"], rates[op, "mutagen"]
        lines.append(
            f"{fmt:5} {size / 1024:8.0f} KiB {op:8} aigclabel {mine:8.0f} files/s   "
            f"mutagen {peer:8.0f} files/s   ratio {mine / peer:5.2f}x"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per format and operation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200, help="files per format (default 200)")
    parser.add_argument("--seconds", type=float, default=1.0, help="duration of each file (default 1)")
    parser.add_argument("--formats", default=",".join(_ENCODE), help="comma-separated subset of mp3,wav,flac,ogg,opus")
    parser.add_argument("--dir", default=None, help="where to make the files (default: the system temp dir)")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is not installed; run `make setup`", file=sys.stderr)
        return 2
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    registered()  # import every container plugin now, so the first format does not pay for it
    print(f"aigclabel vs mutagen {mutagen.version_string}: {args.count} files of {args.seconds:g} s per format")
    with tempfile.TemporaryDirectory(prefix="aigclabel-bench-", dir=args.dir) as tmp:
        for fmt in args.formats.split(","):
            for line in _bench_format(fmt, Path(tmp), args.count, args.seconds, label):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
