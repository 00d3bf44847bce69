"""CPU per file of durable JPEG labelling, this tree against another one (a release, ``main``), paired.

Each measurement runs in a fresh process that imports the package from one tree, makes ``--count``
JPEGs (untimed), times one operation over them with ``getrusage`` (user + system of the process and
its threads, and of the pool's workers for ``batch-label``) and prints one line. The two trees run
in turn, ``--rounds`` times, so both see the same machine load and the same file-system state, and
the bare durable copy (``write-floor``, see ``bench/images.py``) runs in every round as the yardstick.

* **write-batch**: :func:`aigclabel.write_many` over the files, durable (fsyncs grouped);
* **write**: :func:`aigclabel.write_label` per file, durable (one fsync round each);
* **write-nofsync**: :func:`aigclabel.write_label` per file with ``AIGCLABEL_FSYNC=0``;
* **batch-label**: :func:`aigclabel.batch.run` (what ``aigclabel batch label`` runs), pool of 2;
* **write-floor**: open, pread, create, write, ``copy_file_range``, close; ``syncfs`` + renames +
  directory fsync per 64 files (no parsing, no read-back, no lock).

Usage: ``python bench/write_paired.py --old OLD_TREE [--new TREE] [--count 500] [--rounds 3] [--ops write-batch,...]``
(``git archive main | tar -x -C OLD_TREE`` makes one). Prints the median of each side and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

OPS = ("write-batch", "write-nofsync", "batch-label", "write", "write-floor")
HERE = Path(__file__).resolve().parent

_CHILD = r"""
import json, os, resource, shutil, sys, tempfile
from pathlib import Path
tree, op, count, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path[:0] = [tree, os.path.join(tree, "bench")]
import images
from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, _io, write_label, write_many
label = AIGCLabel.for_producer(DEMO_PROVIDER_CODE)
root = Path(tempfile.mkdtemp(prefix="aigclabel-paired-", dir=where))
try:
    files = images._make_files(root / "f", "jpeg", count, (640, 480))
    write_many([(p, label) for p in images._make_files(root / "warm", "jpeg", 8, (640, 480))])
    if op == "write-floor":
        user, system = images._floor(files, images.xmp_segment(label.to_json()))
        print(json.dumps({"cpu": user + system, "user": user, "system": system}))
        sys.exit(0)
    if op == "batch-label":
        from aigclabel.batch import LabelJob, run
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    if op == "write-batch":
        failed = [r for r in write_many([(p, label) for p in files]) if not r.ok]
        assert not failed, failed[0].error
    elif op == "batch-label":
        summary = run("label", root / "f", root / "report.jsonl", job=LabelJob(DEMO_PROVIDER_CODE), workers=2)
        assert summary.ok == count, summary
    else:
        _io.DURABLE = op == "write"
        for path in files:
            write_label(path, label)
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    user = sum(a.ru_utime - b.ru_utime for a, b in zip(after, before)) / count
    system = sum(a.ru_stime - b.ru_stime for a, b in zip(after, before)) / count
    print(json.dumps({"cpu": user + system, "user": user, "system": system}))
finally:
    shutil.rmtree(root, ignore_errors=True)
"""


def _measure(tree: Path, op: str, count: int, where: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("AIGCLABEL_FSYNC", None)
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree), op, str(count), where],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the paired measurement and print one line per operation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--old", required=True, type=Path, help="the other tree (its package is imported from it)")
    parser.add_argument("--new", type=Path, default=HERE.parent, help="the tree compared (default: this one)")
    parser.add_argument("--count", type=int, default=500, help="files per measurement (default 500)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--ops", default="write-batch,write-nofsync,batch-label", help=f"some of {','.join(OPS)}")
    parser.add_argument("--dir", default=None, help="where to make the files (default: the system temp dir)")
    args = parser.parse_args(argv)
    import tempfile

    where = args.dir or tempfile.gettempdir()
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    ops = [op for op in args.ops.split(",") if op != "write-floor"]
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    print(f"{args.count} JPEGs of 640x480 per measurement in {where}, {args.rounds} rounds; load {os.getloadavg()}")
    for index in range(args.rounds):
        order = ("old", "new") if index % 2 == 0 else ("new", "old")
        for op in ops:
            for side in order:
                samples.setdefault((op, side), []).append(_measure(trees[side], op, args.count, where))
        samples.setdefault(("write-floor", "new"), []).append(_measure(trees["new"], "write-floor", args.count, where))
    print(f"load after: {os.getloadavg()}")

    def median(op: str, side: str, key: str = "cpu") -> float:
        return statistics.median(s[key] for s in samples[(op, side)]) * 1e6

    floor = median("write-floor", "new")
    print(
        f"write-floor   {floor:6.0f} us CPU a file ({median('write-floor', 'new', 'user'):.0f} user + "
        f"{median('write-floor', 'new', 'system'):.0f} system); each round: "
        + ", ".join(f"{s['cpu'] * 1e6:.0f}" for s in samples[("write-floor", "new")])
    )
    for op in ops:
        old, new = median(op, "old"), median(op, "new")
        print(
            f"{op:13} old {old:6.0f} us ({median(op, 'old', 'user'):.0f} user)  new {new:6.0f} us "
            f"({median(op, 'new', 'user'):.0f} user)  new/old {new / old:5.2f}  new/floor {new / floor:5.2f}  "
            f"rounds old {[round(s['cpu'] * 1e6) for s in samples[(op, 'old')]]} "
            f"new {[round(s['cpu'] * 1e6) for s in samples[(op, 'new')]]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
