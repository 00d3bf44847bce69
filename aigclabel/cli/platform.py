"""Commands a platform runs on content it receives or spreads: ``inspect``, ``verify``, ``check``,
``watermark detect``.

They read labels and traces without changing the file (``verify --apply`` adds the platform's
ContentPropagator fields and the visible prompt, Measures Art. 6), and report per file whether it
carries a conforming label and how it should be classified.
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run,
# and evaluating annotation strings cost 15 ms of a one-file `inspect`. Names imported only for
# type checking are quoted.

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import AIGCLabelError
from ._common import DbOption, auditing, fail, out, say, store, watermark_key
from ._console import load_rich
from ._inspect import inspect_files
from .exit_codes import LABEL_PROBLEM

if TYPE_CHECKING:
    from ..signing import KeyRegistry

app = typer.Typer()
#: ``watermark detect`` (``watermark embed`` is a producer's, in :mod:`.producer`).
watermark_app = typer.Typer()


class YesNo(StrEnum):
    """A yes/no CLI answer."""

    YES = "yes"
    NO = "no"


class PromptChoice(StrEnum):
    """Where ``verify --apply`` puts the visible prompt."""

    SIDECAR = "sidecar"
    BURN = "burn"
    NONE = "none"


@app.command("inspect")
def inspect_command(
    files: Annotated[list[Path], typer.Argument(help="Files to inspect.", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one array) instead of a table.")] = False,
    watermark: Annotated[bool, typer.Option("--watermark", help="Also look for an invisible watermark.")] = False,
    watermark_key_file: Annotated[
        Path | None, typer.Option("--watermark-key-file", help="Secret watermark key file (default: public demo key).")
    ] = None,
    c2pa: Annotated[bool, typer.Option("--c2pa", help="Also read C2PA manifests and their AI assertions.")] = False,
) -> None:
    """Show every implicit label in each FILE and whether it conforms to GB 45438."""
    key = watermark_key(watermark_key_file) if watermark else None
    code = inspect_files(files, as_json=as_json, watermark_key=key, c2pa=c2pa)
    if code:
        raise typer.Exit(code)


def _registry(keys: list[Path] | None, trust_demo: bool, db: str | None, use_db: bool) -> "KeyRegistry":
    from ..signing import KeyRegistry, demo_registry

    registry = KeyRegistry()
    for path in keys or []:
        registry.merge(KeyRegistry.load(path))
    if use_db:
        registry.merge(store(db).key_registry())
    if trust_demo:
        registry.merge(demo_registry())
    return registry


@app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="File to verify.", exists=True, dir_okay=False)],
    declared_ai: Annotated[
        YesNo | None, typer.Option("--declared-ai", help="The uploader's declaration: yes or no.")
    ] = None,
    keys: Annotated[
        list[Path] | None, typer.Option("--keys", help="Key registry file (JSON or TOML); repeatable.")
    ] = None,
    trust_demo_key: Annotated[
        bool, typer.Option("--trust-demo-key", help="Also accept the public DEMO keys (unpinned; for demos).")
    ] = False,
    apply_label: Annotated[
        bool, typer.Option("--apply", help="Write ContentPropagator/PropagateID (and the visible label).")
    ] = False,
    propagator: Annotated[
        str | None, typer.Option("--propagator", help="Your platform's provider code (with --apply).")
    ] = None,
    propagate_id: Annotated[str | None, typer.Option("--propagate-id", help="PropagateID (default: fresh).")] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="Private key file: sign ReservedCode2 (with --apply).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="With --apply: write here.")] = None,
    prompt: Annotated[
        PromptChoice,
        typer.Option(
            "--prompt",
            help="With --apply: where the visible prompt goes: 'sidecar' (a prompt file for your page, the content "
            "untouched), 'burn' (drawn/played into the content, re-encodes it), 'none'.",
        ),
    ] = PromptChoice.SIDECAR,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOption = None,
    audit: Annotated[
        bool | None, typer.Option("--audit/--no-audit", help="Record a verify event (default: if a DB is set).")
    ] = None,
    thorough: Annotated[
        bool,
        typer.Option(
            "--thorough", help="Run every trace detector even when a valid label already confirms (full evidence)."
        ),
    ] = False,
) -> None:
    """Classify FILE as confirmed (1), possible (2), suspected (3) or none, per Measures Article 6."""
    load_rich("rich.console", "rich.table")
    from rich.table import Table
    from rich.text import Text

    from ..signing import SigningKey
    from ..verify import Applied, apply, classify, plan_detectors, registered_detectors

    try:
        registry = _registry(keys, trust_demo_key, db, use_db=bool(db or os.environ.get("AIGCLABEL_DB")))
        declared = None if declared_ai is None else declared_ai is YesNo.YES
        verdict = classify(file, declared, registry, thorough=thorough)
        applied: Applied | None = None
        if apply_label:
            if not propagator:
                raise typer.BadParameter("--apply needs --propagator CODE")
            signer = SigningKey.load(key) if key else None
            applied = apply(
                verdict, propagator, propagate_id=propagate_id, key=signer, output=output, prompt=prompt.value
            )
        if auditing(db, audit):
            from ..audit import verdict_event

            store(db).record(verdict_event(verdict, applied))
    except AIGCLabelError as exc:
        fail(exc)
    if as_json:
        body = verdict.to_dict()
        body["applied"] = applied.to_dict() if applied else None
        sys.stdout.write(json.dumps(body, ensure_ascii=False, indent=2) + "\n")
        return
    value = verdict.label_value
    out.print(
        Text.assemble(
            (str(file), "bold"),
            f"  {verdict.classification.value}" + (f" (Label={value.value}, {value.meaning})" if value else ""),
        ),
        highlight=False,
    )
    table = Table("kind", "role", "where", "detail")
    for item in verdict.evidence:
        table.add_row(Text(item.kind), Text(item.role), Text(item.location), Text(item.detail))
    out.print(table)
    # Only detectors that apply to this format were skipped by the fast path; the others never run on it.
    applicable = {name for name, _ in plan_detectors(registered_detectors(), verdict.format)}
    fast_skipped = [name for name in verdict.skipped_detectors if name in applicable]
    if fast_skipped and not thorough:
        typer.echo(f"  not run: {', '.join(fast_skipped)} (--thorough runs them)")
    for check in verdict.signatures.values():
        origin = "proves origin (pinned key)" if check.proves_origin else "does not prove origin"
        typer.echo(f"  {check.field}: {check.state.value} - {check.reason}; {origin}")
    if applied:
        typer.echo(
            f"applied: {applied.path}  ContentPropagator={applied.label.content_propagator} "
            f"PropagateID={applied.label.propagate_id}  visible prompt {applied.prompt!r}: {applied.visible}"
        )


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="Files to check.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report instead of a table.")] = False,
    html_path: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
    ] = None,
    ocr: Annotated[
        bool,
        typer.Option("--ocr/--no-ocr", help="Read visible labels of any style with OCR (off: aigclabel plates only)."),
    ] = True,
    explicit_only: Annotated[
        bool, typer.Option("--explicit-only", help="Skip the implicit-label rule (checked by `inspect`).")
    ] = False,
) -> None:
    """Compliance report per file and per GB 45438 rule (exit 0 = all compliant, 1 = not, 4 = malformed)."""
    load_rich("rich.console", "rich.table")
    from rich.table import Table
    from rich.text import Text

    from ..check import check_files, to_html, to_json
    from ..i18n import clause_name, resolve_lang, rule_title, status_name
    from ..i18n import text as say_in

    lang = resolve_lang()
    reports = check_files(files, implicit=not explicit_only, ocr=ocr)
    if html_path is not None:
        html_path.write_text(to_html(reports, lang), encoding="utf-8")
    if as_json:
        sys.stdout.write(to_json(reports) + "\n")
    else:
        colours = {
            "pass": "green",
            "fail": "red",
            "error": "red",
            "warning": "yellow",
            "review": "bold blue",
            "skipped": "dim",
        }
        for report in reports:
            verdict = Text(say_in("report.compliant", lang), "green")
            if not report.compliant:
                verdict = Text(say_in("report.not_compliant", lang), "red")
            if report.needs_review:
                verdict += Text(say_in("report.needs_review", lang), "bold blue")
            out.print(Text.assemble((str(report.path), "bold"), f" ({report.kind}) ", verdict))
            table = Table(*(say_in(f"report.{key}", lang) for key in ("rule", "clause", "status", "detail")))
            for rule in report.rules:
                name = rule.rule if lang == "en" else f"{rule.rule}\n{rule_title(rule.rule, rule.title, lang)}"
                status = Text(status_name(rule.status, lang), colours[rule.status])
                table.add_row(name, clause_name(rule.clause, lang), status, Text(rule.detail))
            out.print(table)
    errors = [r.error_code for r in reports if r.error_code is not None]
    if errors:
        raise typer.Exit(max(errors))  # 4: a malformed file, as in the table of exit codes
    if not all(r.compliant for r in reports):
        raise typer.Exit(LABEL_PROBLEM)


@watermark_app.command("detect")
def watermark_detect(
    files: Annotated[list[Path], typer.Argument(help="Files to check.", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one array).")] = False,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="File whose bytes are the secret key (default: public demo key).")
    ] = None,
    search_speed: Annotated[
        bool,
        typer.Option(
            "--search-speed",
            help="Audio: also search the block mark at playback 0.88-1.13x (marks made before the scale layer, "
            "which finds speed changes itself; ~1.5 s of CPU per clip).",
        ),
    ] = False,
) -> None:
    """Look for an invisible watermark; exit 1 when any file has none."""
    from ..watermark import detect_file

    key = watermark_key(key_file)
    rows: list[dict[str, object]] = []
    turned: dict[int, str] = {}  # rows of pictures turned or mirrored since they were marked
    worst = 0
    for file in files:
        try:
            found = detect_file(file, key=key, search_speed=search_speed)
        except AIGCLabelError as exc:
            rows.append({"path": str(file), "error": str(exc)})
            worst = max(worst, exc.exit_code)
            continue
        row: dict[str, object] = {"path": str(file)}
        row.update(found.to_dict() if found else {"media": None, "present": False})
        if found is not None and found.orientation != "upright":
            turned[len(rows)] = found.orientation
        rows.append(row)
        if not row["present"]:
            worst = max(worst, LABEL_PROBLEM)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    else:
        for index, row in enumerate(rows):
            if "error" in row:
                say(row["error"])
            elif row["present"]:
                typer.echo(
                    f"{row['path']}  {row['media']} watermark  score={row['score']}  "
                    f"key_id={row['key_id']}  digest={row['produce_id_digest']}"
                    + (f"  ({turned[index]})" if index in turned else "")
                )
            else:
                typer.echo(f"{row['path']}  no watermark")
    if worst:
        raise typer.Exit(worst)
