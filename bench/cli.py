"""CLI start-up cost on one file: ``aigclabel inspect/label one.jpg`` vs ``exiftool`` on the same file.

Most people run the CLI on one file at a time, so what counts is the whole process: interpreter
start, imports, argument parsing and the work. Each command runs as a fresh process ``--runs``
times, paired with its exiftool counterpart (the order alternates within each pair, so a burst of
load on the shared machine hits both); the figure is the child's user+sys CPU time from
:func:`os.wait4`, which is what ``/usr/bin/time`` prints as ``%U + %S``. The script prints the
medians, their ratio and the median of the per-pair ratios.

The file is the bundled ``sample.jpg``, labelled (demo provider code) so both tools read a label:

* ``inspect`` (Rich table) and ``inspect --json`` vs ``exiftool -j one.jpg``;
* ``label one.jpg -o out.jpg -p CODE`` vs ``exiftool -config tc260.config -XMP-TC260:AIGC=<json>
  -o out.jpg one.jpg`` (the same property; ``out.jpg`` is removed before each run of either);
* ``label two.jpg -p CODE`` in place (a journalled edit, fsynced) vs the same exiftool command with
  ``-overwrite_original`` (which does not fsync), each relabelling its own labelled copy;
* ``inspect --json one.png`` (the bundled ``sample.png``, labelled) vs ``exiftool -j one.png``.

Bytecode is cached as an installed package has it (``PYTHONPYCACHEPREFIX`` in a scratch folder, warmed
by one run of each command). Floors are printed for context: ``python -c pass`` (interpreter and ``site``),
``python -c "import typer"`` (the CLI framework, which every command but a plain ``inspect [--json] FILE...``
loads) and the Rich modules the table needs, imported the way the CLI starts (collector paused, start-up
objects frozen so the exit skips them). ``aigclabel`` runs as ``python -m aigclabel`` from this checkout.

A development environment (``pip install -e``) runs setuptools' editable-install finder at every
interpreter start (from a ``.pth`` file); a user's ``pip install aigclabel`` has none. When the finder is
present, the two ``inspect`` commands are measured again with an interpreter that has the same packages
on its path but not the finder (a scratch virtual environment whose ``.pth`` lists this one's
site-packages as plain paths): the ``(installed)`` lines. It reports, it does not assert: timings vary
with the machine and its load.

Last, it shows where the CPU of ``inspect one.jpg`` goes: the command runs in one process with a clock
read between its stages (the imports done one group at a time in the order the command does them, then
the command itself, marks set by wrapping two of our own functions), median of ``--runs`` runs.

Usage: ``python bench/cli.py [--runs 30]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel, write_label
from tests._tools import write_exiftool_config

ROOT = Path(__file__).resolve().parent.parent
#: Rich's share of an ``inspect`` table, loaded as :mod:`aigclabel.__main__` starts the CLI.
RICH_TABLE = "import gc; gc.disable(); import rich.console, rich.table, rich.text; gc.freeze()"
SAMPLE = ROOT / "aigclabel" / "samples" / "sample.jpg"
#: ``inspect FILE`` run in one process, printing the CPU time of each stage as JSON (see :func:`phases`).
PHASES = """
import gc, json, sys, time
gc.disable()  # as aigclabel.__main__ starts the command line
marks = [("interpreter and site", time.process_time())]
def mark(name):
    marks.append((name, time.process_time()))
import aigclabel.cli as cli
mark("our command-line package")
import aigclabel.cli._inspect as plain
mark("the plain inspect module (no Typer)")
import aigclabel.api as api
mark("the library")
import aigclabel.containers.jpeg, aigclabel.containers._stream, aigclabel.xmp, aigclabel._extras
mark("the JPEG modules (format, XMP, expat)")
read, load_rich = api.inspect, plain.load_rich
def inspect(path):
    mark("recognise the plain form, check the files")
    found = read(path)
    mark("read the file, check the label")
    return found
def rich(*modules):
    load_rich(*modules)
    mark("import Rich (console, table, text)")
api.inspect, plain.load_rich = inspect, rich
sys.argv = ["aigclabel", "inspect", sys.argv[1]]
try:
    cli.main(gc_paused=True)
finally:
    mark("draw the table")
    sys.stderr.write(json.dumps(marks) + "\\n")
