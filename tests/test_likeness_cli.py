"""``aigclabel likeness ...`` round trips on a real SQLite file: consent grant / check / revoke / list /
verify-chain (and its exit code on a tampered ledger), the template key, people, review list / decide."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigclabel.audit import AuditStore
from aigclabel.cli import app
from aigclabel.likeness.ledger import ConsentLedger
from aigclabel.likeness.registry import KEY_ENV, LikenessRegistry, load_template_key
from aigclabel.likeness.scan import scan
from aigclabel.signing import demo_signing_key
from tests.test_likeness_registry import Euclid, face

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["likeness", *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_consent_round_trip(tmp_path: Path) -> None:
    db = str(tmp_path / "audit.sqlite")
    notice = tmp_path / "notice.txt"
    notice.write_text("我们将在短视频中编辑你的面部，你可以随时撤回同意。", encoding="utf-8")
    code, out = cli(
        "consent", "grant", "--person", "p1", "--grantee", "studio", "--modality", "face", "--distortion",
        "--notice-file", str(notice), "--channel", "sms", "--until", "2999-01-01T00:00:00+08:00",
        "--demo-key", "--db", db, "--json",
    )  # fmt: skip
    assert code == 0, out
    grant = json.loads(out)
    assert grant["token"].startswith("aigclabel-consent:1:") and grant["notice"]["channel"] == "sms"
    base = ["--person", "p1", "--grantee", "studio", "--modality", "face", "--db", db]
    assert cli("consent", "check", *base, "--distortion")[0] == 0
    code, out = cli("consent", "check", *base, "--commercial", "--json")
    assert code == 1 and json.loads(out)["state"] == "purpose-not-covered"
    assert cli("consent", "revoke", "--person", "p1", "--grant", grant["token"], "--demo-key", "--db", db)[0] == 0
    code, out = cli("consent", "check", *base)
    assert code == 1 and out.startswith("revoked")
    code, out = cli("consent", "list", "--person", "p1", "--db", db)
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["grant", "revoke"]
    code, out = cli("consent", "verify-chain", "--db", db, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["count"] == 2
    head = f"{report['head']['seq']}:{report['head']['hash']}"
    assert cli("consent", "verify-chain", "--db", db, "--expect-head", head)[0] == 0
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM aigclabel_likeness_ledger WHERE seq = 2")
    code, out = cli("consent", "verify-chain", "--db", db)
    assert code == 12 and "does not verify" in out
    assert cli("consent", "verify-chain", "--db", db, "--expect-head", "2:xyz")[0] == 2


def test_usage_and_typed_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "audit.sqlite")
    grant = ["consent", "grant", "--person", "p", "--grantee", "g", "--db", db]
    code, out = cli(*grant, "--modality", "smell", "--demo-key")
    assert code == 2 and "face, voice" in out
    code, out = cli(*grant, "--modality", "face")
    assert code == 11 and "signing key" in out
    code, out = cli("consent", "revoke", "--person", "p", "--grant", "nonsense", "--demo-key", "--db", db)
    assert code == 11
    monkeypatch.delenv(KEY_ENV, raising=False)
    code, out = cli("scan", str(tmp_path / "x.png"), "--db", db)
    assert code == 11 and "template key" in out
    assert cli("delete", "nobody", "--demo-key", "--db", db)[0] == 11


def test_key_people_review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "audit.sqlite")
    key_file = tmp_path / "template.key"
    code, out = cli("new-key", "--out", str(key_file))
    assert code == 0 and key_file.stat().st_mode & 0o777 == 0o600
    assert cli("new-key", "--out", str(key_file))[0] == 11
    store = AuditStore(db)
    ledger = ConsentLedger(store, demo_signing_key())
    registry = LikenessRegistry(store, load_template_key(key_file), ledger)
    registry.enrol("alice", [face(1)])
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"upload")
    assert cli("protect", "alice", "--db", db)[0] == 0
    code, out = cli("people", "--db", db, "--json")
    assert json.loads(out) == [
        {"person": "alice", "protected": True, "created": json.loads(out)[0]["created"], "templates": {"face": 1}}
    ]
    seen = scan(upload, registry, ledger, encoders={"face": Euclid()}, find=lambda _p: [face(1, 0.1)])  # type: ignore[dict-item]
    [review_id] = seen.queued
    code, out = cli("review", "list", "--db", db)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [review_id]
    code, out = cli("review", "decide", str(review_id), "--decision", "approve", "--reviewer", "r1", "--db", db)
    assert code == 11 and "signing key" in out  # approve is signed in the ledger
    code, out = cli(
        "review", "decide", str(review_id), "--decision", "approve", "--reviewer", "r1", "--demo-key", "--db", db
    )
    assert code == 0 and "approve" in out
    assert cli("review", "list", "--db", db)[1] == ""
    code, out = cli("delete", "alice", "--demo-key", "--db", db, "--json")
    assert code == 0 and json.loads(out)["templates_deleted"] == 1
    kinds = [json.loads(line)["kind"] for line in cli("consent", "list", "--db", db)[1].splitlines()]
    assert kinds == ["review", "delete"]
    store.close()
