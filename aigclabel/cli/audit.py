"""Commands of whoever keeps the records a regulator or a verifier relies on: ``audit ...`` (the audit log,
its Measures Art. 9 retention and export records, trace and export reports) and ``keys ...`` (signing keys
and the registry saying which provider code owns which public key).

Producers and platforms both keep these records; the commands here read or write the records only, never
a content file's label.
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run,
# and evaluating annotation strings cost 15 ms of a one-file `inspect`.

import csv
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import AIGCLabelError
from ._common import DbOption, fail, out, store


class AlgChoice(StrEnum):
    """Signature algorithms offered on the command line."""

    ED25519 = "ed25519"
    SM2 = "sm2"


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
    from ..signing import KeyRegistry, SigningKey

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
        fail(exc)
    typer.echo(f"{made.alg.value} key {made.key_id} -> {out_file}\npublic key: {made.public_key.hex}")


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
    from ..signing import KeyRegistry, PublicKey, RegisteredKey

    if registry_file is None and db is None:
        raise typer.BadParameter("give --registry FILE or --db URL")
    try:
        key = PublicKey.from_hex(alg.value, public_key)
        if registry_file is not None:
            registry = KeyRegistry.load(registry_file) if registry_file.exists() else KeyRegistry()
            registry.add(provider, key, pinned=not unpinned, note=note)
            registry.save(registry_file)
        if db is not None:
            store(db).save_key(RegisteredKey(provider, key, not unpinned, note))
    except AIGCLabelError as exc:
        fail(exc)
    typer.echo(f"registered {key.key_id} for {provider}")


@keys_app.command("list")
def keys_list(
    registry_file: Annotated[Path | None, typer.Option("--registry", help="Registry JSON/TOML file.")] = None,
    db: DbOption = None,
) -> None:
    """List registered public keys."""
    from rich.table import Table

    from ..signing import KeyRegistry

    try:
        registry = KeyRegistry.load(registry_file) if registry_file else store(db).key_registry()
    except AIGCLabelError as exc:
        fail(exc)
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
        log = store(db)
    except AIGCLabelError as exc:
        fail(exc)
    typer.echo(f"audit database ready at revision {log.schema_revision()}: {log.engine.url!r}")


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
    from ..api import read_label
    from ..audit import file_event

    try:
        if file is not None:
            probe = file_event("verify", file, read_label(file))
            produce_id = produce_id or probe.produce_id
            content_hash = content_hash or probe.content_sha256
            payload = payload or probe.payload_digest
        found = store(db).trace(
            produce_id=produce_id,
            propagate_id=propagate_id,
            content_sha256=content_hash,
            payload_digest=payload,
            watermark_payload=watermark,
        )
    except AIGCLabelError as exc:
        fail(exc)
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
        events = store(db).events(since=_when(since), until=_when(until), kinds=kind)
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
        fail(exc)


@audit_app.command("retention")
def audit_retention(
    days: Annotated[
        int, typer.Option("--days", help="Keep this many days (at least 183 and six calendar months, Art. 9).")
    ] = 183,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count, do not delete.")] = False,
    db: DbOption = None,
) -> None:
    """Delete events older than the retention period (never below six months)."""
    from ..audit import purge

    try:
        result = purge(store(db), days, dry_run=dry_run)
    except AIGCLabelError as exc:
        fail(exc)
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} {result.deleted} events older than {result.cutoff.isoformat()}")


@audit_app.command("record-export")
def audit_record_export(
    file: Annotated[Path, typer.Argument(help="The file handed out without an explicit label.", exists=True)],
    recipient: Annotated[str, typer.Option("--recipient", help="Who received it (Measures Art. 9).")],
    agreement_version: Annotated[
        str | None, typer.Option("--agreement-version", help="Require the recipient's acceptance of this version.")
    ] = None,
    override_no_label: Annotated[
        str | None,
        typer.Option("--override-no-label", metavar="REASON", help="Record it although FILE has no implicit label."),
    ] = None,
    override_no_agreement: Annotated[
        str | None,
        typer.Option(
            "--override-no-agreement", metavar="REASON", help="Record it although the recipient accepted no agreement."
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Record that FILE was supplied without an explicit label to RECIPIENT (Art. 9; kept >= 6 months).

    Refused (exit 9) when FILE carries no implicit label (Art. 9 waives only the explicit one) or the
    recipient has accepted no user agreement; an override's reason is stored in the event.
    """
    from ..compliance import record_label_free_export

    try:
        event_id = record_label_free_export(
            store(db),
            file,
            recipient,
            agreement_version=agreement_version,
            override_no_label=override_no_label,
            override_no_agreement=override_no_agreement,
        )
    except AIGCLabelError as exc:
        fail(exc)
    typer.echo(f"recorded export event {event_id}")


