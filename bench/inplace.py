"""In-place labels: a 10 GB MP4 and audio files, against ``cp`` (what a copy costs) and mutagen's save.

Usage::

    python bench/inplace.py [--size-gb 10] [--minutes 10] [--count 100] [--dir DIR] [--no-cp]

**Video.** A clip of ``--minutes`` minutes (real sample tables: its ``moov`` is a few hundred KB) is
grown to ``--size-gb`` by a hole at the end of its ``mdat`` (a sparse file: no disk space, the sample
offsets stay valid), in two layouts: ``moov`` at the end, and faststart with a ``free`` box after
``moov`` (``ffmpeg -moov_size``). Each is labelled in place (a first label, then relabels) in a child
process timing only the library call, with the bytes it wrote (``wchar`` of ``/proc/self/io``:
journal and patches), whether it wrote a journal (a relabel of the same length changes one sector
when the new ProduceID's bytes share one: then it is one write and one ``fdatasync``), and the
file's size before and after; the relabel is also timed with ``AIGCLABEL_FSYNC=0``, which leaves
the CPU part (the flushes of a durable edit are the rest). The peer is a copy of the same 10 GB:
``cp --sparse=never`` + ``sync`` (the atomic copy path writes every byte too), once; ``--no-cp``
skips it.

**Audio.** ``--count`` copies of an MP3 (ID3v2 tag with 1 KB padding, as taggers leave it), a FLAC
(ffmpeg's 8 KB padding) and a WAV are labelled in place by :func:`aigclabel.api.write_label_how`
(durable: journal and file fsynced) and, on their twins, by mutagen (load, set the tag, ``save()`` in
place, never fsynced); ours is also run with fsync off, mutagen's like for like. Each file gets a
first label, then a relabel of the same length (a fresh ProduceID), and each line says how many of
our writes were journalled. The three run interleaved, file by file; medians of wall and CPU time
per file are printed, and the ratios (mutagen's time / ours: > 1 means we are faster) use CPU time
for the like-for-like pair, which a loaded machine inflates less than wall time.

**AVI.** ``--count`` AVIs without room before ``movi`` get a first label appended after ``idx1``
(no peer edits AVI in place: compare runs of the code before and after). The script reports, it
does not assert.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import mutagen
import mutagen.id3

sys.path.insert(0, str(Path(__file__).parent))
from audio import _make_files, _mutagen_write

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, read_label, registered
from aigclabel import _journal as journal
from aigclabel.api import write_label_how

CHILD = r"""
import json, sys, time
from pathlib import Path
from aigclabel import AIGCLabel, DEMO_PROVIDER_CODE
from aigclabel.api import write_label_how
from aigclabel.containers import registered
registered()
label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
def wchar():
    return int(dict(l.split(": ") for l in Path("/proc/self/io").read_text().splitlines())["wchar"])
from aigclabel import _journal
journals = []
store = _journal._store
_journal._store = lambda *args: (journals.append(1), store(*args))[1]
path = Path(sys.argv[1])
before, written = path.stat().st_size, wchar()
start = time.perf_counter()
how = write_label_how(path, label)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "written": wchar() - written, "how": how, "journal": len(journals),
                  "size_before": before, "size_after": path.stat().st_size}))
