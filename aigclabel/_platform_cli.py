"""CLI commands for platforms and auditors: ``verify``, ``sign``, ``keys ...`` and ``audit ...``.

Kept out of :mod:`aigclabel.cli` so the heavy imports (SQLAlchemy, Alembic) happen only when these
commands run. Extra exit codes: 6 key or signature error, 7 audit database error (and 8, file system
refused, as everywhere).
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run,
# and evaluating annotation strings cost 15 ms of a one-file `inspect`. Names imported only for
# type checking are quoted.

import csv
import json
import os
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ._console import lazy_console
from .errors import AIGCLabelError

if TYPE_CHECKING:
    from .audit import AuditStore
    from .signing import KeyRegistry, Role

out = lazy_console()
err = lazy_console(stderr=True)


def _fail(exc: AIGCLabelError) -> NoReturn:
    err.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
    raise typer.Exit(exc.exit_code)


class YesNo(StrEnum):
    """A yes/no CLI answer."""

    YES = "yes"
    NO = "no"


class AlgChoice(StrEnum):
    """Signature algorithms offered on the command line."""

    ED25519 = "ed25519"
    SM2 = "sm2"


class PromptChoice(StrEnum):
    """Where ``verify --apply`` puts the visible prompt."""

    SIDECAR = "sidecar"
    BURN = "burn"
    NONE = "none"


class RoleChoice(StrEnum):
    """Which reserved field ``sign`` fills."""

    PRODUCER = "producer"
    PROPAGATOR = "propagator"


DbOption = Annotated[
    str | None, typer.Option("--db", help="Audit database URL or SQLite file (default: $AIGCLABEL_DB).")
]


def _store(db: str | None) -> "AuditStore":
    from .audit import AuditStore

    return AuditStore(db)


def _auditing(db: str | None, audit: bool | None) -> bool:
    """Record events when asked to, or by default when a database is configured."""
    from .audit import DB_ENV

    return audit if audit is not None else bool(db or os.environ.get(DB_ENV))


def _registry(keys: list[Path] | None, trust_demo: bool, db: str | None, use_db: bool) -> "KeyRegistry":
    from .signing import KeyRegistry, demo_registry

    registry = KeyRegistry()
    for path in keys or []:
        registry.merge(KeyRegistry.load(path))
    if use_db:
        registry.merge(_store(db).key_registry())
    if trust_demo:
        registry.merge(demo_registry())
    return registry


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
    from rich.table import Table
    from rich.text import Text

    from .signing import SigningKey
    from .verify import Applied, apply, classify, plan_detectors, registered_detectors

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
        if _auditing(db, audit):
            from .audit import verdict_event

            _store(db).record(verdict_event(verdict, applied))
    except AIGCLabelError as exc:
        _fail(exc)
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
        out.print(f"  not run: {', '.join(fast_skipped)} (--thorough runs them)", highlight=False)
    for check in verdict.signatures.values():
        origin = "proves origin (pinned key)" if check.proves_origin else "does not prove origin"
        out.print(f"  {check.field}: {check.state.value} - {check.reason}; {origin}", highlight=False, markup=False)
    if applied:
        out.print(
            f"applied: {applied.path}  ContentPropagator={applied.label.content_propagator} "
            f"PropagateID={applied.label.propagate_id}  visible prompt {applied.prompt!r}: {applied.visible}",
            highlight=False,
        )


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
    from .api import read_label, write_label
    from .label import AIGCLabel
    from .signing import SigningKey, payload_digest, sign

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
        if _auditing(db, audit):
            from .audit import EventKind, file_event

            _store(db).record(file_event(EventKind.LABEL, written, signed, detail={"signed": role.value}))
    except AIGCLabelError as exc:
        _fail(exc)
    out.print(f"signed {written} ({role.value}, {signer.alg.value} key {signer.key_id})", highlight=False, markup=False)


keys_app = typer.Typer(help="Signing keys and the provider-code -> public-key registry.", no_args_is_help=True)


@keys_app.command("generate")
def keys_generate(
    out_file: Annotated[Path, typer.Option("--out", help="Private key file to create (mode 0600).")],
    alg: Annotated[AlgChoice, typer.Option("--alg", help="ed25519 (default) or sm2 (SM3withSM2).")] = (
        AlgChoice.ED25519
    ),
    provider: Annotated[
        str | None, typer.Option("--provider", help="Also register the public key for this provider code.")
    ] = None,
    registry_file: Annotated[Path | None, typer.Option("--registry", help="Registry JSON file to add it to.")] = None,
) -> None:
    """Create a signing key; optionally add its public key to a registry file."""
    from .signing import KeyRegistry, SigningKey

    try:
        made = SigningKey.generate(alg.value)
        try:
            made.save(out_file)
        except FileExistsError:
            raise typer.BadParameter(f"{out_file} exists; refusing to overwrite a key") from None
        if provider and registry_file:
            registry = KeyRegistry.load(registry_file) if registry_file.exists() else KeyRegistry()
            registry.add(provider, made.public_key)
            registry.save(registry_file)
    except AIGCLabelError as exc:
        _fail(exc)
    out.print(
        f"{made.alg.value} key {made.key_id} -> {out_file}\npublic key: {made.public_key.hex}",
        highlight=False,
        markup=False,
    )


@keys_app.command("add")
def keys_add(
    provider: Annotated[str, typer.Option("--provider", help="Provider code the key belongs to.")],
    public_key: Annotated[str, typer.Option("--public-key", help="Public key in hex.")],
    alg: Annotated[AlgChoice, typer.Option("--alg", help="ed25519 or sm2.")] = AlgChoice.ED25519,
    registry_file: Annotated[Path | None, typer.Option("--registry", help="Registry JSON file.")] = None,
    db: DbOption = None,
    unpinned: Annotated[bool, typer.Option("--unpinned", help="Record the key without vouching for it.")] = False,
    note: Annotated[str, typer.Option("--note", help="Free text kept with the key.")] = "",
) -> None:
    """Register a provider's public key in a registry file or the audit database."""
    from .signing import KeyRegistry, PublicKey, RegisteredKey

    if registry_file is None and db is None:
        raise typer.BadParameter("give --registry FILE or --db URL")
    try:
        key = PublicKey.from_hex(alg.value, public_key)
        if registry_file is not None:
            registry = KeyRegistry.load(registry_file) if registry_file.exists() else KeyRegistry()
            registry.add(provider, key, pinned=not unpinned, note=note)
            registry.save(registry_file)
        if db is not None:
            _store(db).save_key(RegisteredKey(provider, key, not unpinned, note))
    except AIGCLabelError as exc:
        _fail(exc)
    out.print(f"registered {key.key_id} for {provider}", highlight=False, markup=False)


