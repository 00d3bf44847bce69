"""``aigclabel inspect``: its work and output, and the plain form of it that runs without Typer.

Typer and the Click it carries cost about 15 ms to import, a quarter of a one-file ``aigclabel inspect``
and more than the rest of the command. Most runs of ``inspect`` name files and at most ``--json``, a
form with nothing to parse: :func:`plain_inspect` recognises exactly that form, with every file one that
Typer's checks would accept (exists, not a directory, readable), and :func:`aigclabel.cli.main` then runs
:func:`inspect_files` without loading Typer. Anything else (another option, ``--help``, ``--``, a word
starting with ``-``, a missing file) goes to Typer, which parses it and words its errors as for every other
command. Both paths run :func:`inspect_files`, so they print the same bytes and exit with the same code
(``tests/test_cli_imports.py`` compares them).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AIGCLabelError, LimitExceededError
from ._console import load_rich, out, say
from .exit_codes import LABEL_PROBLEM, OK

if TYPE_CHECKING:
    from ..api import Inspection

#: The only option the plain form takes.
_JSON = "--json"


def plain_inspect(argv: Sequence[str]) -> tuple[list[Path], bool] | None:
    """The files and whether ``--json`` was given, when ``argv`` (the words after ``aigclabel``) is
    ``inspect`` followed by files and ``--json`` alone and each file exists, is not a directory and can be
    read; otherwise ``None``, for Typer to parse."""
    if len(argv) < 2 or argv[0] != "inspect" or "_AIGCLABEL_COMPLETE" in os.environ:
        return None
    names = [word for word in argv[1:] if word != _JSON]
    if not names or any(not name or name.startswith("-") for name in names):
        return None
    for name in names:
        try:
            if stat.S_ISDIR(os.stat(name).st_mode) or not os.access(name, os.R_OK):
                return None
        except (OSError, ValueError):  # missing, a dangling link, a name the OS refuses
            return None
    return [Path(name) for name in names], len(names) < len(argv) - 1


def inspect_files(
    files: Sequence[Path], *, as_json: bool = False, watermark_key: bytes | None = None, c2pa: bool = False
) -> int:
    """Inspect each file (and look for a watermark with ``watermark_key``, a C2PA manifest with ``c2pa``),
    print a table per file or one JSON array, and return the exit code: the worst error's, else 1 when a
    file does not carry exactly one conforming label, else 0."""
    from ..api import inspect

    results: list[Inspection] = []
    failures: list[dict[str, object]] = []
    worst = 0
    for file in files:
        try:
            result = inspect(file)
            if watermark_key is not None:
                from ..watermark import detect_file

                try:
                    found = detect_file(file, key=watermark_key)
                except LimitExceededError as exc:  # the label was read; only the watermark search is skipped
                    result.extras["watermark"] = {"searched": False, "reason": str(exc)}
                else:
                    result.extras["watermark"] = found.to_dict() if found is not None else None
            if c2pa:
                from ..c2pa_manifest import read_manifest

                result.extras["c2pa"] = read_manifest(file).to_dict()
            results.append(result)
        except AIGCLabelError as exc:
            failures.append({"path": str(file), "error": str(exc), "exit_code": exc.exit_code})
            worst = max(worst, exc.exit_code)
    if as_json:
        payload = [r.to_dict() for r in results] + failures
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    else:
        print_inspections(results)
        for failure in failures:
            say(failure["error"])
    if worst:
        return worst
    return OK if all(r.ok for r in results) else LABEL_PROBLEM


def print_inspections(results: list[Inspection]) -> None:
    """Print each inspection as a status line, a table per label, and its problems (Rich)."""
    load_rich("rich.console", "rich.table")
    from rich.table import Table
    from rich.text import Text

    # Everything read from a file is shown as plain Text: "[...]" in a label must not become markup.
    # Our own words are Text too: a string would go through Rich's markup and emoji-code pass, whose
    # table of emoji names costs 1.5 ms to load and which none of them needs.
    for result in results:
        status = (
            "[green]conforms[/]" if result.ok else ("[red]no label[/]" if not result.labels else "[red]problems[/]")
        )
        status_text = Text.from_markup(status, emoji=False)
        out.print(Text.assemble((str(result.path), "bold"), f"  {result.description}  ", status_text))
        for found in result.labels:
            table = Table(title=Text(found.location), show_header=True, title_justify="left")
            table.add_column(Text("field"))
            table.add_column(Text("value"), overflow="fold")
            if found.label is not None:
                for key, val in found.label.to_dict().items():
                    table.add_row(Text(key), Text(val))
            else:
                table.add_row(Text("(unreadable)"), Text(found.raw[:200]))
            out.print(table)
        for problem in result.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            out.print(Text.assemble("  ", (problem.severity, colour), f" {problem.code}: {problem.message}"))
        if "watermark" in result.extras:
            mark = result.extras["watermark"]
            if mark is None:
                shown = "not an image, audio, video or text file"
            elif not mark.get("searched", True):
                shown = f"not searched ({mark['reason']})"
            elif mark["present"]:
                shown = f"present ({mark['media']}, score {mark['score']}), payload {mark['produce_id_digest']}"
            else:
                shown = "none found"
            out.print(Text(f"  watermark: {shown}"))
        if "c2pa" in result.extras:
            manifest = result.extras["c2pa"]
            if not manifest["present"]:
                out.print(Text("  C2PA: no manifest"))
            else:
                sources = ", ".join(manifest["ai_source_types"]) or "no AI source type"
                out.print(Text(f"  C2PA: {manifest['validation_state']}, {sources}"))