"""


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _boxes(path: Path) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the top-level boxes (32-bit sizes: the clips are small)."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind, pos, size))
        pos += size
    return out


def _grow(clip: Path, big: Path, size: int) -> Path:
    """``clip`` with its ``mdat`` grown to make the file ``size`` bytes: ffmpeg's 8-byte ``free`` before
    ``mdat`` becomes the 64-bit size field, the extra bytes are a hole at the end of ``mdat``."""
    data = clip.read_bytes()
    boxes = _boxes(clip)
    index = next(i for i, (kind, _o, _s) in enumerate(boxes) if kind == b"mdat")
    kind, free_at, free_size = boxes[index - 1]
    assert kind == b"free" and free_size == 8, "ffmpeg reserves 8 bytes before mdat"
    _kind, mdat_at, mdat_size = boxes[index]
    after = data[mdat_at + mdat_size :]
    grown = size - len(data) + 8 + mdat_size
    with open(big, "wb") as out:
        out.write(data[:free_at] + struct.pack(">I4sQ", 1, b"mdat", grown) + data[mdat_at + 8 : mdat_at + mdat_size])
        out.seek(free_at + grown)
        out.write(after)
        out.truncate(free_at + grown + len(after))
    return big


def _make_videos(folder: Path, size_gb: float, minutes: float) -> dict[str, Path]:
    seed = folder / "seed.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=10", "-f", "lavfi",
            "-i", "sine=frequency=440:duration=10", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
            str(seed))  # fmt: skip
    end = folder / "clip-end.mp4"
    loops = max(int(minutes * 6) - 1, 0)
    _ffmpeg("-stream_loop", str(loops), "-i", str(seed), "-c", "copy", str(end))
    moov = next(size for kind, _o, size in _boxes(end) if kind == b"moov")
    roomy = folder / "clip-free.mp4"
    _ffmpeg("-i", str(end), "-c", "copy", "-moov_size", str(moov + 4096), str(roomy))
    size = int(size_gb * (1 << 30))
    return {
        "moov at the end": _grow(end, folder / "big-end.mp4", size),
        "faststart + free": _grow(roomy, folder / "big-free.mp4", size),
    }


def _label_in_child(path: Path, fsync: bool = True) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "AIGCLABEL_FSYNC": "1" if fsync else "0"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(done.stderr)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _bench_video(folder: Path, size_gb: float, minutes: float, runs: int, with_cp: bool) -> None:
    videos = _make_videos(folder, size_gb, minutes)
    copy_seconds = None
    if with_cp:
        source = next(iter(videos.values()))
        target = folder / "cp-copy.mp4"
        start = time.perf_counter()
        subprocess.run(["cp", "--sparse=never", str(source), str(target)], check=True)
        subprocess.run(["sync", str(target)], check=True)
        copy_seconds = time.perf_counter() - start
        target.unlink()
        print(f"cp --sparse=never + sync of {size_gb:g} GB: {copy_seconds:.1f} s")
    for name, path in videos.items():
        first = _label_in_child(path)
        again = [_label_in_child(path) for _ in range(runs)]
        seconds = statistics.median(float(str(r["seconds"])) for r in again)
        unsynced = statistics.median(float(str(_label_in_child(path, fsync=False)["seconds"])) for _ in range(runs))
        written = max(int(str(r["written"])) for r in [first, *again])
        journals = sum(int(str(r["journal"])) for r in again)
        ratio = f"; {copy_seconds / seconds:,.0f}x faster than cp+sync" if copy_seconds else ""
        print(
            f"MP4 {size_gb:g} GB, {name}: first label {float(str(first['seconds'])) * 1000:.1f} ms "
            f"({first['how']}, journal {first['journal']}, {first['size_before']} -> {first['size_after']} bytes); "
            f"relabel median {seconds * 1000:.1f} ms ({again[-1]['how']}, journalled {journals} of {len(again)}; "
            f"{unsynced * 1000:.1f} ms without fsync); at most {written:,} bytes written{ratio}",
            flush=True,
        )


def _pad_mp3(files: list[Path]) -> None:
    for path in files:
        tags = mutagen.id3.ID3(path)
        tags.save(path, padding=lambda info: 1024)


#: (wall, CPU) seconds of one call.
Times = tuple[float, float]


def _timed(action: Callable[[], object]) -> Times:
    """(wall, CPU) seconds of one call; CPU time (user + system of this process) is what a loaded
    machine does not inflate, wall time includes waiting for the disk."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def _bench_audio(folder: Path, count: int, seconds: float) -> None:
    for fmt in ("mp3", "flac", "wav"):
        sets = [_make_files(folder / f"{fmt}-{who}", fmt, count, seconds) for who in ("ours", "nofsync", "mutagen")]
        if fmt == "mp3":
            for files in sets:
                _pad_mp3(files)
        size = sets[0][0].stat().st_size
        # A first label, then a relabel of the same length (a fresh ProduceID), of the same files.
        for what in ("label", "relabel"):
            label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
            _bench_audio_pass(f"{fmt:4} {size / 1024:6.0f} KiB {what:7}", sets, label)


@contextlib.contextmanager
def _journals_counted() -> Iterator[list[int]]:
    """A list that gains one item for each undo journal an in-place write stores while the block runs."""
    journals: list[int] = []
    store = journal._store
    journal._store = lambda *args: (journals.append(1), store(*args))[1]  # type: ignore[assignment,func-returns-value]
    try:
        yield journals
    finally:
        journal._store = store  # type: ignore[assignment]


def _label_both_ways(durable_path: Path, unsynced_path: Path, label: AIGCLabel, hows: set[str]) -> tuple[Times, Times]:
    """(wall, CPU) of labelling ``durable_path`` durably and ``unsynced_path`` without fsync."""
    durable = _timed(lambda: hows.add(write_label_how(durable_path, label)))
    journal.DURABLE = False
    try:
        fast = _timed(lambda: hows.add(write_label_how(unsynced_path, label)))
    finally:
        journal.DURABLE = True
    return durable, fast


