"""``aigclabel gateway``: the labelling reverse proxy, started with one command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer


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
) -> None:
    """Run a reverse proxy in front of an OpenAI-compatible server that labels every answer.

    The upstream's key is read from $AIGCLABEL_UPSTREAM_API_KEY (never from the command line, never
    the client's). Without --api-key the gateway binds to loopback only.
    """
    import uvicorn

    from ..audit import AuditStore
    from ..cli import _fail, _signing_key, _watermark_key
    from ..errors import AIGCLabelError, GatewayConfigError
    from ..explicit.text import DEFAULT_LABEL
    from ..service.settings import collect_keys, is_loopback
    from .app import create_app
    from .settings import GatewaySettings

    try:
        accepted = collect_keys(api_key or (), api_key_file)
        if not accepted and not is_loopback(host):
            raise GatewayConfigError("refusing to serve on a non-loopback address without --api-key or --api-key-file")
        settings = GatewaySettings(
            upstream=upstream,
            producer=producer,
            upstream_api_key=os.environ.get("AIGCLABEL_UPSTREAM_API_KEY") or None,
            api_keys=accepted,
            text_label=label_text or DEFAULT_LABEL,
            text_position=position,
            text_format=text_format,
            text_mark=text_mark,
            image_visible=visible_image_label,
            watermark=watermark,
            watermark_key=_watermark_key(watermark_key_file),
            signing_key=_signing_key(sign_key, demo_key),
            audio_label=audio_label,
            audit=AuditStore(db) if audit else None,
            read_timeout=read_timeout,
        )
    except AIGCLabelError as exc:
        _fail(exc)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
