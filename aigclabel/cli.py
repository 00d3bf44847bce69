"""Command-line interface: ``aigclabel label | inspect | strip | mark | check | verify | batch | serve | ...``.

The commands stay thin: each parses options, calls the library and prints. Platform commands
(``verify``, ``sign``, ``keys``, ``audit``) live in :mod:`aigclabel._platform_cli` so that SQLAlchemy and
Alembic load only when they run.

Exit codes (also listed by ``aigclabel --help``):

====  ==============================================================
0     success; for ``inspect``, every file carries one conforming label
1     a file has no label, several, or a non-conforming one (``check``: not compliant;
      ``watermark detect``: no mark; ``batch``: some files failed)
2     usage error (bad option or argument)
3     unsupported format (or a format that cannot be written losslessly)
4     malformed, truncated or hostile file; nothing was written
5     invalid label value (bad Label, characters outside Annex E j)...)
6     key or signature error
7     audit database error
8     the file system refused: permission denied, disk full, read-only, not a regular file
      (FIFO, device, directory), or a file whose owner or hard links a rewrite would change
9     ``strip`` refused: the label is not provably yours (Measures Art. 10); see ``--force-remove-label``
====  ==============================================================
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run,
# and evaluating annotation strings cost 15 ms of a one-file `inspect`. Names imported only for
# type checking are quoted.

import atexit
import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from . import __version__
from ._cli_params import LightGroup
from ._console import lazy_console, real_console
from .api import Inspection, inspect
from .containers import registered
from .errors import AIGCLabelError, LimitExceededError
from .label import AIGCLabel, LabelValue

if TYPE_CHECKING:
    from .audit import AuditStore
    from .c2pa_manifest import C2PACredentials
    from .signing import SigningKey

EXIT_LABEL_PROBLEM = 1

app = typer.Typer(
    name="aigclabel",
    help=(
        "Label AI-generated content per GB 45438-2025 and verify those labels.\n\n"
        "Exit codes: 0 ok; 1 a file lacks a conforming label (check: not compliant); 2 usage error; "
        "3 unsupported format; 4 malformed file; 5 invalid label value; 6 key or signature error; "
        "7 audit database error; 8 file system refused (permission, disk full, read-only, not a regular file); "
        "9 strip refused (label not provably yours, Measures Art. 10)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    cls=LightGroup,
)
out = lazy_console(soft_wrap=True)
err = lazy_console(stderr=True)


#: ``--repair`` of ``label`` and ``strip``.
RepairOption = Annotated[
    bool,
    typer.Option(
        "--repair",
        help="Rewrite a damaged file that would be refused whole, repaired (a PDF qpdf repairs: drops "
        "earlier revisions and digital signatures; a cut-short MKV/WebM/AVI: remuxed, same packets).",
    ),
]


def _fail(exc: AIGCLabelError) -> NoReturn:
    _say(exc)
    raise typer.Exit(exc.exit_code)


def _say(exc: AIGCLabelError) -> None:
    from rich.text import Text

    err.print(Text.assemble(("error:", "bold red"), f" {exc}"), highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aigclabel {__version__}")
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
    sign_key: Annotated[
        Path | None, typer.Option("--sign-key", help="Sign ReservedCode1 with this private key (`keys generate`).")
    ] = None,
    demo_key: Annotated[bool, typer.Option("--demo-key", help="Sign with the public DEMO key (demos only).")] = False,
    watermark: Annotated[
        bool, typer.Option("--watermark", help="Also embed an invisible watermark (re-encodes the media).")
    ] = False,
    watermark_key_file: Annotated[
        Path | None, typer.Option("--watermark-key-file", help="Secret watermark key file (default: public demo key).")
    ] = None,
    c2pa: Annotated[
        bool, typer.Option("--c2pa", help="Also embed a signed C2PA manifest declaring AI generation (demo chain).")
    ] = False,
    db: Annotated[
        str | None, typer.Option("--db", help="Record the event in this audit database (default: $AIGCLABEL_DB).")
    ] = None,
    repair: RepairOption = False,
) -> None:
    """Write the GB 45438 implicit label into FILE, replacing any label it had.

    With --watermark, --sign-key/--demo-key and --c2pa it adds those layers too, in the order that
    keeps each valid (watermark, signature, label, manifest); with --db or $AIGCLABEL_DB set, the
    event is recorded in the audit log.
    """
    import os

    from .produce import ProduceOptions, label_file

    try:
        made = AIGCLabel.for_producer(producer, produce_id, label=value, reserved_code1=reserved_code1)
        options = ProduceOptions(
            signing_key=_signing_key(sign_key, demo_key),
            watermark_key=_watermark_key(watermark_key_file) if watermark else None,
            c2pa=_c2pa_credentials() if c2pa else None,
            audit=_audit_store(db or os.environ.get("AIGCLABEL_DB")),
            repair=repair,
        )
        result = label_file(file, made, output, options)
    except AIGCLabelError as exc:
        _fail(exc)
    finally:
        if "options" in locals() and options.audit is not None:
            options.audit.close()
    layers = [name for name, on in (("watermark", result.watermark_payload), ("signed", result.signed),
                                     ("c2pa", result.c2pa), ("audited", result.audit_event_id)) if on]  # fmt: skip
    extra = f"  ({', '.join(layers)})" if layers else ""
    typer.echo(f"labelled {result.path}  ProduceID={result.label.produce_id}{extra}")  # plain text: no Rich to load


def _signing_key(path: Path | None, demo: bool) -> "SigningKey | None":
    from .signing import SigningKey, demo_signing_key

    if path is not None:
        return SigningKey.load(path)
    return demo_signing_key() if demo else None


def _c2pa_credentials() -> "C2PACredentials":
    from .c2pa_manifest import C2PACredentials

    return C2PACredentials.demo()


def _audit_store(url: str | None) -> "AuditStore | None":
    if not url:
        return None
    from .audit import AuditStore

    return AuditStore(url)


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
    results: list[Inspection] = []
    failures: list[dict[str, object]] = []
    worst = 0
    key = _watermark_key(watermark_key_file) if watermark else None
    for file in files:
        try:
            result = inspect(file)
            if key is not None:
                from .watermark import detect_file

                try:
                    found = detect_file(file, key=key)
                except LimitExceededError as exc:  # the label was read; only the watermark search is skipped
                    result.extras["watermark"] = {"searched": False, "reason": str(exc)}
                else:
                    result.extras["watermark"] = found.to_dict() if found is not None else None
            if c2pa:
                from .c2pa_manifest import read_manifest

                result.extras["c2pa"] = read_manifest(file).to_dict()
            results.append(result)
        except AIGCLabelError as exc:
            failures.append({"path": str(file), "error": str(exc), "exit_code": exc.exit_code})
            worst = max(worst, exc.exit_code)
    if as_json:
        payload = [r.to_dict() for r in results] + failures
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    else:
        from rich.text import Text

        _print_inspections(results)
        for failure in failures:
            err.print(Text.assemble(("error:", "bold red"), f" {failure['error']}"), highlight=False)
    if worst:
        raise typer.Exit(worst)
    if not all(r.ok for r in results):
        raise typer.Exit(EXIT_LABEL_PROBLEM)


def _print_inspections(results: list[Inspection]) -> None:
    from rich.table import Table
    from rich.text import Text

    # Everything read from a file is shown as plain Text: "[...]" in a label must not become markup.
    for result in results:
        status = (
            "[green]conforms[/]" if result.ok else ("[red]no label[/]" if not result.labels else "[red]problems[/]")
        )
        out.print(Text.assemble((str(result.path), "bold"), f"  {result.description}  ", Text.from_markup(status)))
        for found in result.labels:
            table = Table(title=Text(found.location), show_header=True, title_justify="left")
            table.add_column("field")
            table.add_column("value", overflow="fold")
            if found.label is not None:
                for key, val in found.label.to_dict().items():
                    table.add_row(key, Text(val))
            else:
                table.add_row("(unreadable)", Text(found.raw[:200]))
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


@app.command()
def strip(
    file: Annotated[
        Path, typer.Argument(help="File to strip (in place unless -o is given).", exists=True, dir_okay=False)
    ],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of in place.")] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option("--sign-key", help="Your private key: labels whose ReservedCode1 it signed may be removed."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force-remove-label", help="Remove a label that is not provably yours (needs --reason)."),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why the override is lawful; stored in the audit log.")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Audit database for the strip event (default: $AIGCLABEL_DB, else a local SQLite)."),
    ] = None,
    repair: RepairOption = False,
) -> None:
    """Remove every implicit label from FILE, if it is provably yours (Measures Art. 10).

    A label is yours when its ReservedCode1 verifies under --sign-key. Anything else (another
    producer's label, an unsigned or unreadable one) is refused (exit 9) unless --force-remove-label
    --reason "..." is given. Every strip is recorded in the audit log (kind "strip").
    """
    from .removal import apply_strip, plan_strip

    if force != (reason is not None):
        err.print("error: --force-remove-label and --reason go together", highlight=False, markup=False)
        raise typer.Exit(2)
    store = None
    try:
        plan = plan_strip(file, signing_key=_signing_key(sign_key, False), force_reason=reason)
        from .audit import AuditStore

        store = AuditStore(db)
        result = apply_strip(plan, output, store, repair=repair)
    except AIGCLabelError as exc:
        _fail(exc)
    finally:
        if store is not None:
            store.close()
    summary = f"{result.basis}, {len(result.removed)} removed, audit event {result.audit_event_id}"
    typer.echo(f"stripped {result.path}  ({summary})")


@app.command()
def formats() -> None:
    """List the file formats aigclabel can read and write."""
    from rich.table import Table

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
    """Label, sign and verify the bundled samples (images, audio, video, documents) with the demo key."""
    from rich.table import Table
    from rich.text import Text

    from .demo import run_demo

    rows = run_demo(directory)
    table = Table("file", "format", "label stored in", "ProduceID", "signature", "platform verdict")
    for row in rows:
        if row.error:
            table.add_row(row.name, "-", Text(row.error, "red"), "-", "-", "-")
        else:
            table.add_row(row.name, row.format, Text(row.location), row.produce_id, row.signature, row.classification)
    out.print(table)
    out.print(
        f"{sum(r.ok for r in rows)} of {len(rows)} sample files labelled, signed (public DEMO key), verified and "
        f"logged in {directory}/ (audit log: {directory / 'audit.sqlite'})",
        markup=False,
        highlight=False,
    )
    if not rows or not all(r.ok for r in rows):
        raise typer.Exit(EXIT_LABEL_PROBLEM)


@app.command()
def batch(
    action: Annotated[str, typer.Argument(help="label, inspect or verify.")],
    directory: Annotated[Path, typer.Argument(help="Directory tree to process.", exists=True, file_okay=False)],
    report: Annotated[Path, typer.Option(help="JSONL report; reruns skip files it records as done.")] = Path(
        "aigclabel-batch.jsonl"
    ),
    producer: Annotated[str | None, typer.Option("--producer", "-p", help="ContentProducer, for label.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="For label: write copies here instead.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: CPU count).")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Also write the report as CSV.")] = None,
    dask: Annotated[
        str | None, typer.Option(help="Run on Dask: 'local' for a local cluster, or a scheduler address.")
    ] = None,
) -> None:
    """Process every file under DIRECTORY with several processes (or a Dask cluster), resumably."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from . import batch as batch_module

    if action not in batch_module.ACTIONS:
        err.print(f"[bold red]error:[/] unknown action {action!r}; one of {', '.join(batch_module.ACTIONS)}")
        raise typer.Exit(2)
    job: object = None
    if action == "label":
        if not producer:
            err.print("[bold red]error:[/] label needs --producer")
            raise typer.Exit(2)
        job = batch_module.LabelJob(producer=producer, out_dir=str(out_dir) if out_dir else None)
        try:
            AIGCLabel.for_producer(producer)
        except AIGCLabelError as exc:
            _fail(exc)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=real_console(err),
    ) as bar:
        task = bar.add_task(action, total=None)

        def tick(done: int, total: int, record: dict[str, object]) -> None:
            bar.update(task, completed=done, total=total)

        if dask:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=workers or 2, threads_per_worker=1) if dask == "local" else None  # type: ignore[no-untyped-call]
            with Client(cluster if cluster is not None else dask) as client:  # type: ignore[no-untyped-call]

                def submit(function: object, *args: object) -> object:
                    return client.submit(function, *args, pure=False)

                summary = batch_module.run(action, directory, report, job=job, progress=tick, submit=submit)  # type: ignore[arg-type]
            if cluster is not None:
                cluster.close()
        else:
            summary = batch_module.run(action, directory, report, job=job, workers=workers, progress=tick)
    if csv_path:
        batch_module.write_csv(report, csv_path)
    out.print(
        f"{action}: {summary.ok} ok, {summary.errors} errors, {summary.skipped} skipped (already done) "
        f"of {summary.total} files in {summary.seconds:.1f}s; report {report}",
        highlight=False,
    )
    if summary.errors:
        raise typer.Exit(EXIT_LABEL_PROBLEM)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="Accepted API key, 16+ visible ASCII characters (repeatable)."),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option("--api-key-file", help="File of accepted API keys, one per line (or AIGCLABEL_API_KEY_FILE)."),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="Host header value to serve besides loopback (repeatable; * = any)."),
    ] = None,
    max_upload: Annotated[
        int | None, typer.Option(help="Largest upload in bytes (default: $AIGCLABEL_MAX_UPLOAD or 512 MiB).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    pool: Annotated[
        int | None, typer.Option(help="Analyses at once per worker (default: CPU count); more queue, then 503.")
    ] = None,
    queue: Annotated[
        int | None, typer.Option(help="Requests that may wait for a pool place (default: 4 per place).")
    ] = None,
    request_seconds: Annotated[
        float | None, typer.Option(help="Analysis time budget per request (default 20 s).")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="Audit database URL or SQLite file (default: $AIGCLABEL_DB or a local file).")
    ] = None,
    keys: Annotated[Path | None, typer.Option(help="Key registry file for signature checks.")] = None,
) -> None:
    """Run the HTTP service and web page. Without API keys it only binds to (and answers on) loopback."""
    import os

    from .audit import resolve_url
    from .errors import ServiceConfigError
    from .service.server import run
    from .service.settings import ServiceSettings, collect_keys, is_loopback

    try:
        overrides: dict[str, object] = {"audit_url": resolve_url(db)}
        if api_key or api_key_file:
            overrides["api_keys"] = collect_keys(api_key or (), api_key_file)
        if max_upload is not None:
            overrides["max_upload_bytes"] = max_upload
        if pool is not None:
            overrides["pool"] = pool
        if request_seconds is not None:
            overrides["request_seconds"] = request_seconds
        if queue is not None:
            overrides["queue"] = queue
        if keys is not None:
            overrides["keys_file"] = keys.resolve()
        hosts = {h.strip().lower() for h in allowed_host or () if h.strip()}
        wildcard = host in ("0.0.0.0", "::", "")
        if not is_loopback(host) and not wildcard:
            hosts.add(host.lower())
        settings = ServiceSettings.from_env(**overrides)
        if hosts:
            settings = ServiceSettings.from_env(**overrides, allowed_hosts=settings.allowed_hosts | hosts)
        if not settings.api_keys and not is_loopback(host):
            raise ServiceConfigError(
                "refusing to serve on a non-loopback address without an API key (--api-key or --api-key-file)"
            )
        if wildcard and not settings.allowed_hosts:
            # Reached by any name the machine has; the keys (required above) are the protection here.
            settings = ServiceSettings.from_env(**overrides, allowed_hosts=frozenset({"*"}))
    except AIGCLabelError as exc:
        _fail(exc)
    os.environ.pop("AIGCLABEL_API_KEY_FILE", None)  # the keys now travel in the validated list
    run(host, port, workers, settings.to_env())


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
    from rich.table import Table
    from rich.text import Text

    from .check import check_files, to_html, to_json

    reports = check_files(files, implicit=not explicit_only, ocr=ocr)
    if html_path is not None:
        html_path.write_text(to_html(reports), encoding="utf-8")
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
            verdict = "[green]compliant[/]" if report.compliant else "[red]NOT compliant[/]"
            if report.needs_review:
                verdict += " [bold blue](needs human review)[/]"
            out.print(Text.assemble((str(report.path), "bold"), f" ({report.kind}) ", Text.from_markup(verdict)))
            table = Table("rule", "clause", "status", "detail")
            for rule in report.rules:
                table.add_row(rule.rule, rule.clause, Text(rule.status, colours[rule.status]), Text(rule.detail))
            out.print(table)
    errors = [r.error_code for r in reports if r.error_code is not None]
    if errors:
        raise typer.Exit(max(errors))  # 4: a malformed file, as in the table of exit codes
    if not all(r.compliant for r in reports):
        raise typer.Exit(EXIT_LABEL_PROBLEM)


