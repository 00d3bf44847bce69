"""Image label throughput: aigclabel vs exiftool, measured in the same run on the same files.

For each image format with a registered container (JPEG, PNG), the script makes ``--count`` small
images in a temporary directory and times, per file:

* **write**: put the TC260:AIGC XMP property in the file, in place (ours: :func:`aigclabel.write_label`,
  atomic with fsync, the library default; exiftool: ``-overwrite_original -XMP-TC260:AIGC=...`` with a
  config file that defines the namespace). exiftool does not fsync, so a second figure,
  **write-nofsync**, labels a fresh set of files with our fsync turned off (what ``AIGCLABEL_FSYNC=0``
  does; the rename stays atomic): that one compares like with like, the first one is what a user
  gets by default;
* **write-batch**: the same durable write for many files at once (:func:`aigclabel.write_many`,
  what ``aigclabel batch label`` does per worker): each file fsynced before its rename and its
  directory after, but in one write-back round per group of 64 files instead of one per file;
* **batch-label**: ``aigclabel batch label`` (:func:`aigclabel.batch.run`: a process pool with one
  worker per core, each writing its chunks of files in durability groups), pool start-up and the
  JSONL report included, over ten folders of ``count/10`` files in turn;
* **inspect**: read it back (ours: :func:`aigclabel.inspect`, which also validates the label;
  exiftool: ``-j -XMP-TC260:AIGC``);
* **write-floor** (JPEG): CPU per file of the least a durable relabel by copy can cost (a bare loop
  of 13 syscalls a file, no parsing, no read-back, no lock), the bound under any copy-based writer.

exiftool runs as one ``-stay_open True -@ -`` process (through PyExifTool) fed one file per command,
so its start-up is paid once and not counted. The two tools run in ten alternating rounds, so a
change in machine load during the run affects both alike. The targets are inspect >= 20x and write >= 10x
exiftool; the script reports, it does not assert (timings vary with the machine).

Usage: ``python bench/images.py [--count 1000] [--size 640x480] [--formats jpeg,png,gif] [--dir DIR]
[--ops inspect,write-batch,...]`` (``--ops`` times only those operations; the files inspect reads are
then labelled untimed).
(``--dir /dev/shm`` takes the disk out of the comparison, fsync included.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, _io, inspect, read_label, registered, write_label, write_many
from aigclabel import label as aigclabel_label
from aigclabel.containers.jpeg import XMP_SIG

EXIFTOOL_CONFIG = """%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        TC260 => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::TC260' } },
    },
);
%Image::ExifTool::UserDefined::TC260 = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-TC260', 2 => 'Image' },
    NAMESPACE => { 'TC260' => 'http://www.tc260.org.cn/ns/AIGC/1.0/' },
    WRITABLE => 'string',
    AIGC => { },
);
1;
"""
#: The operations timed (``--ops`` picks some): the five of :data:`TARGETS` and JPEG's write-floor.
OPS = ("write", "write-batch", "batch-label", "write-nofsync", "inspect", "write-floor")
TARGETS = {"write": 10.0, "write-batch": 10.0, "batch-label": 10.0, "write-nofsync": 10.0, "inspect": 20.0}
_SAVE: dict[str, tuple[str, dict[str, Any]]] = {
    "jpeg": ("jpg", {"quality": 85}),
    "png": ("png", {}),
    "gif": ("gif", {}),
}
_DISTINCT = 16  # distinct encoded images, copied round-robin: the content does not matter to metadata


def _make_files(folder: Path, fmt: str, count: int, size: tuple[int, int]) -> list[Path]:
    folder.mkdir(parents=True)
    suffix, options = _SAVE[fmt]
    rng = np.random.default_rng(0)
    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    blobs = []
    for index in range(_DISTINCT):
        noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
        pixels = np.clip(ramp + noise + index * 7, 0, 255).astype(np.uint8)
        path = folder / f"seed{index}.{suffix}"
        Image.fromarray(pixels).save(path, **options)
        blobs.append(path.read_bytes())
        path.unlink()
    files = []
    for index in range(count):
        path = folder / f"img{index:05d}.{suffix}"
        path.write_bytes(blobs[index % _DISTINCT])
        files.append(path)
    return files


def _cpu_of(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` (exiftool's), or of this process when None."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rates(
    ours: list[Path],
    theirs: list[Path],
    our_action: Callable[[Path], object] | None,
    their_action: Callable[[Path], object],
    *,
    our_batch: Callable[[list[Path]], object] | None = None,
    their_pid: int | None = None,
) -> tuple[float, float]:
    """Files/s for both tools, measured in alternating rounds so both see the same machine load.
    ``our_batch`` (instead of ``our_action``) takes each round's files at once. With ``their_pid``
    (exiftool's process) the CPU seconds each side spent are added to :data:`_CPU` under the key
    of the call, for the CPU ratio (what a loaded machine distorts less than wall time)."""
    rounds = 10
    elapsed = [0.0, 0.0]
    cpu = [0.0, 0.0]
    for index in range(rounds):
        for side, (files, action) in enumerate(((ours, our_action), (theirs, their_action))):
            who = None if side == 0 else their_pid
            start, started = time.perf_counter(), _cpu_of(who) if their_pid else 0.0
            if side == 0 and our_batch is not None:
                our_batch(files[index::rounds])
            else:
                assert action is not None
                for path in files[index::rounds]:
                    action(path)
            elapsed[side] += time.perf_counter() - start
            if their_pid:
                cpu[side] += _cpu_of(who) - started
    if their_pid:
        _CPU.append((len(ours) / cpu[0] if cpu[0] else float("inf"), len(theirs) / cpu[1] if cpu[1] else float("inf")))
    return len(ours) / elapsed[0], len(theirs) / elapsed[1]


#: Files per CPU second (ours, exiftool's) of the last :func:`_rates` given exiftool's pid.
_CPU: list[tuple[float, float]] = []


def _make_folders(base: Path, files: list[Path], rounds: int = 10) -> list[Path]:
    """Copies of ``files`` spread over ``rounds`` folders, the way :func:`_rates` splits files into rounds."""
    folders = []
    for index in range(rounds):
        folder = base / f"r{index}"
        folder.mkdir(parents=True)
        for path in files[index::rounds]:
            shutil.copyfile(path, folder / path.name)
        folders.append(folder)
    return folders


def _folder_rates(
    folders: list[Path], theirs: list[Path], their_action: Callable[[Path], object], report: Path
) -> tuple[float, float]:
    """Files/s of ``aigclabel batch label`` over each folder in turn, alternating with exiftool."""
    from aigclabel.batch import LabelJob, run

    job = LabelJob(producer=DEMO_PROVIDER_CODE)
    elapsed = [0.0, 0.0]
    ours = 0
    for index, folder in enumerate(folders):
        start = time.perf_counter()
        summary = run("label", folder, report, job=job)
        elapsed[0] += time.perf_counter() - start
        ours += summary.ok
        if summary.errors:
            raise SystemExit(f"batch label failed on {summary.errors} files in {folder}")
        start = time.perf_counter()
        for path in theirs[index :: len(folders)]:
            their_action(path)
        elapsed[1] += time.perf_counter() - start
    return ours / elapsed[0], len(theirs) / elapsed[1]


def _floor(files: list[Path], segment: bytes) -> tuple[float, float]:
    """CPU seconds per file (user, system) of the least a durable relabel by copy costs, with no
    parsing, read-back, lock or metadata copy: open, ``pread`` the header, create the temporary
    file, write the first bytes and ``segment``, ``copy_file_range`` the rest, close both; per 64
    files one ``syncfs``, the renames and a directory fsync (13 syscalls a file). JPEG only: the new
    APP1 segment goes after SOI and APP0, where :func:`aigclabel.write_label` puts it."""
    import ctypes
    import resource

    syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    folder = os.open(files[0].parent, os.O_RDONLY | os.O_DIRECTORY)
    before = resource.getrusage(resource.RUSAGE_SELF)
    pending: list[tuple[str, str]] = []
    for index, path in enumerate(map(str, files)):
        src = os.open(path, os.O_RDONLY)
        head = os.pread(src, 8192, 0)
        keep = 4 + int.from_bytes(head[4:6], "big")  # SOI + the APP0 segment
        size = os.fstat(src).st_size
        out = os.open(path + ".floor-tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(out, head[:keep] + segment)
        os.copy_file_range(src, out, size - keep, keep)
        os.close(out)
        os.close(src)
        pending.append((path + ".floor-tmp", path))
        if len(pending) == 64 or index == len(files) - 1:
            syncfs(folder)
            for tmp, target in pending:
                os.replace(tmp, target)
            os.fsync(folder)
            pending = []
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.close(folder)
    return (after.ru_utime - before.ru_utime) / len(files), (after.ru_stime - before.ru_stime) / len(files)


def xmp_segment(value: str) -> bytes:
    """The APP1 XMP segment carrying the label text ``value`` that :func:`_floor` writes after SOI and APP0."""
    from aigclabel.xmp import new_packet

    packet = new_packet(value)
    return b"\xff\xe1" + (len(XMP_SIG) + len(packet) + 2).to_bytes(2, "big") + XMP_SIG + packet


def _write_all(files: list[Path], label: AIGCLabel) -> None:
    failed = [r for r in write_many([(path, label) for path in files]) if not r.ok]
    if failed:
        raise SystemExit(f"write_many failed: {failed[0].error}")


def _bench_format(
    fmt: str, root: Path, count: int, size: tuple[int, int], label: AIGCLabel, ops: frozenset[str] = frozenset(OPS)
) -> list[str]:
    import exiftool  # bench/dev dependency (pyexiftool)

    value = label.to_json()
    ours = _make_files(root / f"{fmt}-ours", fmt, count, size)
    theirs = _make_files(root / f"{fmt}-exiftool", fmt, count, size)
    config = root / "tc260.config"
    config.write_text(EXIFTOOL_CONFIG)
    ours_batch = _make_files(root / f"{fmt}-ours-batch", fmt, count, size)
    theirs_batch = _make_files(root / f"{fmt}-exiftool-batch", fmt, count, size)
    ours_fast = _make_files(root / f"{fmt}-ours-nofsync", fmt, count, size)
    theirs_fast = _make_files(root / f"{fmt}-exiftool-nofsync", fmt, count, size)
    rates: dict[str, tuple[float, float]] = {}
    with exiftool.ExifTool(config_file=str(config), common_args=[]) as tool:

        def their_write(path: Path) -> object:
            return tool.execute("-overwrite_original", f"-XMP-TC260:AIGC={value}", str(path))

        pid = tool._process.pid if os.path.exists("/proc/self/stat") else None  # PyExifTool has no accessor
        if "write" in ops:
            rates["write"] = _rates(ours, theirs, lambda p: write_label(p, label), their_write)
        else:  # untimed: what inspect reads
            _write_all(ours, label)
            for path in theirs:
                their_write(path)
        batch_cpu = None
        if "write-batch" in ops:
            rates["write-batch"] = _rates(
                ours_batch,
                theirs_batch,
                None,
                their_write,
                our_batch=lambda files: _write_all(files, label),
                their_pid=pid,
            )
            batch_cpu = _CPU.pop() if pid else None
        else:
            _write_all(ours_batch, label)
        folders: list[Path] = []
        if "batch-label" in ops:
            theirs_cli = _make_files(root / f"{fmt}-exiftool-cli", fmt, count, size)
            folders = _make_folders(root / f"{fmt}-ours-cli", theirs_cli)
            rates["batch-label"] = _folder_rates(folders, theirs_cli, their_write, root / f"{fmt}-report.jsonl")
        if "write-nofsync" in ops:
            durable = _io.DURABLE
            _io.DURABLE = False  # the process-wide default AIGCLABEL_FSYNC=0 sets
            try:
                rates["write-nofsync"] = _rates(ours_fast, theirs_fast, lambda p: write_label(p, label), their_write)
            finally:
                _io.DURABLE = durable
        if "inspect" in ops:
            # A platform inspects labels other processes wrote. This process keeps the texts of labels it
            # serialised (so a write's read-back check skips the JSON parse); forget them, or inspect would
            # time that memo instead of the parse every upload from elsewhere gets.
            aigclabel_label._SERIALISED.clear()
            rates["inspect"] = _rates(
                ours, theirs, inspect, lambda p: tool.execute("-j", "-XMP-TC260:AIGC", str(p)), their_pid=pid
            )
        # Both sides must have done real work: each reads what the other wrote.
        check = tool.execute("-j", "-XMP-TC260:AIGC", str(ours[-1]))
        if value.replace('"', '\\"') not in check:
            raise SystemExit(f"exiftool does not see our {fmt} label: {check}")
    if read_label(theirs[-1]) != label:
        raise SystemExit(f"aigclabel does not read exiftool's {fmt} label")
    lines = []
    if read_label(ours_batch[0]) != label:
        raise SystemExit(f"write_many did not label {ours_batch[0]}")
    if not all(inspect(path).ok for folder in folders for path in folder.iterdir()):
        raise SystemExit(f"batch label left a {fmt} file unlabelled")
    for op in OPS:
        if op not in rates:
            continue
        mine, peer = rates[op]
        ratio = mine / peer
        verdict = "meets" if ratio >= TARGETS[op] else "MISSES"
        lines.append(
            f"{fmt:5} {op:13} aigclabel {mine:9.0f} files/s   exiftool {peer:7.0f} files/s   "
            f"ratio {ratio:6.1f}x  ({verdict} the {TARGETS[op]:.0f}x target)"
        )
    if fmt == "jpeg" and "write-floor" in ops:
        user, system = _floor(_make_files(root / f"{fmt}-floor", fmt, count, size), xmp_segment(value))
        lines.append(
            f"{fmt:5} write-floor   {(user + system) * 1e6:.0f} us CPU a file ({user * 1e6:.0f} user + "
            f"{system * 1e6:.0f} system): a bare durable copy-and-rename, no parsing, no read-back, no lock "
            "(the least any copy costs)"
        )
    if batch_cpu is not None:
        mine, peer = batch_cpu
        lines.append(
            f"{fmt:5} write-batch (CPU) aigclabel {mine:5.0f} files/CPU s exiftool {peer:7.0f} files/CPU s "
            f"ratio {mine / peer:6.1f}x  (ours: every thread of this process; exiftool never fsyncs)"
        )
    if _CPU:
        mine, peer = _CPU.pop()
        lines.append(
            f"{fmt:5} inspect (CPU) aigclabel {mine:9.0f} files/CPU s exiftool {peer:7.0f} files/CPU s "
            f"ratio {mine / peer:6.1f}x  (user + system time of each process: a busy machine distorts it less)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per format and operation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="files per format (default 1000)")
    parser.add_argument("--size", default="640x480", help="image size WxH (default 640x480)")
    parser.add_argument("--formats", default="jpeg,png", help="comma-separated formats (default jpeg,png)")
    parser.add_argument("--dir", default=None, help="where to make the files (default: the system temp dir)")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated operations (default {','.join(OPS)})")
    args = parser.parse_args(argv)
    ops = frozenset(args.ops.split(","))
    if ops - set(OPS):
        parser.error(f"unknown operations {', '.join(sorted(ops - set(OPS)))}; known: {', '.join(OPS)}")
    width, height = (int(n) for n in args.size.lower().split("x"))
    if shutil.which("exiftool") is None:
        print("exiftool is not installed; run `make setup`", file=sys.stderr)
        return 2
    label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
    available = registered()
    where = args.dir or tempfile.gettempdir()
    print(f"aigclabel vs exiftool (-stay_open batch), {args.count} files of {width}x{height} per format in {where}")
    print(
        "write: ours fsyncs each file (the default); write-batch: write_many, durable, fsyncs grouped; "
        "write-nofsync: ours without fsync; exiftool never fsyncs"
    )
    with tempfile.TemporaryDirectory(prefix="aigclabel-bench-", dir=args.dir) as tmp:
        for fmt in args.formats.split(","):
            if fmt not in _SAVE:
                print(f"{fmt:5} skipped: the benchmark cannot make {fmt} files")
                continue
            if fmt not in available:
                print(f"{fmt:5} skipped: no {fmt} container is registered yet")
                continue
            for line in _bench_format(fmt, Path(tmp), args.count, (width, height), label, ops):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
