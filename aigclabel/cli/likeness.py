"""Commands of likeness protection (``aigclabel likeness ...``): who may edit whose face or voice.

A provider enrols people (embeddings only, encrypted with ``--template-key`` or ``$AIGCLABEL_LIKENESS_KEY``),
records consent in the signed, hash-chained ledger (``consent grant / revoke / notify / list / check /
verify-chain``) and asks the ``gate`` before an edit; a platform ``scan``s uploads against the protected people
and works through the ``review`` queue; ``evidence make / verify`` writes and checks the signed evidence package
(:mod:`aigclabel.likeness.evidence`). Everything lives in the audit database (``--db``). Ledger entries are
signed with ``--sign-key`` (or the public ``--demo-key``); ``--json`` prints what the library returns.
"""

# No `from __future__ import annotations`: Typer reads the signature of every command on each run.

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import AIGCLabelError
from ._common import DbOption, fail, optional_store, out, signing_key, store, usage_error
from .exit_codes import LABEL_PROBLEM

if TYPE_CHECKING:
    from ..likeness.ledger import ConsentLedger
    from ..likeness.registry import LikenessRegistry

likeness_app = typer.Typer(
    help="Likeness protection: enrol faces and voices, record consent, gate edits, scan uploads, review.",
    no_args_is_help=True,
)
consent_app = typer.Typer(
    help="The consent ledger: grant, revoke, notify, list, check, verify-chain.", no_args_is_help=True
)
review_app = typer.Typer(help="The review queue of scan matches without a consent token.", no_args_is_help=True)
evidence_app = typer.Typer(
    help="Evidence packages: one signed ZIP of a file's hashes, labels, signatures, watermark trace and audit records.",
    no_args_is_help=True,
)

