"""Time and peak memory of every CLI command on the hostile files of the "bounded work" issue.

Each case (``tests/_hostile.py``, built at full size in a scratch folder) goes through every command
in its own process; the table gives wall time, peak RSS (the child's ``ru_maxrss`` from ``wait4``)
and the exit code. A command still running after ``--timeout`` seconds is killed and shown as such.

    python bench/hostile.py [--timeout 60] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests._hostile import FULL_SIZE  # noqa: E402  (names only: the files are built in a child)

# Built in a child so this process stays small: a forked child's ru_maxrss starts at its parent's.
BUILD = (
    "import sys; from tests._hostile import FULL_SIZE as C; open(sys.argv[2], 'wb').write(C[int(sys.argv[1])].build())"
)

COMMANDS: dict[str, list[str]] = {
    "label": ["label", "-p", "001191110000MA00DEMQ0B1DEMO", "-o", "{out}", "{file}"],
    "inspect": ["inspect", "--json", "{file}"],
    "inspect-wm": ["inspect", "--watermark", "{file}"],
    # past the Art. 10 guard, so the container's strip runs; the audit event goes to the temporary folder
    "strip": ["strip", "-o", "{out}", "--force-remove-label", "--reason", "bench", "--db", "{db}", "{file}"],
    "check": ["check", "{file}"],
    "verify": ["verify", "--json", "{file}"],
    "wm-detect": ["watermark", "detect", "{file}"],
}


def run(args: list[str], timeout: float) -> tuple[float, float, int | str, bool]:
    """(seconds, peak MiB, exit code or "killed", traceback on stderr) of one CLI run."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIGCLABEL_FSYNC": "0"}
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen([sys.executable, "-m", "aigclabel", *args], stdout=subprocess.DEVNULL, stderr=err,
                                 env=env, cwd=REPO, start_new_session=True)  # fmt: skip
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(child.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(child.pid, 0)
                child.returncode = -9
                return time.perf_counter() - start, usage.ru_maxrss / 1024, "killed", False
            time.sleep(0.02)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        traceback = b"Traceback (most recent call last)" in err.read()
    return time.perf_counter() - start, usage.ru_maxrss / 1024, child.returncode, traceback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--commands", default=",".join(COMMANDS))
    options = parser.parse_args()
    commands = options.commands.split(",")
    print(f"{'case':22} {'command':11} {'seconds':>8} {'peak MiB':>9}  exit")
    with tempfile.TemporaryDirectory() as folder:
        for index, case in enumerate(FULL_SIZE):
            if options.only and not any(word in case.name for word in options.only):
                continue
            path = Path(folder) / case.name
            subprocess.run([sys.executable, "-c", BUILD, str(index), str(path)], check=True, cwd=REPO)
            out = Path(folder) / f"out-{case.name}"
            for command in commands:
                args = [a.format(file=path, out=out, db=Path(folder) / "audit.sqlite") for a in COMMANDS[command]]
                seconds, peak, code, traceback = run(args, options.timeout)
                out.unlink(missing_ok=True)
                shown = f"{code}{' TRACEBACK' if traceback else ''}"
                print(f"{case.name:22} {command:11} {seconds:8.2f} {peak:9.0f}  {shown}", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
