"""``aigclabel strip`` and Measures Art. 10: only the producer's own signed label goes without an
override, an override needs a reason, and every strip is in the audit log."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE
from aigclabel.audit import AuditStore
from aigclabel.cli import app
from aigclabel.errors import LabelRemovalRefusedError
from aigclabel.signing import SigningKey

from ._tools import exiftool_label
from .conftest import SAMPLES

runner = CliRunner()


def _cli(*args: str | Path) -> tuple[int, str]:
    done = runner.invoke(app, [str(a) for a in args])
    return done.exit_code, " ".join(done.output.split())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return SigningKey.generate().save(tmp_path / "mine.json"), SigningKey.generate().save(tmp_path / "other.json")


def _labelled(tmp_path: Path, name: str, *extra: str | Path) -> Path:
    path = tmp_path / name
    shutil.copy(SAMPLES / "sample.png", path)
    code, output = _cli("label", path, "-p", DEMO_PROVIDER_CODE, *extra)
    assert code == 0, output
    assert exiftool_label(path), "exiftool sees the label before the strip"
    return path


def _events(db: Path) -> list[dict[str, object]]:
    store = AuditStore(db)
    try:
        return [e.to_dict() for e in store.events() if e.kind == "strip"]
    finally:
        store.close()


@pytest.mark.interop  # exiftool
def test_own_signed_label_is_stripped_and_recorded(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    mine, _ = keys
    signed = _labelled(tmp_path, "signed.png", "--sign-key", mine)
    db, out = tmp_path / "audit.sqlite", tmp_path / "out.png"
    code, output = _cli("strip", signed, "-o", out, "--sign-key", mine, "--db", db)
    assert code == 0, output
    assert exiftool_label(out) is None and exiftool_label(signed)
    [event] = _events(db)
    detail = event["detail"]
    assert isinstance(detail, dict)
    assert (event["content_sha256"], detail["output_sha256"]) == (_sha(signed), _sha(out))
    assert detail["basis"] == "own-key" and detail["key_id"] == SigningKey.load(mine).key_id
    assert [r["ContentProducer"] for r in detail["removed"]] == [DEMO_PROVIDER_CODE]
    assert detail["reason"] is None and detail["actor"]


@pytest.mark.interop  # exiftool
@pytest.mark.parametrize("how", ["no key", "other key", "unsigned"])
def test_labels_not_provably_yours_are_refused(tmp_path: Path, keys: tuple[Path, Path], how: str) -> None:
    mine, other = keys
    path = _labelled(tmp_path, "in.png", *(() if how == "unsigned" else ("--sign-key", mine)))
    before = path.read_bytes()
    db, out = tmp_path / "audit.sqlite", tmp_path / "out.png"
    key = {"no key": (), "other key": ("--sign-key", other), "unsigned": ("--sign-key", mine)}[how]
    code, output = _cli("strip", path, "-o", out, "--db", db, *key)
    assert code == LabelRemovalRefusedError.exit_code == 9, output
    assert "Art. 10" in output and "--force-remove-label" in output
    assert not out.exists() and path.read_bytes() == before
    assert not db.exists(), "a refusal touches nothing, not even the audit store"


@pytest.mark.interop  # exiftool
def test_override_needs_a_reason_and_is_recorded(tmp_path: Path) -> None:
    path = _labelled(tmp_path, "in.png")
    db = tmp_path / "audit.sqlite"
    assert _cli("strip", path, "--db", db, "--force-remove-label")[0] == 2
    assert _cli("strip", path, "--db", db, "--force-remove-label", "--reason", "  ")[0] == 9
    assert exiftool_label(path), "nothing removed"
    reason = "re-issuing our own unsigned asset, ticket 42"
    code, output = _cli("strip", path, "--db", db, "--force-remove-label", "--reason", reason)
    assert code == 0, output
    assert exiftool_label(path) is None
    [event] = _events(db)
    detail = event["detail"]
    assert isinstance(detail, dict)
    assert (detail["basis"], detail["reason"], detail["key_id"]) == ("override", reason, None)
    assert "unsigned label" in detail["objections"][0]


def test_strip_of_an_unlabelled_file_is_still_recorded(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    shutil.copy(SAMPLES / "sample.png", path)
    db = tmp_path / "audit.sqlite"
    assert _cli("strip", path, "--db", db)[0] == 0
    [event] = _events(db)
    assert event["detail"]["basis"] == "no-label" and event["content_sha256"] == _sha(path)  # type: ignore[index]