SignKeyOption = Annotated[
    Path | None, typer.Option("--sign-key", help="Private key that signs ledger entries (see `keys generate`).")
]
DemoKeyOption = Annotated[bool, typer.Option("--demo-key", help="Sign with the PUBLIC demo key (tests, demos only).")]
TemplateKeyOption = Annotated[
    Path | None,
    typer.Option("--template-key", help="32-byte template key file (default: $AIGCLABEL_LIKENESS_KEY)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ModalityOption = Annotated[str, typer.Option("--modality", help="face or voice.")]
NotifiedAtOption = Annotated[str | None, typer.Option("--notified-at", help="When notified (ISO 8601; default now).")]


def _ledger(db: str | None, key_file: Path | None = None, demo: bool = False) -> "ConsentLedger":
    from ..likeness.ledger import ConsentLedger

    return ConsentLedger(store(db), signing_key(key_file, demo))


def _registry(db: str | None, template_key: Path | None, key_file: Path | None, demo: bool) -> "LikenessRegistry":
    from ..likeness.registry import LikenessRegistry, load_template_key

    ledger = _ledger(db, key_file, demo)
    return LikenessRegistry(ledger.store, load_template_key(template_key), ledger)


def _modality(value: str) -> Any:
    from ..likeness.types import MODALITIES

    if value not in MODALITIES:
        usage_error(f"--modality {value!r} is not one of {', '.join(MODALITIES)}")
    return value


def _time(value: str | None, option: str) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        usage_error(f"{option} {value!r} is not an ISO 8601 time (2026-12-01T00:00:00+08:00)")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _notice(ledger: "ConsentLedger", notice_file: Path, channel: str, notified_at: str | None) -> Any:
    from ..likeness.ledger import Notice

    try:
        text = notice_file.read_bytes()
    except OSError as exc:
        usage_error(f"cannot read {notice_file}: {exc.strerror}")
    return Notice.of_text(text, channel, _time(notified_at, "--notified-at") or ledger.store.clock())


def _print(data: Any, as_json: bool, line: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        typer.echo(line)


# ---------------------------------------------------------------------------------------- people
@likeness_app.command("new-key")
def likeness_new_key(out_file: Annotated[Path, typer.Option("--out", help="Key file to create (mode 0600).")]) -> None:
    """Create a random template key (AES-256) file; keep it away from the database."""
    from ..likeness.registry import key_id, new_template_key

    try:
        made = new_template_key(out_file)
    except AIGCLabelError as exc:
        fail(exc)
    typer.echo(f"template key {key_id(made)} -> {out_file}")


@likeness_app.command("enrol")
def likeness_enrol(
    person: Annotated[str, typer.Argument(help="Opaque person id (no name needed).")],
    files: Annotated[list[Path], typer.Argument(help="Photos, videos or voice clips of the person.")],
    modality: Annotated[str | None, typer.Option("--modality", help="face or voice (default: by file).")] = None,
    protected: Annotated[
        bool | None, typer.Option("--protected/--not-protected", help="Opt-out: platforms match uploads against them.")
    ] = None,
    template_key: TemplateKeyOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Enrol a person: the files are turned into embeddings, encrypted; the files themselves are not kept."""
    try:
        registry = _registry(db, template_key, None, False)
        count = registry.enrol_files(
            person, files, modality=_modality(modality) if modality else None, protected=protected
        )
        enrolled = registry.person(person)
    except AIGCLabelError as exc:
        fail(exc)
    assert enrolled is not None
    _print({"stored": count, **enrolled.to_dict()}, as_json, f"{person}: {count} template(s) stored")


@likeness_app.command("protect")
def likeness_protect(
    person: Annotated[str, typer.Argument(help="Enrolled person id.")],
    off: Annotated[bool, typer.Option("--off", help="Withdraw the opt-out.")] = False,
    db: DbOption = None,
) -> None:
    """Mark an enrolled person as protected (opted out), or withdraw it with --off."""
    from ..likeness.registry import LikenessRegistry

    try:
        LikenessRegistry(store(db)).set_protected(person, not off)
    except AIGCLabelError as exc:
        fail(exc)
    typer.echo(f"{person}: {'not ' if off else ''}protected")


@likeness_app.command("people")
def likeness_people(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Enrolled people, whether protected, and how many templates (nothing is decrypted)."""
    from ..likeness.registry import LikenessRegistry

    try:
        people = LikenessRegistry(store(db)).people()
    except AIGCLabelError as exc:
        fail(exc)
    if as_json:
        _print([p.to_dict() for p in people], True, "")
        return
    for p in people:
        counts = ", ".join(f"{n} {m}" for m, n in sorted(p.templates.items())) or "no templates"
        typer.echo(f"{p.person}\t{'protected' if p.protected else '-'}\t{counts}")


@likeness_app.command("delete")
def likeness_delete(
    person: Annotated[str, typer.Argument(help="Enrolled person id.")],
    sign_key: SignKeyOption = None,
    demo_key: DemoKeyOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a person and their templates; the ledger keeps a signed deletion entry (no biometrics)."""
    from ..likeness.registry import LikenessRegistry

    try:
        ledger = _ledger(db, sign_key, demo_key)
        if ledger.key is None:
            usage_error("delete records a signed ledger entry: give --sign-key (or --demo-key)")
        count = LikenessRegistry(ledger.store, None, ledger).delete(person)
    except AIGCLabelError as exc:
        fail(exc)
    _print({"person": person, "templates_deleted": count}, as_json, f"{person}: deleted with {count} template(s)")


# ---------------------------------------------------------------------------------------- consent
@consent_app.command("grant")
def consent_grant(
    person: Annotated[str, typer.Option("--person", help="Person id.")],
    grantee: Annotated[str, typer.Option("--grantee", help="Who may use the likeness (provider code / account).")],
    modality: ModalityOption,
    commercial: Annotated[bool, typer.Option("--commercial", help="Commercial use allowed.")] = False,
    distortion: Annotated[
        bool, typer.Option("--distortion", help="Editing (distorting) the likeness allowed.")
    ] = False,
    scope: Annotated[str, typer.Option("--scope", help="Free-text scope of the consent.")] = "",
    valid_from: Annotated[str | None, typer.Option("--from", help="Valid from (ISO 8601).")] = None,
    valid_until: Annotated[str | None, typer.Option("--until", help="Valid until (ISO 8601).")] = None,
    notice_file: Annotated[
        Path | None, typer.Option("--notice-file", help="The notice sent to the person (its SHA-256 is kept).")
    ] = None,
    channel: Annotated[str, typer.Option("--channel", help="How the notice was sent (sms, email, app...).")] = "",
    notified_at: NotifiedAtOption = None,
    sign_key: SignKeyOption = None,
    demo_key: DemoKeyOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a person's consent; prints its consent token."""
    from ..likeness.ledger import Purposes

    if notice_file is not None and not channel:
        usage_error("--notice-file needs --channel")
    try:
        ledger = _ledger(db, sign_key, demo_key)
        notice = _notice(ledger, notice_file, channel, notified_at) if notice_file is not None else None
        entry = ledger.grant(
            person,
            grantee,
            _modality(modality),
            purposes=Purposes(commercial, distortion, scope),
            valid_from=_time(valid_from, "--from"),
            valid_until=_time(valid_until, "--until"),
            notice=notice,
        )
    except AIGCLabelError as exc:
        fail(exc)
    _print(entry.to_dict(), as_json, entry.token)


@consent_app.command("revoke")
def consent_revoke(
    person: Annotated[str, typer.Option("--person", help="Person id.")],
    grant: Annotated[str | None, typer.Option("--grant", help="One grant (token or hash); default: all.")] = None,
    grantee: Annotated[str | None, typer.Option("--grantee", help="Only grants to this grantee.")] = None,
    modality: Annotated[str | None, typer.Option("--modality", help="Only this modality.")] = None,
    reason: Annotated[str, typer.Option("--reason")] = "",
    sign_key: SignKeyOption = None,
    demo_key: DemoKeyOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke consent, effective at once."""
    try:
        entry = _ledger(db, sign_key, demo_key).revoke(
            person, grant=grant, grantee=grantee, modality=_modality(modality) if modality else None, reason=reason
        )
    except AIGCLabelError as exc:
        fail(exc)
    _print(entry.to_dict(), as_json, f"revoked: entry {entry.seq} {entry.hash}")


@consent_app.command("notify")
def consent_notify(
    grant: Annotated[str, typer.Option("--grant", help="The grant (token or hash).")],
    notice_file: Annotated[Path, typer.Option("--notice-file", help="The notice sent (its SHA-256 is kept).")],
    channel: Annotated[str, typer.Option("--channel", help="How it was sent.")],
    notified_at: NotifiedAtOption = None,
    sign_key: SignKeyOption = None,
    demo_key: DemoKeyOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record proof that the person of a grant was notified (Deep Synthesis Provisions Art. 14)."""
    try:
        ledger = _ledger(db, sign_key, demo_key)
        entry = ledger.notify(grant, _notice(ledger, notice_file, channel, notified_at))
    except AIGCLabelError as exc:
        fail(exc)
    _print(entry.to_dict(), as_json, f"notified: entry {entry.seq} {entry.hash}")


@consent_app.command("list")
def consent_list(
    person: Annotated[str | None, typer.Option("--person", help="Only this person's entries.")] = None,
    db: DbOption = None,
) -> None:
    """Ledger entries, oldest first (JSON lines)."""
    try:
        entries = _ledger(db).entries(person)
    except AIGCLabelError as exc:
        fail(exc)
    for entry in entries:
        sys.stdout.write(json.dumps(entry.to_dict(), ensure_ascii=False) + "\n")


@consent_app.command("check")
def consent_check(
    person: Annotated[str, typer.Option("--person")],
    grantee: Annotated[str, typer.Option("--grantee")],
    modality: ModalityOption,
    commercial: Annotated[bool, typer.Option("--commercial")] = False,
    distortion: Annotated[bool, typer.Option("--distortion")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Whether a valid, notified, unrevoked grant covers the use (exit 0), or why not (exit 1)."""
    try:
        status = _ledger(db).check(person, grantee, _modality(modality), commercial=commercial, distortion=distortion)
    except AIGCLabelError as exc:
        fail(exc)
    _print(status.to_dict(), as_json, f"{status.state}: {status.reason}")
    if not status.ok:
        raise typer.Exit(1)


@consent_app.command("verify-chain")
def consent_verify_chain(
    expect_head: Annotated[
        str | None, typer.Option("--expect-head", help="SEQ:HASH of a head kept outside the database.")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Verify every ledger entry, link and signature and the signed head (exit 12 when it does not verify).

    Signatures must come from keys in the database's key registry (`keys add --db`); with none registered,
    only integrity is checked ("trusted_keys": false).
    """
    from ..errors import ConsentChainError

    expected = None
    if expect_head is not None:
        seq, _, digest = expect_head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            usage_error("--expect-head is SEQ:HASH (the hash: 64 hex digits)")
        expected = (int(seq), digest)
    try:
        report = _ledger(db).verify_chain(expect=expected)
    except AIGCLabelError as exc:
        fail(exc)
    _print(report.to_dict(), as_json, f"{report.count} entries, head {report.head_seq}:{report.head_hash}")
    if not report.ok:
        if not as_json:
            for problem in report.problems:
                typer.echo(f"  {problem}", err=True)
        fail(ConsentChainError(f"the consent ledger does not verify ({len(report.problems)} problem(s))"))


# ---------------------------------------------------------------------------------------- gate, scan, review
@likeness_app.command("gate")
def likeness_gate(
    grantee: Annotated[str, typer.Option("--grantee", help="Who asks to make the edit.")],
    source: Annotated[Path | None, typer.Option("--source", help="The content being edited.")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="The edited result.")] = None,
    distortion: Annotated[
        bool, typer.Option("--distortion/--no-distortion", help="The edit distorts the likeness.")
    ] = True,
    commercial: Annotated[bool, typer.Option("--commercial", help="For commercial use.")] = False,
    label_out: Annotated[
        Path | None, typer.Option("--label-out", help="When allowed: write the output here with the Art. 17 label.")
    ] = None,
    producer: Annotated[str | None, typer.Option("--producer", help="ContentProducer code for --label-out.")] = None,
    produce_id: Annotated[str | None, typer.Option("--produce-id", help="ProduceID for --label-out.")] = None,
    template_key: TemplateKeyOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Before an edit: allow (exit 0), consent-required or refuse (exit 1); recorded in the audit log."""
    from ..likeness.gate import gate, label_edited

    if label_out is not None and (output is None or producer is None):
        usage_error("--label-out needs --output and --producer")
    try:
        registry = _registry(db, template_key, None, False)
        assert registry.ledger is not None
        decision = gate(
            registry, registry.ledger, grantee=grantee, source=source, output=output, distortion=distortion,
            commercial=commercial,
        )  # fmt: skip
        if decision.allowed and label_out is not None and output is not None and producer is not None:
            from ..label import AIGCLabel
            from ..produce import ProduceOptions

            found = list(decision.models) or ["face"]
            label = AIGCLabel.for_producer(producer, produce_id)
            label_edited(output, label_out, label, found, ProduceOptions(audit=registry.store))  # type: ignore[arg-type]
            decision.labelled = label_out
    except AIGCLabelError as exc:
        fail(exc)
    people = "; ".join(f"{p.person} ({p.modality}): {p.decision}, {p.consent.state}" for p in decision.people)
    _print(decision.to_dict(), as_json, f"{decision.decision}" + (f": {people}" if people else ""))
    if not decision.allowed:
        raise typer.Exit(1)


@likeness_app.command("scan")
def likeness_scan(
    file: Annotated[Path, typer.Argument(help="The upload.")],
    token: Annotated[list[str] | None, typer.Option("--token", help="Consent token the uploader presents.")] = None,
    uploader: Annotated[str | None, typer.Option("--uploader", help="Who uploaded it.")] = None,
    template_key: TemplateKeyOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Match an upload against the protected people; matches without a valid token go to review (exit 1)."""
    from ..likeness.scan import scan

    try:
        registry = _registry(db, template_key, None, False)
        assert registry.ledger is not None
        result = scan(file, registry, registry.ledger, tokens=token or [], uploader=uploader)
    except AIGCLabelError as exc:
        fail(exc)
    line = "clear" if result.clear else f"queued for review: {', '.join(map(str, result.queued))}"
    _print(result.to_dict(), as_json, f"{file.name}: {result.found} likeness(es), {line}")
    if not result.clear:
        raise typer.Exit(1)


@review_app.command("list")
def review_list(
    all_items: Annotated[bool, typer.Option("--all", help="Decided items too.")] = False,
    db: DbOption = None,
) -> None:
    """Review items, oldest first (JSON lines)."""
    from ..likeness.scan import ReviewQueue

    try:
        items = ReviewQueue(_ledger(db)).list(None if all_items else "open")
    except AIGCLabelError as exc:
        fail(exc)
    for item in items:
        sys.stdout.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")


@review_app.command("decide")
def review_decide(
    review_id: Annotated[int, typer.Argument(help="Review id.")],
    decision: Annotated[str, typer.Option("--decision", help="approve, remove or false-match.")],
    reviewer: Annotated[str, typer.Option("--reviewer", help="Who decides.")],
    note: Annotated[str, typer.Option("--note")] = "",
    sign_key: SignKeyOption = None,
    demo_key: DemoKeyOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide a review item; logged (and signed in the ledger for approve / remove)."""
    from ..likeness.scan import ReviewQueue

    try:
        decided = ReviewQueue(_ledger(db, sign_key, demo_key)).decide(review_id, decision, reviewer, note)
    except AIGCLabelError as exc:
        fail(exc)
    _print(decided.to_dict(), as_json, f"review {decided.id}: {decided.status}")


# ---------------------------------------------------------------------------------------- evidence
@evidence_app.command("make")
def evidence_make(
    file: Annotated[Path, typer.Argument(help="The file the evidence is about.", exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ZIP to write.")],
    person: Annotated[str | None, typer.Option("--person", help="The person (registry id) it concerns.")] = None,
    include_file: Annotated[
        bool, typer.Option("--include-file", help="Put the file itself in the package (personal data!).")
    ] = False,
    key: Annotated[
        Path | None, typer.Option("--key", help="Private key file that signs the manifest (default: DEMO key).")
    ] = None,
    template_key: TemplateKeyOption = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Write FILE's evidence package: hashes, labels, signatures, watermark trace, audit excerpts, the person's
    consent records and match scores (with the template key), signed."""
    import os
    import zipfile

    from ..audit import DB_ENV
    from ..likeness.evidence import MANIFEST, make_evidence, optional_template_key

    try:
        store = optional_store(db or os.environ.get(DB_ENV))
        signer = signing_key(key, demo=True)
        templates = optional_template_key(template_key)
        made = make_evidence(
            file, person, store, signer, output=output, include_file=include_file, template_key=templates
        )
    except AIGCLabelError as exc:
        fail(exc)
    with zipfile.ZipFile(made) as archive:
        manifest = json.loads(archive.read(MANIFEST))
    if as_json:
        sys.stdout.write(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        return
    demo = " (DEMO key: integrity only)" if manifest["signer"]["demo"] else ""
    typer.echo(f"{made}: {len(manifest['members'])} members, signed by {manifest['signer']['key_id']}{demo}")


@evidence_app.command("verify")
def evidence_verify(
    package: Annotated[Path, typer.Argument(help="The evidence ZIP.", exists=True, dir_okay=False)],
    keys: Annotated[
        list[Path] | None, typer.Option("--keys", help="Key registry file (JSON or TOML); repeatable.")
    ] = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every member's hash and the manifest's signature; exit 1 when anything is wrong.

    The DEMO keys are always known (unpinned: a package they signed verifies with a warning)."""
    import os

    from rich.text import Text

    from ..audit import DB_ENV
    from ..likeness.evidence import verify_evidence
    from .platform import _registry

    try:
        registry = _registry(keys, True, db, use_db=bool(db or os.environ.get(DB_ENV)))
        report = verify_evidence(package, registry)
    except AIGCLabelError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        state = ("OK", "green") if report.ok else ("NOT VALID", "bold red")
        out.print(Text.assemble(f"{package}: ", state), highlight=False)
        for problem in report.problems:
            out.print(Text(f"  {problem.severity}: {problem.code}: {problem.message}"), highlight=False)
    if not report.ok:
        raise typer.Exit(LABEL_PROBLEM)


likeness_app.add_typer(consent_app, name="consent")
likeness_app.add_typer(review_app, name="review")
likeness_app.add_typer(evidence_app, name="evidence")

app = typer.Typer()
app.add_typer(likeness_app, name="likeness")