"""


def cpu_seconds(argv: Sequence[str], env: dict[str, str], before: Callable[[], None] | None = None) -> float:
    """User+sys CPU time of one run of ``argv`` (its output discarded); a failing run aborts the benchmark."""
    if before is not None:
        before()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert child.stderr is not None
    errors = child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}: {errors.decode(errors='replace')}")
    return usage.ru_utime + usage.ru_stime


def paired(
    ours: Sequence[str], theirs: Sequence[str], runs: int, env: dict[str, str], before: Callable[[], None] | None
) -> tuple[list[float], list[float]]:
    """``runs`` pairs of runs, alternating which of the two goes first."""
    mine: list[float] = []
    peer: list[float] = []
    for i in range(runs):
        if i % 2:
            peer.append(cpu_seconds(theirs, env, before))
            mine.append(cpu_seconds(ours, env, before))
        else:
            mine.append(cpu_seconds(ours, env, before))
            peer.append(cpu_seconds(theirs, env, before))
    return mine, peer


def phases(file: Path, runs: int, env: dict[str, str]) -> None:
    """Print the median CPU time of each stage of ``inspect FILE`` (:data:`PHASES`); the first stage runs
    from the process's start, and what follows the last one is the interpreter's exit."""
    stages: dict[str, list[float]] = {}
    for _ in range(runs):
        child = subprocess.Popen(
            [sys.executable, "-c", PHASES, str(file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        assert child.stderr is not None
        report = child.stderr.read().decode()
        _pid, _status, usage = os.wait4(child.pid, 0)
        before = 0.0
        for name, at in [*json.loads(report.splitlines()[-1]), ("exit", usage.ru_utime + usage.ru_stime)]:
            stages.setdefault(name, []).append(at - before)
            before = at
    print(f"where `inspect one.jpg` spends its CPU (one process, median of {runs} runs):")
    for name, values in stages.items():
        print(f"  {name:50} {statistics.median(values) * 1000:6.1f} ms")


def installed_python(work: Path) -> list[str] | None:
    """An interpreter with this environment's packages on its path but without setuptools' editable-install
    finder (what a user's non-editable install runs), or None when this environment has no such finder."""
    sites = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()]
    if not any(pth.name.startswith("__editable__") for folder in sites for pth in folder.glob("*.pth")):
        return None
    venv = work / "installed"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (lib,) = (venv / "lib").glob("python*/site-packages")
    # Plain paths in a .pth are added to sys.path; the .pth files inside them are not run.
    (lib / "packages.pth").write_text("".join(f"{folder}\n" for folder in sites))
    return [str(venv / "bin" / "python")]


def main() -> None:
    """Run the paired measurements and print one line per command."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="pairs of runs per command (default 30)")
    args = parser.parse_args()
    exiftool = shutil.which("exiftool")
    if exiftool is None:
        raise SystemExit("exiftool is not installed; run `make setup`")
    python = [sys.executable]
    aigclabel = [*python, "-m", "aigclabel"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # An installed package has its bytecode compiled; PYTHONDONTWRITEBYTECODE would make every run
        # compile from source. The children cache bytecode in a scratch tree (warmed by one run each).
        env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        one = work / "one.jpg"
        shutil.copyfile(SAMPLE, one)
        write_label(one, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
        value = AIGCLabel.for_producer(DEMO_PROVIDER_CODE).to_json()
        config = write_exiftool_config(work / "tc260.config")
        out = work / "out.jpg"
        mine, theirs = work / "mine.jpg", work / "theirs.jpg"
        for copy in (mine, theirs):
            shutil.copyfile(one, copy)
        png = work / "one.png"
        shutil.copyfile(SAMPLE.with_suffix(".png"), png)
        write_label(png, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))

        def remove_out() -> None:
            out.unlink(missing_ok=True)

        cases: list[tuple[str, list[str], list[str], Callable[[], None] | None]] = [
            ("inspect one.jpg", [*aigclabel, "inspect", str(one)], [exiftool, "-j", str(one)], None),
            ("inspect --json one.jpg", [*aigclabel, "inspect", "--json", str(one)], [exiftool, "-j", str(one)], None),
            (
                "label one.jpg -o out.jpg",
                [*aigclabel, "label", str(one), "-o", str(out), "-p", DEMO_PROVIDER_CODE],
                [exiftool, "-config", str(config), f"-XMP-TC260:AIGC={value}", "-o", str(out), str(one)],
                remove_out,
            ),
            (
                "label two.jpg (in place)",
                [*aigclabel, "label", str(mine), "-p", DEMO_PROVIDER_CODE],
                [exiftool, "-config", str(config), f"-XMP-TC260:AIGC={value}", "-overwrite_original", str(theirs)],
                None,
            ),
            ("inspect --json one.png", [*aigclabel, "inspect", "--json", str(png)], [exiftool, "-j", str(png)], None),
            ("floor: python -c pass", [*python, "-c", "pass"], [exiftool, "-j", str(one)], None),
            ("floor: python -c 'import typer'", [*python, "-c", "import typer"], [exiftool, "-j", str(one)], None),
            ("floor: Rich table imports", [*python, "-c", RICH_TABLE], [exiftool, "-j", str(one)], None),
        ]
        installed = installed_python(work)
        if installed is not None:
            peer = [exiftool, "-j", str(one)]
            cases += [
                ("inspect one.jpg (installed)", [*installed, "-m", "aigclabel", "inspect", str(one)], peer, None),
                (
                    "inspect --json one.jpg (installed)",
                    [*installed, "-m", "aigclabel", "inspect", "--json", str(one)],
                    peer,
                    None,
                ),
                ("floor: python -c pass (installed)", [*installed, "-c", "pass"], peer, None),
            ]
        load = os.getloadavg()
        print(
            f"user+sys CPU per process, median of {args.runs} paired runs; Python {sys.version.split()[0]}, "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )
        print(f"{'aigclabel command':34} {'aigclabel':>10} {'exiftool':>10} {'ratio':>7} {'pair ratio':>11}")
        for name, ours, theirs, before in cases:
            paired(ours, theirs, 1, env, before)  # warm-up: bytecode cache, page cache
            mine, peer = paired(ours, theirs, args.runs, env, before)
            ratio = statistics.median(mine) / statistics.median(peer)
            per_pair = statistics.median(m / p for m, p in zip(mine, peer, strict=True) if p > 0)
            print(
                f"{name:34} {statistics.median(mine) * 1000:8.1f}ms {statistics.median(peer) * 1000:8.1f}ms "
                f"{ratio:6.2f}x {per_pair:10.2f}x"
            )
        phases(one, args.runs, env)


if __name__ == "__main__":
    main()