def _bench_audio_pass(title: str, sets: list[list[Path]], label: AIGCLabel) -> None:
    """Label every file of ``sets`` (ours durable, ours without fsync, mutagen's), interleaved."""
    hows: set[str] = set()
    durable: list[Times] = []
    fast: list[Times] = []
    peer: list[Times] = []
    theirs = _mutagen_write(label.to_json())
    with _journals_counted() as journals:
        for mine, unsynced, other in zip(*sets, strict=True):  # interleaved: load changes hit all three alike
            synced, unsynced_times = _label_both_ways(mine, unsynced, label, hows)
            durable.append(synced)
            fast.append(unsynced_times)
            peer.append(_timed(lambda path=other: theirs(path)))
    assert read_label(sets[0][-1]) == label and read_label(sets[1][-1]) == label
    ms = {name: [statistics.median(t[i] for t in times) * 1000 for i in (0, 1)]
          for name, times in (("durable", durable), ("fast", fast), ("peer", peer))}  # fmt: skip
    print(
        f"{title} ({'/'.join(sorted(hows))}, journalled {len(journals)} of {2 * len(durable)}): aigclabel durable "
        f"{ms['durable'][0]:.2f} ms wall, {ms['durable'][1]:.2f} ms CPU; without fsync {ms['fast'][0]:.2f} ms wall, "
        f"{ms['fast'][1]:.2f} ms CPU; mutagen save {ms['peer'][0]:.2f} ms wall, {ms['peer'][1]:.2f} ms CPU; "
        f"like for like (CPU) {ms['peer'][1] / ms['fast'][1]:.2f}x, durable vs mutagen (wall) "
        f"{ms['peer'][0] / ms['durable'][0]:.2f}x",
        flush=True,
    )


def _bench_avi(folder: Path, count: int) -> None:
    """First labels of ``count`` AVIs with no room before ``movi`` (ffmpeg's bitexact AVI, a label
    longer than its 1 KB of ``JUNK``): appended after ``idx1``. No peer edits AVI in place; run the
    script against the code before and after to compare."""
    folder.mkdir()
    seed = folder / "seed.avi"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=10", "-c:v", "mpeg4",
            "-fflags", "+bitexact", str(seed))  # fmt: skip
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE, reserved_code1="R" * 1000)
    sets = []
    for who in ("durable", "nofsync"):
        sets.append([folder / f"{who}-{index:05d}.avi" for index in range(count)])
        for path in sets[-1]:
            shutil.copyfile(seed, path)
    hows: set[str] = set()
    durable: list[Times] = []
    fast: list[Times] = []
    with _journals_counted() as journals:
        for mine, unsynced in zip(*sets, strict=True):
            synced, unsynced_times = _label_both_ways(mine, unsynced, label, hows)
            durable.append(synced)
            fast.append(unsynced_times)
    assert read_label(sets[0][-1]) == label
    ms = {name: [statistics.median(t[i] for t in times) * 1000 for i in (0, 1)]
          for name, times in (("durable", durable), ("fast", fast))}  # fmt: skip
    print(
        f"avi  {seed.stat().st_size / 1024:6.0f} KiB label appended ({'/'.join(sorted(hows))}, journalled "
        f"{len(journals)} of {2 * count}): aigclabel durable {ms['durable'][0]:.2f} ms wall, {ms['durable'][1]:.2f} "
        f"ms CPU; without fsync {ms['fast'][0]:.2f} ms wall, {ms['fast'][1]:.2f} ms CPU",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Run both parts and print one line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-gb", type=float, default=10.0, help="size of the MP4 files (default 10)")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the clip inside them (default 10)")
    parser.add_argument("--runs", type=int, default=5, help="relabels per MP4 (default 5)")
    parser.add_argument("--count", type=int, default=100, help="audio files per format (default 100)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each audio file (default 30)")
    parser.add_argument("--dir", default=None, help="where to make the files (default: the system temp dir)")
    parser.add_argument("--no-cp", action="store_true", help="skip the cp peer (it writes --size-gb of data)")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is not installed; run `make setup`", file=sys.stderr)
        return 2
    registered()
    print(f"in-place labels (journal fsynced: {journal.DURABLE}); mutagen {mutagen.version_string}")
    with tempfile.TemporaryDirectory(prefix="aigclabel-inplace-", dir=args.dir) as tmp:
        _bench_video(Path(tmp), args.size_gb, args.minutes, args.runs, not args.no_cp)
    with tempfile.TemporaryDirectory(prefix="aigclabel-inplace-", dir=args.dir) as tmp:
        _bench_audio(Path(tmp), args.count, args.seconds)
        _bench_avi(Path(tmp) / "avi", args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