@app.command()
def mark(
    file: Annotated[Path, typer.Argument(help="Text, image, audio or video file.", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the labelled copy.")],
    text: Annotated[
        str | None, typer.Option("--text", help="Label text (must contain 人工智能/AI and 生成/合成).")
    ] = None,
    position: Annotated[
        str | None,
        typer.Option(
            "--position",
            help="text: start|end|both|inline; image/video: bottom-right|bottom-left|top-right|top-left|bottom|top; "
            "audio: comma list of start,end,middle.",
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(help="Video: seconds of opening label (>= 2).")] = 3.0,
    persistent: Annotated[bool, typer.Option(help="Video: keep the label on every frame.")] = False,
    audio_kind: Annotated[str, typer.Option("--audio-label", help="Audio: cue, speech or both.")] = "both",
    mix: Annotated[bool, typer.Option(help="Audio: mix the label over the content instead of inserting it.")] = False,
    lenient: Annotated[
        bool, typer.Option(help="Do not fail when no container module can carry the implicit label over.")
    ] = False,
) -> None:
    """Add a visible or audible explicit label (GB 45438 §5.1-§5.4) to a copy of FILE."""
    from typing import Any, cast

    from rich.text import Text

    from . import explicit
    from .check import detect_kind
    from .errors import UnsupportedFormatError

    policy: Any = "if-supported" if lenient else "require"
    label_text = text or explicit.DEFAULT_LABEL
    try:
        from .api import vet

        vet(file)  # a file over our parsers' limits never reaches FFmpeg or Pillow
        kind = detect_kind(file)
        if kind == "text":
            explicit.add_text_label(
                file, output, label=label_text, position=cast(Any, position or "start"), implicit=policy
            )
            detail = "text label added"
        elif kind == "image":
            img = explicit.add_image_label(
                file, output, text=label_text, placement=cast(Any, position or "bottom-right"), implicit=policy
            )
            layout = img.layout
            detail = (
                f"glyph height {layout.glyph_height} px ({layout.glyph_ratio:.1%} of the shortest side), "
                f"smallest glyph {layout.smallest_glyph} px ({layout.smallest_glyph_ratio:.1%})"
            )
        elif kind == "audio":
            positions = tuple((position or "start").split(","))
            aud = explicit.add_audio_label(
                file,
                output,
                kind=cast(Any, audio_kind),
                positions=cast(Any, positions),
                mode="mix" if mix else "insert",
                implicit=policy,
            )
            detail = "labels at " + ", ".join(f"{o:.2f} s" for o in aud.offsets)
        elif kind == "video":
            vid = explicit.add_video_label(
                file,
                output,
                text=label_text,
                placement=cast(Any, position or "bottom-right"),
                seconds=seconds,
                persistent=persistent,
                implicit=policy,
            )
            detail = f"label on {vid.labelled_frames} of {vid.frames} frames ({vid.labelled_seconds:.2f} s)"
        else:
            raise UnsupportedFormatError(f"{file}: not a text, image, audio or video file")
    except AIGCLabelError as exc:
        _fail(exc)
    except ValueError as exc:
        err.print(Text.assemble(("error:", "bold red"), f" {exc}"), highlight=False)
        raise typer.Exit(2) from None
    out.print(f"wrote {output}: {detail}", highlight=False, markup=False)


# verify (Measures Art. 6), sign, keys ..., audit ... (exit codes 6: key/signature, 7: audit database)
from ._platform_cli import register as _register_platform_commands  # noqa: E402

_register_platform_commands(app)


watermark_app = typer.Typer(
    help="Invisible watermarks (image, audio, text) carrying a ProduceID digest.", no_args_is_help=True
)
app.add_typer(watermark_app, name="watermark")


def _watermark_key(path: Path | None) -> bytes:
    from .watermark import DEMO_KEY

    if path is None:
        return DEMO_KEY
    key = path.read_bytes()
    if len(key) < 16:
        err.print("[bold red]error:[/] a watermark key must be at least 16 bytes", highlight=False)
        raise typer.Exit(2)
    return key


@watermark_app.command("embed")
def watermark_embed(
    file: Annotated[Path, typer.Argument(help="Image, audio or .txt/.md file.", exists=True, dir_okay=False)],
    produce_id: Annotated[str, typer.Option("--produce-id", help="ProduceID whose digest the mark carries.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of in place.")] = None,
    key_id: Annotated[int, typer.Option("--key-id", min=0, max=65535, help="Key id stored in the mark.")] = 0,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="File whose bytes are the secret key (default: public demo key).")
    ] = None,
) -> None:
    """Embed an invisible watermark (re-encodes the media; label the result afterwards)."""
    from .watermark import embed_file

    try:
        written = embed_file(file, output, produce_id, key_id=key_id, key=_watermark_key(key_file))
    except AIGCLabelError as exc:
        _fail(exc)
    out.print(f"watermarked {written}  key_id={key_id}", highlight=False, markup=False)


@watermark_app.command("detect")
def watermark_detect(
    files: Annotated[list[Path], typer.Argument(help="Files to check.", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one array).")] = False,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="File whose bytes are the secret key (default: public demo key).")
    ] = None,
) -> None:
    """Look for an invisible watermark; exit 1 when any file has none."""
    from rich.text import Text

    from .watermark import detect_file

    key = _watermark_key(key_file)
    rows: list[dict[str, object]] = []
    worst = 0
    for file in files:
        try:
            found = detect_file(file, key=key)
        except AIGCLabelError as exc:
            rows.append({"path": str(file), "error": str(exc)})
            worst = max(worst, exc.exit_code)
            continue
        row: dict[str, object] = {"path": str(file)}
        row.update(found.to_dict() if found else {"media": None, "present": False})
        rows.append(row)
        if not row["present"]:
            worst = max(worst, EXIT_LABEL_PROBLEM)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    else:
        for row in rows:
            if "error" in row:
                err.print(Text.assemble(("error:", "bold red"), f" {row['error']}"), highlight=False)
            elif row["present"]:
                out.print(
                    f"{row['path']}  {row['media']} watermark  score={row['score']}  "
                    f"key_id={row['key_id']}  digest={row['produce_id_digest']}",
                    highlight=False,
                    markup=False,
                )
            else:
                out.print(f"{row['path']}  no watermark", highlight=False, markup=False)
    if worst:
        raise typer.Exit(worst)


from .gateway.cli import gateway as _gateway  # noqa: E402

app.command("gateway")(_gateway)


def main() -> None:
    """Console-script entry point. An operating-system error no command turned into a typed one
    (disk full, permission denied) still ends with a message and exit code 8, not a traceback."""
    from ._io import access_error

    # At exit the interpreter's last garbage collections walk every object the imports made (20 ms of
    # a one-file run); frozen objects are skipped, and the operating system frees the memory anyway.
    atexit.register(gc.freeze)
    try:
        app()
    except OSError as exc:
        if exc.errno is None:
            raise
        error = access_error(exc, exc.filename or "file")
        _say(error)
        sys.exit(error.exit_code)
