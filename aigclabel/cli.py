"""Command-line interface: ``aigclabel label | inspect | strip | formats | demo``.

Exit codes (also listed by ``aigclabel --help``):

====  ==============================================================
0     success; for ``inspect``, every file carries one conforming label
1     ``inspect`` found a file with no label, several, or a non-conforming one
2     usage error (bad option or argument)
3     unsupported format (or a format that cannot be written losslessly)
4     malformed, truncated or hostile file; nothing was written
5     invalid label value (bad Label, characters outside Annex E j)...)
====  ==============================================================
"""

from __future__ import annotations

import json
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .api import Inspection, inspect, strip_label, write_label
from .containers import registered
from .errors import AIGCLabelError
from .label import DEMO_PROVIDER_CODE, AIGCLabel, LabelValue

EXIT_LABEL_PROBLEM = 1

app = typer.Typer(
    name="aigclabel",
    help=(
        "Label AI-generated content per GB 45438-2025 and verify those labels.\n\n"
        "Exit codes: 0 ok; 1 a file lacks a conforming label; 2 usage error; 3 unsupported format; "
        "4 malformed file; 5 invalid label value."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)


def _fail(exc: AIGCLabelError) -> NoReturn:
    err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    raise typer.Exit(exc.exit_code)


def _version(value: bool) -> None:
    if value:
        out.print(f"aigclabel {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Label AI-generated content per GB 45438-2025 and verify those labels."""


@app.command()
def label(
    file: Annotated[
        Path, typer.Argument(help="File to label (in place unless -o is given).", exists=True, dir_okay=False)
    ],
    producer: Annotated[
        str, typer.Option("--producer", "-p", help="ContentProducer: your 27-character provider code.")
    ],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of in place.")] = None,
    produce_id: Annotated[
        str | None, typer.Option("--produce-id", help="ProduceID (default: a fresh unique ID).")
    ] = None,
    value: Annotated[LabelValue, typer.Option("--label", help="1 = AI-generated, 2 = possibly, 3 = suspected.")] = (
        LabelValue.CONFIRMED
    ),
    reserved_code1: Annotated[str, typer.Option("--reserved-code1", help="ReservedCode1 (integrity data).")] = "",
) -> None:
    """Write the GB 45438 implicit label into FILE, replacing any label it had."""
    try:
        made = AIGCLabel.for_producer(producer, produce_id, label=value, reserved_code1=reserved_code1)
        written = write_label(file, made, output)
    except AIGCLabelError as exc:
        _fail(exc)
    out.print(f"labelled {written}  ProduceID={made.produce_id}", highlight=False)


@app.command("inspect")
def inspect_command(
    files: Annotated[list[Path], typer.Argument(help="Files to inspect.", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one array) instead of a table.")] = False,
) -> None:
    """Show every implicit label in each FILE and whether it conforms to GB 45438."""
    results: list[Inspection] = []
    failures: list[dict[str, object]] = []
    worst = 0
    for file in files:
        try:
            results.append(inspect(file))
        except AIGCLabelError as exc:
            failures.append({"path": str(file), "error": str(exc), "exit_code": exc.exit_code})
            worst = max(worst, exc.exit_code)
    if as_json:
        payload = [r.to_dict() for r in results] + failures
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    else:
        _print_inspections(results)
        for failure in failures:
            err.print(f"[bold red]error:[/] {failure['error']}", highlight=False)
    if worst:
        raise typer.Exit(worst)
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_LABEL_PROBLEM)


def _print_inspections(results: list[Inspection]) -> None:
    for result in results:
        status = (
            "[green]conforms[/]" if result.ok else ("[red]no label[/]" if not result.labels else "[red]problems[/]")
        )
        out.print(f"[bold]{result.path}[/]  {result.description}  {status}", highlight=False)
        for found in result.labels:
            table = Table(title=found.location, show_header=True, title_justify="left")
            table.add_column("field")
            table.add_column("value", overflow="fold")
            if found.label is not None:
                for key, val in found.label.to_dict().items():
                    table.add_row(key, val)
            else:
                table.add_row("(unreadable)", found.raw[:200])
            out.print(table)
        for problem in result.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            out.print(f"  [{colour}]{problem.severity}[/] {problem.code}: {problem.message}", highlight=False)


@app.command()
def strip(
    file: Annotated[
        Path, typer.Argument(help="File to strip (in place unless -o is given).", exists=True, dir_okay=False)
    ],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of in place.")] = None,
) -> None:
    """Remove every implicit label from FILE (for re-issuing your own content; see Measures Art. 10)."""
    try:
        written = strip_label(file, output)
    except AIGCLabelError as exc:
        _fail(exc)
    out.print(f"stripped {written}", highlight=False)


@app.command()
def formats() -> None:
    """List the file formats aigclabel can read and write."""
    table = Table("format", "description", "extensions", "label stored in", "write")
    for name, cls in sorted(registered().items()):
        table.add_row(
            name,
            cls.description,
            " ".join(cls.extensions),
            cls.primary_location,
            "yes" if cls.can_write else "read only",
        )
    out.print(table)


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the labelled copies.")] = Path(
        "aigclabel-demo"
    ),
) -> None:
    """Label the bundled sample files with the demo provider code and inspect the results."""
    directory.mkdir(parents=True, exist_ok=True)
    samples = resources.files("aigclabel") / "samples"
    results: list[Inspection] = []
    for sample in sorted(samples.iterdir(), key=lambda s: s.name):
        if not sample.is_file() or sample.name.startswith("."):
            continue
        target = directory / sample.name
        with sample.open("rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        try:
            write_label(target, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))
            results.append(inspect(target))
        except AIGCLabelError as exc:
            err.print(f"[yellow]skipped[/] {sample.name}: {exc}", highlight=False)
    table = Table("file", "format", "Label", "ContentProducer", "ProduceID", "conforms")
    for r in results:
        got = r.label
        table.add_row(
            str(r.path),
            r.format,
            got.label if got else "-",
            got.content_producer if got else "-",
            got.produce_id if got else "-",
            "yes" if r.ok else "no",
        )
    out.print(table)
    out.print(f"{sum(r.ok for r in results)} of {len(results)} sample files labelled and verified in {directory}/")
    if not results or not all(r.ok for r in results):
        raise typer.Exit(EXIT_LABEL_PROBLEM)


def main() -> None:
    """Console-script entry point."""
    app()
