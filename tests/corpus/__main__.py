"""``python -m tests.corpus [--per-format N] [--format NAME ...]``: print the corpus table.

Without ``--per-format`` every file of the corpus is checked (as the README's table was made); the CI
test samples. Download the corpus first with ``make corpus``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.corpus import CORPUS, corpus_files, run, sample, table


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-format", type=int, default=None, help="cap per format (deterministic sample)")
    parser.add_argument("--format", action="append", help="only these container names")
    parser.add_argument("--root", type=Path, default=CORPUS)
    args = parser.parse_args()
    if not args.root.is_dir():
        sys.exit(f"{args.root} is missing: run `make corpus` first")
    files = [f for f in corpus_files(args.root) if not args.format or f[2] in args.format]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aigclabel-corpus-") as scratch:
        outcomes = run(
            sample(files, args.per_format), Path(scratch), lambda o: print(".", end="", flush=True, file=sys.stderr)
        )
    print(f"\n{len(outcomes)} files in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(table(outcomes))


if __name__ == "__main__":
    main()
