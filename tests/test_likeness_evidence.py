"""The evidence package: a signed ZIP read back with :mod:`zipfile` and its signature checked with
``cryptography`` directly; every kind of tampering is named; hostile ZIPs get typed errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image
from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
from aigclabel.audit import AuditStore
from aigclabel.cli import app
from aigclabel.errors import LimitExceededError, MalformedFileError
from aigclabel.likeness.evidence import (
    AUDIT_MEMBER,
    MANIFEST,
    SIGNATURE,
    VERIFY_MEMBER,
    canonical_json,
    make_evidence,
    verify_evidence,
)
from aigclabel.produce import ProduceOptions, label_file
from aigclabel.signing import KeyRegistry, SigningKey, demo_signing_key
from aigclabel.watermark import DEMO_KEY, Payload

from .test_watermark_image import natural

PRODUCE_ID = "evidence-produce-id-0001"
runner = CliRunner()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, AuditStore]:
    """A watermarked, signed, labelled image, its audit record, and its evidence package (file included)."""
    folder = tmp_path_factory.mktemp("evidence")
    Image.fromarray(natural(11)).save(folder / "raw.png")
    store = AuditStore(folder / "audit.sqlite")
    label = AIGCLabel(label="1", content_producer=DEMO_PROVIDER_CODE, produce_id=PRODUCE_ID)
    options = ProduceOptions(signing_key=demo_signing_key(), watermark_key=DEMO_KEY, audit=store)
    label_file(folder / "raw.png", label, folder / "photo.png", options)
    made = make_evidence(folder / "photo.png", "person-7", store, output=folder / "evidence.zip", include_file=True)
    return folder / "photo.png", made, store


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(src: Path, dst: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    """A copy of the package with ``change`` applied to its members."""
    content = members(src)
    change(content)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in content.items():
            archive.writestr(name, data)
    return dst


def codes(path: Path, registry: KeyRegistry | None = None) -> set[str]:
    report = verify_evidence(path, registry)
    return {p.code for p in report.problems if p.severity == "error"}


def test_round_trip_read_back_and_signature_checked_independently(package: tuple[Path, Path, AuditStore]) -> None:
    photo, made, _ = package
    content = members(made)
    assert set(content) == {MANIFEST, SIGNATURE, VERIFY_MEMBER, AUDIT_MEMBER, "content/photo.png"}
    manifest = json.loads(content[MANIFEST])
    assert content[MANIFEST] == canonical_json(manifest)  # canonical: re-serialising gives the signed bytes
    signature = json.loads(content[SIGNATURE])
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(manifest["signer"]["public_key"]))
    public.verify(bytes.fromhex(signature["signature"]), content[MANIFEST])  # raises if invalid
    with pytest.raises(InvalidSignature):
        public.verify(bytes.fromhex(signature["signature"]), content[MANIFEST] + b" ")
    assert manifest["signer"]["demo"] is True and "DEMO" in manifest["signer"]["note"]
    for name, listed in manifest["members"].items():
        assert hashlib.sha256(content[name]).hexdigest() == listed["sha256"]
        assert len(content[name]) == listed["size"]
    assert content["content/photo.png"] == photo.read_bytes()

    subject = manifest["subject"]
    assert subject["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert subject["payload_digest"]["container"] == "png" and len(subject["payload_digest"]["sha256"]) == 64
    assert manifest["labels"]["implicit"]["ProduceID"] == PRODUCE_ID
    assert manifest["labels"]["classification"] == "confirmed"
    assert manifest["signatures"]["producer"]["state"] == "valid"
    payload = Payload.for_produce_id(PRODUCE_ID).hex()
    assert manifest["watermark"]["payloads"] == [payload]
    trace = manifest["watermark"]["trace"][0]
    assert trace["matches_label_produce_id"] is True
    assert trace["produce_ids"] == [PRODUCE_ID] and trace["producers"] == [DEMO_PROVIDER_CODE]
    audit = json.loads(content[AUDIT_MEMBER])
    assert [e["produce_id"] for e in audit["events"]] == [PRODUCE_ID]
    assert set(audit["searched"]) >= {"content_sha256", "payload_digest", "produce_id", "watermark_payload"}
    assert manifest["person"] == {"id": "person-7"}
    assert [(m["modality"], m["status"]) for m in manifest["matches"]] == [("face", "not-matched")]  # an image
    assert "template key" in manifest["matches"][0]["reason"]  # why: never a made-up score
    assert manifest["tool"]["name"] == "aigclabel" and manifest["created"].endswith("Z")
    assert str(photo.parent) not in content[MANIFEST].decode() + content[VERIFY_MEMBER].decode()

    report = verify_evidence(made)
    assert report.ok, report.problems
    assert {p.code for p in report.problems} == {"demo-key", "key-not-pinned"}  # warnings only


def tamper_cases() -> dict[str, tuple[Callable[[dict[str, bytes]], None], set[str]]]:
    def edit_manifest(content: dict[str, bytes]) -> None:
        manifest = json.loads(content[MANIFEST])
        manifest["labels"]["classification"] = "none"
        content[MANIFEST] = canonical_json(manifest)

    def relist(content: dict[str, bytes]) -> None:  # alter a member and its hash: the signature catches it
        content[AUDIT_MEMBER] = b"{}"
        manifest = json.loads(content[MANIFEST])
        manifest["members"][AUDIT_MEMBER]["sha256"] = hashlib.sha256(b"{}").hexdigest()
        content[MANIFEST] = canonical_json(manifest)

    return {
        "member altered": (
            lambda c: c.update({VERIFY_MEMBER: c[VERIFY_MEMBER].replace(b"png", b"jpg")}),
            {"member-altered"},
        ),
        "file altered": (
            lambda c: c.update({"content/photo.png": c["content/photo.png"][:-1] + b"\0"}),
            {"member-altered"},
        ),
        "member removed": (lambda c: c.pop(AUDIT_MEMBER), {"member-missing"}),
        "member added": (lambda c: c.update({"content/extra.txt": b"hello"}), {"member-added"}),
        "manifest altered": (edit_manifest, {"signature-invalid"}),
        "member and hash altered": (relist, {"signature-invalid"}),
        "signature removed": (lambda c: c.pop(SIGNATURE), {"signature-missing"}),
        "manifest removed": (lambda c: c.pop(MANIFEST), {"manifest-missing"}),
        "signature garbled": (lambda c: c.update({SIGNATURE: b'{"signature": "zz"}'}), {"signature-invalid"}),
    }


@pytest.mark.parametrize("case", list(tamper_cases()))
def test_every_tamper_is_named(package: tuple[Path, Path, AuditStore], tmp_path: Path, case: str) -> None:
    change, expected = tamper_cases()[case]
    tampered = rewrite(package[1], tmp_path / "t.zip", change)
    assert codes(tampered) == expected
    assert not verify_evidence(tampered).ok


def test_untouched_rewrite_still_verifies(package: tuple[Path, Path, AuditStore], tmp_path: Path) -> None:
    assert codes(rewrite(package[1], tmp_path / "same.zip", lambda c: None)) == set()  # the check itself can pass


def test_unknown_key_and_a_pinned_key(package: tuple[Path, Path, AuditStore], tmp_path: Path) -> None:
    photo, _, store = package
    key = SigningKey.generate()
    made = make_evidence(photo, None, store, key, output=tmp_path / "own.zip")
    assert codes(made) == {"unknown-key"}
    registry = KeyRegistry()
    registry.add("PLATFORM", key.public_key)
    report = verify_evidence(made, registry)
    assert report.ok and report.problems == [] and report.signed_by == {
        "provider": "PLATFORM", "key_id": key.key_id, "pinned": True
    }  # fmt: skip
    assert json.loads(members(made)[MANIFEST])["signer"]["demo"] is False
    # A package re-signed by someone else's key over a forged manifest: unknown key, not "valid".
    forged = rewrite(made, tmp_path / "forged.zip", lambda c: c.update({SIGNATURE: members(package[1])[SIGNATURE]}))
    assert "signature-invalid" in codes(forged, registry)


def hostile(tmp_path: Path) -> dict[str, tuple[Path, type[Exception]]]:
    cases: dict[str, tuple[Path, type[Exception]]] = {}

    def write(
        name: str, entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED
    ) -> Path:
        path = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(path, "w", method) as archive:
            for entry, data in entries:
                archive.writestr(entry, data)
        return path

    cases["zip bomb"] = (write("bomb", [(MANIFEST, b"{}"), ("verify.json", b"\0" * (64 << 20))]), LimitExceededError)
    cases["traversal"] = (write("trav", [(MANIFEST, b"{}"), ("../../etc/evil", b"x")]), MalformedFileError)
    cases["absolute"] = (write("abs", [(MANIFEST, b"{}"), ("/etc/evil", b"x")]), MalformedFileError)
    cases["backslash"] = (write("bs", [(MANIFEST, b"{}"), ("..\\evil", b"x")]), MalformedFileError)
    huge = b'{"format": "aigclabel-evidence/1", "pad": "' + b"x" * (17 << 20) + b'"}'
    cases["huge manifest"] = (write("huge", [(MANIFEST, huge)], zipfile.ZIP_STORED), LimitExceededError)
    cases["deep manifest"] = (write("deep", [(MANIFEST, b"[" * 200_000 + b"]" * 200_000)]), MalformedFileError)
    cases["not json"] = (write("notjson", [(MANIFEST, b"\xff\xfe not json")]), MalformedFileError)
    dup = b'{"format": "aigclabel-evidence/1", "format": "x"}'
    cases["duplicate keys"] = (write("dupkey", [(MANIFEST, dup)]), MalformedFileError)
    many = [(f"m{i}", b"") for i in range(100)]
    cases["too many members"] = (write("many", many), LimitExceededError)
    (tmp_path / "plain.zip").write_bytes(b"this is not a zip at all")
    cases["not a zip"] = (tmp_path / "plain.zip", MalformedFileError)
    good = write("good", [(MANIFEST, b"{}"), ("a", b"y" * 1000)])
    (tmp_path / "cut.zip").write_bytes(good.read_bytes()[:-30])
    cases["truncated"] = (tmp_path / "cut.zip", MalformedFileError)
    return cases


def test_hostile_packages_get_typed_errors(tmp_path: Path) -> None:
    for name, (path, error) in hostile(tmp_path).items():
        with pytest.raises(error):
            verify_evidence(path)
        result = runner.invoke(app, ["likeness", "evidence", "verify", str(path)])
        assert result.exit_code == error.exit_code, (name, result.output)  # type: ignore[attr-defined]
        assert "Traceback" not in result.output


def test_duplicate_member_names_are_refused(package: tuple[Path, Path, AuditStore], tmp_path: Path) -> None:
    dup = tmp_path / "dup.zip"
    shutil.copyfile(package[1], dup)
    with pytest.warns(UserWarning), zipfile.ZipFile(dup, "a") as archive:
        archive.writestr(AUDIT_MEMBER, b"{}")  # a second audit.json that some readers would prefer
    with pytest.raises(MalformedFileError, match="twice"):
        verify_evidence(dup)


def test_the_file_itself_is_never_overwritten(package: tuple[Path, Path, AuditStore]) -> None:
    photo = package[0]
    before = photo.read_bytes()
    result = runner.invoke(app, ["likeness", "evidence", "make", str(photo), "-o", str(photo)])
    assert result.exit_code == 8 and "itself" in result.output
    assert photo.read_bytes() == before


def test_cli_make_and_verify(package: tuple[Path, Path, AuditStore], tmp_path: Path) -> None:
    photo, _, _ = package
    out = tmp_path / "cli.zip"
    made = runner.invoke(app, ["likeness", "evidence", "make", str(photo), "--person", "p1", "-o", str(out), "--json"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["person"] == {"id": "p1"}
    assert "content/photo.png" not in members(out)  # the file goes in only when asked
    checked = runner.invoke(app, ["likeness", "evidence", "verify", str(out), "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["ok"] is True
    bad = rewrite(out, tmp_path / "bad.zip", lambda c: c.pop(AUDIT_MEMBER))
    failed = runner.invoke(app, ["likeness", "evidence", "verify", str(bad)])
    assert failed.exit_code == 1 and "member-missing" in failed.output


def test_consent_records_and_match_scores(tmp_path: Path) -> None:
    from aigclabel.likeness.ledger import ConsentLedger, Purposes
    from aigclabel.likeness.registry import LikenessRegistry

    from .test_likeness_gate import _astronaut
    from .test_likeness_ledger import NOTICE
    from .test_likeness_registry import KEY

    store = AuditStore(tmp_path / "audit.sqlite")
    ledger = ConsentLedger(store, demo_signing_key())
    grant = ledger.grant("eileen", "studio", "face", purposes=Purposes(distortion=True), notice=NOTICE)
    photo = tmp_path / "photo.png"
    Image.fromarray(natural(3)).save(photo)
    made = make_evidence(photo, "eileen", store, output=tmp_path / "e.zip")
    audit = json.loads(members(made)[AUDIT_MEMBER])
    assert [(r["record"], r["kind"], r["token"]) for r in audit["person"]] == [("ledger", "grant", grant.token)]
    assert json.loads(members(made)[MANIFEST])["audit"]["person_records"] == 1
    assert verify_evidence(made).ok

    pytest.importorskip("aigclabel.likeness.face")
    face = _astronaut(tmp_path)
    assert LikenessRegistry(store, KEY, ledger).enrol_files("eileen", [face], protected=True) == 1
    manifest = json.loads(
        members(make_evidence(face, "eileen", store, output=tmp_path / "f.zip", template_key=KEY))[MANIFEST]
    )
    matched = [m for m in manifest["matches"] if m["status"] == "matched"]
    assert [m["person"] for m in matched] == ["eileen"] and matched[0]["distance"] <= matched[0]["threshold"]
    assert matched[0]["model"] and matched[0]["where"]
    store.close()