LangOption = Annotated[
    str | None, typer.Option("--lang", help="zh-CN or en (default: $AIGCLABEL_LANG, then the locale).")
]
ConfigOption = Annotated[Path, typer.Option("--config", help="Provider configuration (TOML or JSON).")]

agreement_app = typer.Typer(
    help="User-agreement labelling clauses (Measures Art. 8), acceptances (Art. 9) and filing materials (Art. 12).",
    no_args_is_help=True,
)


@agreement_app.command("clauses")
def agreement_clauses(config: ConfigOption, lang: LangOption = None) -> None:
    """Print the labelling clauses of the user service agreement (Markdown, with their version)."""
    from ..compliance import clauses, load_provider
    from ..i18n import resolve_lang

    try:
        text = clauses(load_provider(config), resolve_lang(lang)).markdown()
    except AIGCLabelError as exc:
        fail(exc)
    sys.stdout.write(text)


@agreement_app.command("accept")
def agreement_accept(
    user: Annotated[str, typer.Option("--user", help="The user's account id.")],
    version: Annotated[str, typer.Option("--version", help="Agreement version (sha256 of the clauses).")],
    lang: LangOption = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Check the version against this provider's current clauses.")
    ] = None,
    db: DbOption = None,
) -> None:
    """Record that USER accepted agreement VERSION now."""
    from ..compliance import clauses, load_provider
    from ..errors import ConfigurationError
    from ..i18n import LANGS, resolve_lang

    chosen = resolve_lang(lang)
    try:
        if config is not None:
            # Without --lang, the version says which language's clauses were accepted.
            provider = load_provider(config)
            wanted = version.lower().removeprefix("sha256:")
            current = {code: clauses(provider, code).version for code in ([chosen] if lang else LANGS)}
            matching = [code for code, made in current.items() if made == wanted]
            if not matching:
                raise ConfigurationError(
                    f"version {version} is not the current clauses ({', '.join(current.values())})"
                )
            chosen = matching[0]
        record = store(db).record_acceptance(user, version, chosen)
    except AIGCLabelError as exc:
        fail(exc)
    typer.echo(f"acceptance {record.id}: {record.user} accepted {record.version} at {record.ts.isoformat()}")


@agreement_app.command("list")
def agreement_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's acceptances.")] = None,
    db: DbOption = None,
) -> None:
    """Recorded acceptances, newest first (JSON lines)."""
    try:
        found = store(db).acceptance_of(user)
    except AIGCLabelError as exc:
        fail(exc)
    for record in found:
        sys.stdout.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
    if not found:
        raise typer.Exit(1)


@agreement_app.command("filing")
def agreement_filing(
    config: ConfigOption,
    lang: LangOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of Markdown.")] = False,
    no_figures: Annotated[bool, typer.Option("--no-figures", help="Configuration only, no audit figures.")] = False,
    db: DbOption = None,
) -> None:
    """The labelling part of the algorithm-filing materials (Art. 12), with figures from the audit log."""
    from ..compliance import filing_materials, load_provider
    from ..i18n import resolve_lang

    try:
        materials = filing_materials(load_provider(config), None if no_figures else store(db), resolve_lang(lang))
    except AIGCLabelError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(materials.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(materials.markdown())


app = typer.Typer()
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(agreement_app, name="agreement")
