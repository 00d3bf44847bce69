"""The likeness registry on a real SQLite file: templates encrypted at rest (AES-256-GCM), a wrong key refused
with a typed error, a template moved to another person refused, deletion that leaves a signed ledger entry."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from aigclabel.audit import AuditStore
from aigclabel.errors import LikenessError, TemplateKeyError
from aigclabel.likeness.ledger import ConsentLedger
from aigclabel.likeness.registry import KEY_ENV, LikenessRegistry, load_template_key, new_template_key
from aigclabel.likeness.types import Likeness, Modality
from aigclabel.signing import demo_signing_key

KEY = bytes(range(32))


class Euclid:
    """A plain Euclidean encoder for registry tests with chosen vectors (the real encoders are tested with faces)."""

    def __init__(self, modality: Modality = "face", threshold: float = 0.6) -> None:
        self.modality: Modality = modality
        self.model = "test-euclid"
        self.threshold = threshold

    def distance(self, a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
        return float(np.linalg.norm(a - b))


def vector(seed: int, dims: int = 128) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).normal(size=dims).astype(np.float32)
    return v / np.linalg.norm(v)


def face(seed: int, noise: float = 0.0) -> Likeness:
    v = vector(seed) + noise * vector(seed + 1000)
    return Likeness("face", v.astype(np.float32), (0, 0, 10, 10), "test-euclid")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"


@pytest.fixture
def registry(db: Path) -> Iterator[LikenessRegistry]:
    store = AuditStore(db)
    yield LikenessRegistry(store, KEY, ConsentLedger(store, demo_signing_key()))
    store.close()


def test_templates_are_encrypted_and_round_trip(registry: LikenessRegistry, db: Path) -> None:
    assert registry.enrol("alice", [face(1), face(2)], protected=True) == 2
    [stored] = [t for t in registry.templates(person="alice") if np.array_equal(t.vector, face(1).vector)]
    assert stored.model == "test-euclid" and stored.modality == "face"
    with sqlite3.connect(db) as conn:
        blobs = [bytes(b) for (b,) in conn.execute("SELECT ciphertext FROM aigclabel_likeness_templates")]
    assert all(face(1).vector.tobytes() not in blob and len(blob) == 128 * 4 + 16 for blob in blobs)
    [alice] = registry.people()
    assert alice.protected and alice.templates == {"face": 2}


def test_wrong_key_is_a_typed_error(registry: LikenessRegistry) -> None:
    registry.enrol("alice", [face(1)])
    other = LikenessRegistry(registry.store, bytes(32))
    with pytest.raises(TemplateKeyError, match="sealed with another key"):
        other.templates()
    assert other.people()[0].templates == {"face": 1}  # listing needs no key


def test_template_moved_to_another_person_does_not_decrypt(registry: LikenessRegistry, db: Path) -> None:
    registry.enrol("alice", [face(1)])
    registry.enrol("bob", [face(2)])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE aigclabel_likeness_templates SET person_id = 'bob' WHERE person_id = 'alice'")
    with pytest.raises(TemplateKeyError, match="altered or moved"):
        registry.templates()


def test_match_and_delete(registry: LikenessRegistry) -> None:
    encoders = {"face": Euclid()}
    registry.enrol("alice", [face(1)], protected=True)
    registry.enrol("bob", [face(2)])
    [hit] = registry.match([face(1, noise=0.1)], encoders=encoders)  # type: ignore[dict-item]
    assert (hit.person, hit.protected, hit.threshold) == ("alice", True, 0.6) and hit.distance < 0.2
    assert registry.match([face(2, noise=0.1)], protected_only=True, encoders=encoders) == []  # type: ignore[dict-item]
    assert registry.match([face(7)], encoders=encoders) == []  # type: ignore[dict-item]
    assert registry.delete("alice") == 1
    assert [p.person for p in registry.people()] == ["bob"]
    assert registry.match([face(1, noise=0.1)], encoders=encoders) == []  # type: ignore[dict-item]
    assert registry.ledger is not None
    [entry] = registry.ledger.entries("alice")
    assert entry.kind == "delete" and entry.body["templates_deleted"] == 1
    with pytest.raises(LikenessError, match="no enrolled person"):
        registry.delete("alice")


def test_keys_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = new_template_key(tmp_path / "k")
    assert load_template_key(tmp_path / "k") == made
    with pytest.raises(TemplateKeyError, match="refusing to overwrite"):
        new_template_key(tmp_path / "k")
    (tmp_path / "raw").write_bytes(KEY)
    assert load_template_key(tmp_path / "raw") == KEY
    monkeypatch.setenv(KEY_ENV, "c2hvcnQ=")
    with pytest.raises(TemplateKeyError, match="not a 32-byte key"):
        load_template_key()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(TemplateKeyError, match="no template key"):
        load_template_key()
    with pytest.raises(TemplateKeyError, match="cannot read"):
        load_template_key(tmp_path / "missing")


def test_nothing_to_enrol(registry: LikenessRegistry) -> None:
    with pytest.raises(LikenessError, match="nothing to enrol"):
        registry.enrol("alice", [])
    bad = Likeness("face", np.array([np.nan], dtype=np.float32), (), "m")
    with pytest.raises(LikenessError, match="finite"):
        registry.enrol("alice", [bad])
