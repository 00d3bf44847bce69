"""Commands of whoever installs and runs aigclabel as a service or over many files: ``batch``, ``serve``,
``gateway``, ``demo``, ``formats``, ``recover``.

They start long-running processes (the HTTP service, the labelling reverse proxy) or drive the
producer's and platform's operations over a directory tree, and show what this installation supports.
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run,
# and evaluating annotation strings cost 15 ms of a one-file `inspect`.

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from .._extras import needs_extra
from ..errors import AIGCLabelError, GatewayConfigError, ServiceConfigError
from ..label import AIGCLabel
from ._common import err, fail, out, usage_error
from ._console import real_console
from .exit_codes import LABEL_PROBLEM

app = typer.Typer()


@app.command()
def formats() -> None:
    """List the file formats aigclabel can read and write."""
    from rich.table import Table

    from ..containers import registered

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
def recover(
    files: Annotated[list[Path], typer.Argument(help="Files whose in-place write may have been interrupted.")],
) -> None:
    """Roll back in-place writes a crash or a kill interrupted, from their undo journals (or cut the
    bytes an interrupted append left past a WAV's RIFF end).

    Any aigclabel read or write of such a file does this first anyway; this command does it on
    demand (after a crash, before other tools open the files). Prints what was done to each file.
    """
    from ..api import recover as recover_file

    failed: AIGCLabelError | None = None
    for path in files:
        try:
            done = recover_file(path)
        except AIGCLabelError as exc:
            err.print(f"{path}: {exc}", markup=False, highlight=False)
            failed = failed or exc
            continue
        typer.echo(f"{path}: {done or 'nothing to recover'}")
    if failed is not None:
        raise typer.Exit(failed.exit_code)


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put the labelled copies.")] = Path(
        "aigclabel-demo"
    ),
) -> None:
    """Label, sign and verify the bundled samples (images, audio, video, documents) with the demo key."""
    from rich.table import Table
    from rich.text import Text

    from ..demo import run_demo

    rows = run_demo(directory)
    table = Table("file", "format", "label stored in", "ProduceID", "signature", "platform verdict")
    for row in rows:
        if row.error:
            table.add_row(row.name, "-", Text(row.error, "red"), "-", "-", "-")
        else:
            table.add_row(row.name, row.format, Text(row.location), row.produce_id, row.signature, row.classification)
    out.print(table)
    typer.echo(
        f"{sum(r.ok for r in rows)} of {len(rows)} sample files labelled, signed (public DEMO key), verified and "
        f"logged in {directory}/ (audit log: {directory / 'audit.sqlite'})"
    )
    if not rows or not all(r.ok for r in rows):
        raise typer.Exit(LABEL_PROBLEM)


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

    from .. import batch as batch_module

    if action not in batch_module.ACTIONS:
        usage_error(f"unknown action {action!r}; one of {', '.join(batch_module.ACTIONS)}")
    job: object = None
    if action == "label":
        if not producer:
            usage_error("label needs --producer")
        job = batch_module.LabelJob(producer=producer, out_dir=str(out_dir) if out_dir else None)
        try:
            AIGCLabel.for_producer(producer)
        except AIGCLabelError as exc:
            fail(exc)
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
            summary = batch_module.run_on_dask(action, directory, report, dask, job=job, workers=workers, progress=tick)
        else:
            summary = batch_module.run(action, directory, report, job=job, workers=workers, progress=tick)
    if csv_path:
        batch_module.write_csv(report, csv_path)
    typer.echo(
        f"{action}: {summary.ok} ok, {summary.errors} errors, {summary.skipped} skipped (already done) "
        f"of {summary.total} files in {summary.seconds:.1f}s; report {report}"
    )
    if summary.errors:
        raise typer.Exit(LABEL_PROBLEM)


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
    from ..audit import resolve_url
    from ..service.server import run
    from ..service.settings import ServiceSettings, collect_keys, is_loopback

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
        fail(exc)
    os.environ.pop("AIGCLABEL_API_KEY_FILE", None)  # the keys now travel in the validated list
    run(host, port, workers, settings.to_env())


@app.command("gateway")
def gateway(
    upstream: Annotated[str, typer.Option(help="Root URL of the OpenAI-compatible server (vLLM, SGLang, Ollama...).")],
    producer: Annotated[
        str, typer.Option("--producer", "-p", help="ContentProducer: your 27-character provider code.")
    ],
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8081,
    api_key: Annotated[
        list[str] | None,
        typer.Option("--api-key", help="Key clients must send, 16+ visible ASCII characters (repeatable)."),
    ] = None,
    api_key_file: Annotated[
        Path | None, typer.Option("--api-key-file", help="File of keys clients may send, one per line.")
    ] = None,
    position: Annotated[
        Literal["start", "end", "both"], typer.Option(help="Where the text label goes in every answer.")
    ] = "start",
    label_text: Annotated[str | None, typer.Option(help="Text of the explicit label (default: 人工智能生成).")] = None,
    text_format: Annotated[
        Literal["plain", "markdown"], typer.Option("--format", help="How the text label is written.")
    ] = "plain",
    text_mark: Annotated[bool, typer.Option(help="Add the invisible Unicode provenance mark to text.")] = False,
    visible_image_label: Annotated[bool, typer.Option(help="Draw the visible label on every image.")] = False,
    audio_label: Annotated[
        Literal["cue", "speech", "both"], typer.Option(help="Audible label of speech: rhythm cue and/or spoken.")
    ] = "cue",
    watermark: Annotated[bool, typer.Option(help="Watermark every image and speech file.")] = False,
    watermark_key_file: Annotated[
        Path | None, typer.Option(help="Secret key of the watermark and text mark (default: public demo key).")
    ] = None,
    sign_key: Annotated[
        Path | None, typer.Option(help="Sign ReservedCode1 of images and speech with this key.")
    ] = None,
    demo_key: Annotated[bool, typer.Option(help="Sign with the public DEMO key (demos only).")] = False,
    db: Annotated[
        str | None, typer.Option(help="Audit database URL or SQLite file (default: $AIGCLABEL_DB or a local file).")
    ] = None,
    audit: Annotated[bool, typer.Option(help="Record every labelled answer in the audit store.")] = True,
    read_timeout: Annotated[float, typer.Option(help="Seconds to wait for the upstream's next bytes.")] = 600.0,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the port.", min=1)] = 1,
) -> None:
    """Run a reverse proxy in front of an OpenAI-compatible server that labels every answer.

    The upstream's key is read from $AIGCLABEL_UPSTREAM_API_KEY (never from the command line, never
    the client's). Without --api-key the gateway binds to loopback only.
    """
    with needs_extra("service"):
        import uvicorn

    from ..audit import resolve_url
    from ..gateway.app import create_app
    from ..gateway.server import GatewayOptions, GatewayProtocol, run_workers
    from ..service.settings import collect_keys, is_loopback

    try:
        accepted = collect_keys(api_key or (), api_key_file)
        if not accepted and not is_loopback(host):
            raise GatewayConfigError("refusing to serve on a non-loopback address without --api-key or --api-key-file")
        options = GatewayOptions(
            upstream=upstream,
            producer=producer,
            api_keys=accepted,
            text_label=label_text,
            text_position=position,
            text_format=text_format,
            text_mark=text_mark,
            image_visible=visible_image_label,
            audio_label=audio_label,
            watermark=watermark,
            watermark_key_file=str(watermark_key_file.resolve()) if watermark_key_file else None,
            sign_key=str(sign_key.resolve()) if sign_key else None,
            demo_key=demo_key,
            audit_url=resolve_url(db) if audit else None,
            read_timeout=read_timeout,
        )
        settings = options.settings()  # with --workers too: a bad option or key fails here, once
    except AIGCLabelError as exc:
        fail(exc)
    if workers > 1:
        if settings.audit is not None:
            settings.audit.close()  # migrated; each worker opens its own connection
        run_workers(options, host, port, workers)
        return
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", http=GatewayProtocol)