@keys_app.command("list")
def keys_list(
    registry_file: Annotated[Path | None, typer.Option("--registry", help="Registry JSON/TOML file.")] = None,
    db: DbOption = None,
) -> None:
    """List registered public keys."""
    from rich.table import Table

    from .signing import KeyRegistry

    try:
        registry = KeyRegistry.load(registry_file) if registry_file else _store(db).key_registry()
    except AIGCLabelError as exc:
        _fail(exc)
    table = Table("provider", "key id", "alg", "pinned", "note")
    for entry in registry:
        table.add_row(entry.provider, entry.key_id, entry.public_key.alg.value, str(entry.pinned), entry.note)
    out.print(table)


audit_app = typer.Typer(
    help="The audit log: trace, export, retention and Article 9 export records.", no_args_is_help=True
)


@audit_app.command("init")
def audit_init(db: DbOption = None) -> None:
    """Create or migrate the audit database."""
    try:
        store = _store(db)
    except AIGCLabelError as exc:
        _fail(exc)
    out.print(
        f"audit database ready at revision {store.schema_revision()}: {store.engine.url!r}",
        highlight=False,
        markup=False,
    )


@audit_app.command("trace")
def audit_trace(
    file: Annotated[Path | None, typer.Argument(help="Trace this file by its hashes and label IDs.")] = None,
    produce_id: Annotated[str | None, typer.Option("--produce-id")] = None,
    propagate_id: Annotated[str | None, typer.Option("--propagate-id")] = None,
    content_hash: Annotated[str | None, typer.Option("--content-hash", help="Whole-file SHA-256 (hex).")] = None,
    payload: Annotated[str | None, typer.Option("--payload-digest", help="Payload digest (hex).")] = None,
    watermark: Annotated[str | None, typer.Option("--watermark", help="Decoded watermark payload.")] = None,
    db: DbOption = None,
) -> None:
    """Every recorded event for a ProduceID, content hash, payload digest or watermark payload (JSON lines)."""
    from .api import read_label
    from .audit import file_event

    try:
        if file is not None:
            probe = file_event("verify", file, read_label(file))
            produce_id = produce_id or probe.produce_id
            content_hash = content_hash or probe.content_sha256
            payload = payload or probe.payload_digest
        found = _store(db).trace(
            produce_id=produce_id,
            propagate_id=propagate_id,
            content_sha256=content_hash,
            payload_digest=payload,
            watermark_payload=watermark,
        )
    except AIGCLabelError as exc:
        _fail(exc)
    for item in found:
        sys.stdout.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
    if not found:
        raise typer.Exit(1)


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date/time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@audit_app.command("export")
def audit_export(
    since: Annotated[str | None, typer.Option("--since", help="ISO date/time (UTC if no zone).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO date/time, exclusive.")] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="label, verify, export_unlabeled, strip.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    db: DbOption = None,
) -> None:
    """Stream events to stdout for regulators or archiving."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("--format is jsonl or csv")
    try:
        events = _store(db).events(since=_when(since), until=_when(until), kinds=kind)
        writer = None
        for item in events:
            row = item.to_dict()
            if fmt == "jsonl":
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
                continue
            if writer is None:
                writer = csv.DictWriter(sys.stdout, fieldnames=list(row))
                writer.writeheader()
            row["detail"] = json.dumps(row["detail"], ensure_ascii=False)
            writer.writerow(row)
    except AIGCLabelError as exc:
        _fail(exc)


@audit_app.command("retention")
def audit_retention(
    days: Annotated[
        int, typer.Option("--days", help="Keep this many days (at least 183 and six calendar months, Art. 9).")
    ] = 183,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, do not delete.")] = False,
    db: DbOption = None,
) -> None:
    """Delete events older than the retention period (never below six months)."""
    from .audit import purge

    try:
        result = purge(_store(db), days, dry_run=dry_run)
    except AIGCLabelError as exc:
        _fail(exc)
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{verb} {result.deleted} events older than {result.cutoff.isoformat()}", highlight=False, markup=False)


@audit_app.command("record-export")
def audit_record_export(
    file: Annotated[Path, typer.Argument(help="The file handed out without an explicit label.", exists=True)],
    recipient: Annotated[str, typer.Option("--recipient", help="Who received it (Measures Art. 9).")],
    db: DbOption = None,
) -> None:
    """Record that FILE was supplied without an explicit label to RECIPIENT (Art. 9; kept >= 6 months)."""
    from .api import read_label
    from .audit import EventKind, file_event

    try:
        event_id = _store(db).record(
            file_event(EventKind.EXPORT_UNLABELED, file, read_label(file), recipient=recipient)
        )
    except AIGCLabelError as exc:
        _fail(exc)
    out.print(f"recorded export event {event_id}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the main ``aigclabel`` app."""
    app.command("verify")(verify)
    app.command("sign")(sign_command)
    app.add_typer(keys_app, name="keys")
    app.add_typer(audit_app, name="audit")
