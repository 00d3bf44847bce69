"""Commands an AI service provider runs on what it generates: ``label``, ``mark``, ``sign``, ``strip``,
``watermark embed``.

They write the implicit label (with its signature, watermark, C2PA manifest and audit event), the visible
or audible explicit label, and remove a label that is provably the provider's own (Measures Art. 10).
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run,
# and evaluating annotation strings cost 15 ms of a one-file `inspect`. Names imported only for
# type checking are quoted.

from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, get_args

import typer

from ..errors import AIGCLabelError
from ..label import AIGCLabel, LabelValue
from ._common import (
    DbOption,
    RepairOption,
    auditing,
    fail,
    optional_store,
    pick,
    signing_key,
    store,
    usage_error,
    watermark_key,
)

if TYPE_CHECKING:
    from ..c2pa_manifest import C2PACredentials
    from ..signing import Role

app = typer.Typer()
#: ``watermark embed`` (``watermark detect`` is a platform's, in :mod:`.platform`).
watermark_app = typer.Typer()


class RoleChoice(StrEnum):
    """Which reserved field ``sign`` fills."""

    PRODUCER = "producer"
    PROPAGATOR = "propagator"


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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON: the label, the layers and how the file was written.")
    ] = False,
) -> None:
    """Write the GB 45438 implicit label into FILE, replacing any label it had.

    With --watermark, --sign-key/--demo-key and --c2pa it adds those layers too, in the order that
    keeps each valid (watermark, signature, label, manifest); with --db or $AIGCLABEL_DB set, the
    event is recorded in the audit log. A file with room for the label is edited in place under an
    undo journal ("write": "in-place" in --json), others are rewritten and renamed ("copy").
    """
    import os

    from ..produce import ProduceOptions, label_file

    try:
        made = AIGCLabel.for_producer(producer, produce_id, label=value, reserved_code1=reserved_code1)
        options = ProduceOptions(
            signing_key=signing_key(sign_key, demo_key),
            watermark_key=watermark_key(watermark_key_file) if watermark else None,
            c2pa=_c2pa_credentials() if c2pa else None,
            audit=optional_store(db or os.environ.get("AIGCLABEL_DB")),  # opened last: nothing after it can fail
            repair=repair,
        )
        try:
            result = label_file(file, made, output, options)
        finally:
            if options.audit is not None:
                options.audit.close()
    except AIGCLabelError as exc:
        fail(exc)
    if as_json:
        import json

        body = {
            "path": str(result.path),
            "label": result.label.to_dict(),
            "write": result.write,
            "watermark_payload": result.watermark_payload,
            "signed": result.signed,
            "c2pa": result.c2pa,
            "audit_event_id": result.audit_event_id,
        }
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    layers = [name for name, on in (("watermark", result.watermark_payload), ("signed", result.signed),
                                     ("c2pa", result.c2pa), ("audited", result.audit_event_id)) if on]  # fmt: skip
    extra = f"  ({', '.join(layers)})" if layers else ""
    typer.echo(f"labelled {result.path}  ProduceID={result.label.produce_id}{extra}")  # plain text: no Rich to load


def _c2pa_credentials() -> "C2PACredentials":
    from ..c2pa_manifest import C2PACredentials

    return C2PACredentials.demo()


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
    from ..removal import apply_strip, plan_strip

    if force != (reason is not None):
        usage_error("--force-remove-label and --reason go together")
    log = None
    try:
        plan = plan_strip(file, signing_key=signing_key(sign_key, False), force_reason=reason)
        log = store(db)
        result = apply_strip(plan, output, log, repair=repair)
    except AIGCLabelError as exc:
        fail(exc)
    finally:
        if log is not None:
            log.close()
    summary = f"{result.basis}, {len(result.removed)} removed, audit event {result.audit_event_id}"
    typer.echo(f"stripped {result.path}  ({summary})")


@app.command()
def mark(
    file: Annotated[
        Path, typer.Argument(help="Text, image, audio, video or glTF scene file.", exists=True, dir_okay=False)
    ],
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
    """Add a visible or audible explicit label (GB 45438 §5.1-§5.5) to a copy of FILE."""
    from ..api import vet
    from ._mark import MarkRequest, mark_file

    request = MarkRequest(
        output=output,
        text=text,
        position=position,
        seconds=seconds,
        persistent=persistent,
        audio_kind=audio_kind,
        mix=mix,
        implicit="if-supported" if lenient else "require",
    )
    try:
        vet(file)  # a file over our parsers' limits never reaches FFmpeg or Pillow
        detail = mark_file(file, request)
    except AIGCLabelError as exc:
        fail(exc)
    except ValueError as exc:
        usage_error(str(exc))
    typer.echo(f"wrote {output}: {detail}")


@app.command("voice-turn")
def voice_turn(
    rate: Annotated[int, typer.Option("--rate", help="Sample rate of the PCM on standard input, in Hz.")],
    channels: Annotated[int, typer.Option("--channels", help="Interleaved channels.")] = 1,
    sample_format: Annotated[str, typer.Option("--format", help="Raw PCM sample format: s16le or f32le.")] = "s16le",
    audio_kind: Annotated[str, typer.Option("--audio-label", help="cue (rhythm), speech or both.")] = "cue",
    position: Annotated[str, typer.Option("--position", help="start, end or both (of the turn).")] = "start",
) -> None:
    """Label one voice-assistant turn streamed as raw PCM from standard input to standard output (GB 45438
    §5.3 note 3: in a voice assistant the label goes at the start and/or end of each turn). The turn's bytes
    pass through as they arrive, e.g. ``tts ... | aigclabel voice-turn --rate 24000 | player``."""
    import os
    import sys

    from ..explicit.audio import LabelKind, PcmFormat, PcmTurnLabeller, TurnPosition

    fmt = pick(sample_format, "s16le", get_args(PcmFormat), "--format")
    kind = pick(audio_kind, "cue", get_args(LabelKind), "--audio-label")
    where = pick(position, "start", get_args(TurnPosition), "--position")
    try:
        labeller = PcmTurnLabeller(rate, channels=channels, sample_format=fmt, kind=kind, position=where)
    except AIGCLabelError as exc:
        fail(exc)
    source, sink = sys.stdin.fileno(), sys.stdout.buffer

    def chunks() -> "Iterator[bytes]":
        while data := os.read(source, 1 << 16):  # whatever has arrived, not a full block: no added delay
            yield data

    for piece in labeller.label_stream(chunks()):
        sink.write(piece)
        sink.flush()


@app.command("sign")
def sign_command(
    file: Annotated[Path, typer.Argument(help="File whose label to sign.", exists=True, dir_okay=False)],
    key: Annotated[Path, typer.Option("--key", help="Private key file (aigclabel JSON or Ed25519 PEM).")],
    role: Annotated[RoleChoice, typer.Option("--role", help="producer: ReservedCode1; propagator: ReservedCode2.")] = (
        RoleChoice.PRODUCER
    ),
    producer: Annotated[
        str | None, typer.Option("--producer", "-p", help="Create a producer label with this code if none exists.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of in place.")] = None,
    db: DbOption = None,
    audit: Annotated[bool | None, typer.Option("--audit/--no-audit", help="Record a label event.")] = None,
) -> None:
    """Sign FILE's label (ReservedCode1 or 2) over the label fields and the media payload digest."""
    from ..api import read_label, write_label
    from ..label import AIGCLabel
    from ..signing import SigningKey, payload_digest, sign

    try:
        signer = SigningKey.load(key)
        label = read_label(file)
        if label is None:
            if not producer or role is not RoleChoice.PRODUCER:
                raise typer.BadParameter("FILE has no label: give --producer CODE to create one")
            label = AIGCLabel.for_producer(producer)
        which: Role = "producer" if role is RoleChoice.PRODUCER else "propagator"
        signed = sign(label, payload_digest(file), signer, which)
        written = write_label(file, signed, output)
        if auditing(db, audit):
            from ..audit import EventKind, file_event

            store(db).record(file_event(EventKind.LABEL, written, signed, detail={"signed": role.value}))
    except AIGCLabelError as exc:
        fail(exc)
    typer.echo(f"signed {written} ({role.value}, {signer.alg.value} key {signer.key_id})")


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
    from ..watermark import embed_file

    try:
        written = embed_file(file, output, produce_id, key_id=key_id, key=watermark_key(key_file))
    except AIGCLabelError as exc:
        fail(exc)
    typer.echo(f"watermarked {written}  key_id={key_id}")
