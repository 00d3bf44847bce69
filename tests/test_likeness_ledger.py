"""The consent ledger on a real SQLite file: grants, revocation at once, notification proof, and tampering
(an edited row, a deleted middle row, a cut tail, reordered rows, a forged key) caught by verify_chain."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aigclabel.audit import AuditStore
from aigclabel.errors import ConsentChainError, LikenessError
from aigclabel.likeness.ledger import ConsentLedger, Notice, Purposes, parse_token
from aigclabel.signing import SigningKey, demo_signing_key
from tests._tools import run_forked

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOTICE = Notice.of_text("你的肖像将被用于视频换脸演示，可随时撤回。", "sms", T0)


class Clock:
    """A settable clock for the store (no sleeping in tests)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"


@pytest.fixture
def ledger(db: Path, clock: Clock) -> Iterator[ConsentLedger]:
    store = AuditStore(db, clock=clock)
    yield ConsentLedger(store, demo_signing_key())
    store.close()


def fill(ledger: ConsentLedger, clock: Clock, n: int = 5) -> None:
    for i in range(n):
        clock.now = T0 + timedelta(minutes=i)
        ledger.grant(f"p{i}", "studio", "face", purposes=Purposes(distortion=True), notice=NOTICE)


def exercise_ledger(ledger: ConsentLedger, clock: Clock) -> None:
    """The consent life cycle on any backend (also run on PostgreSQL)."""
    distort = Purposes(commercial=False, distortion=True, scope="short video face swap")
    grant = ledger.grant(
        "person-1", "studio", "face", purposes=distort, valid_until=T0 + timedelta(days=30), notice=NOTICE
    )
    assert grant.seq == 1 and parse_token(grant.token) == (1, grant.hash)
    assert ledger.check("person-1", "studio", "face", distortion=True).ok
    assert ledger.check("person-1", "studio", "face", commercial=True).state == "purpose-not-covered"
    assert ledger.check("person-1", "studio", "voice").state == "none"
    assert ledger.check("person-1", "other", "face").state == "none"
    assert ledger.check("person-1", "studio", "face", at=T0 + timedelta(days=31)).state == "expired"
    assert ledger.check_token(grant.token, "person-1", "face").ok
    assert ledger.check_token(grant.token, "person-2", "face").state == "none"
    clock.now = T0 + timedelta(seconds=1)
    ledger.revoke("person-1", grant=grant.token, reason="changed my mind")
    # At once: the very next check, and the token, no longer count; the past still reads as it was.
    assert ledger.check("person-1", "studio", "face", distortion=True).state == "revoked"
    assert ledger.check_token(grant.token, "person-1", "face").state == "revoked"
    assert ledger.check("person-1", "studio", "face", distortion=True, at=T0).ok
    report = ledger.verify_chain()
    assert report.ok and report.count == 2 and report.head_seq == 2, report.problems


def test_consent_life_cycle(ledger: ConsentLedger, clock: Clock) -> None:
    exercise_ledger(ledger, clock)


def test_notice_may_come_later_and_grants_need_it(ledger: ConsentLedger, clock: Clock) -> None:
    grant = ledger.grant("p", "studio", "voice", purposes=Purposes(commercial=True))
    assert ledger.check("p", "studio", "voice").state == "not-notified"
    ledger.notify(grant.hash, Notice.of_text("notice", "email", T0))
    assert ledger.check("p", "studio", "voice", commercial=True).ok
    ledger.record_deletion("p", templates=2)
    assert ledger.check("p", "studio", "voice").state == "revoked"
    entries = ledger.entries("p")
    assert [e.kind for e in entries] == ["grant", "notify", "delete"]
    assert "vector" not in json.dumps([e.to_dict() for e in entries])


def test_revoke_all_of_a_grantee_and_a_new_grant_after_it(ledger: ConsentLedger, clock: Clock) -> None:
    ledger.grant("p", "studio", "face", notice=NOTICE)
    ledger.grant("p", "studio", "voice", notice=NOTICE)
    ledger.revoke("p", grantee="studio", modality="face")
    assert ledger.check("p", "studio", "face").state == "revoked"
    assert ledger.check("p", "studio", "voice").ok
    ledger.grant("p", "studio", "face", notice=NOTICE)
    assert ledger.check("p", "studio", "face").ok


def test_bad_requests_are_typed(ledger: ConsentLedger, db: Path) -> None:
    with pytest.raises(LikenessError, match="modality"):
        ledger.grant("p", "g", "smell", notice=NOTICE)  # type: ignore[arg-type]
    with pytest.raises(LikenessError, match="no grant"):
        ledger.revoke("p", grant="0" * 64)
    with pytest.raises(LikenessError, match="consent token"):
        parse_token("hello")
    with pytest.raises(LikenessError, match="SHA-256"):
        ledger.grant("p", "g", "face", notice=Notice("nope", "sms", T0))
    with pytest.raises(LikenessError, match="signing key"):
        ConsentLedger(ledger.store).grant("p", "g", "face")
    assert ledger.verify_chain().count == 0


def _sql(db: Path, statement: str, *args: object) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(statement, args)


def _body(db: Path, seq: int) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT body FROM aigclabel_likeness_ledger WHERE seq = ?", (seq,)).fetchone()[0])


def test_edited_row_is_detected(ledger: ConsentLedger, clock: Clock, db: Path) -> None:
    fill(ledger, clock)
    assert ledger.verify_chain().ok
    _sql(
        db,
        "UPDATE aigclabel_likeness_ledger SET body = ? WHERE seq = 3",
        _body(db, 3).replace('"distortion":true', '"distortion":false'),
    )
    report = ledger.verify_chain()
    assert not report.ok and "entry 3 was altered" in report.problems[0]
    with pytest.raises(ConsentChainError):
        report.raise_if_broken()
    with pytest.raises(ConsentChainError):  # no consent is read from an altered entry
        ledger.check("p2", "studio", "face")


def test_edited_row_with_recomputed_hash_fails_the_signature(ledger: ConsentLedger, clock: Clock, db: Path) -> None:
    import hashlib

    from aigclabel.likeness.ledger import canonical

    fill(ledger, clock)
    record = json.loads(_body(db, 2))
    record["body"]["grantee"] = "someone-else"
    record["hash"] = hashlib.sha256(canonical(record["body"])).hexdigest()
    edited = canonical(record).decode()
    _sql(db, "UPDATE aigclabel_likeness_ledger SET body = ?, entry_hash = ? WHERE seq = 2", edited, record["hash"])
    problems = ledger.verify_chain().problems
    assert any("entry 2's signature does not verify" in p for p in problems)


def test_deleted_middle_row_is_detected(ledger: ConsentLedger, clock: Clock, db: Path) -> None:
    fill(ledger, clock)
    _sql(db, "DELETE FROM aigclabel_likeness_ledger WHERE seq = 3")
    problems = ledger.verify_chain().problems
    assert any("entries are missing" in p for p in problems) and any("does not link" in p for p in problems)


def test_cut_tail_is_detected(ledger: ConsentLedger, clock: Clock, db: Path) -> None:
    fill(ledger, clock)
    head = ledger.head()
    assert head is not None and head[0] == 5
    _sql(db, "DELETE FROM aigclabel_likeness_ledger WHERE seq >= 4")
    problems = ledger.verify_chain().problems
    assert problems == ["the signed head names entry 5, the ledger ends at 3"]
    _sql(db, "DELETE FROM aigclabel_likeness_head")
    assert ledger.verify_chain().problems == ["the signed head is missing"]


def test_old_head_put_back_needs_the_expected_head(ledger: ConsentLedger, clock: Clock, db: Path) -> None:
    fill(ledger, clock, 3)
    with sqlite3.connect(db) as conn:
        old_head = conn.execute("SELECT body FROM aigclabel_likeness_head").fetchone()[0]
    fill(ledger, clock, 2)
    kept = ledger.head()
    assert kept is not None
    _sql(db, "DELETE FROM aigclabel_likeness_ledger WHERE seq >= 4")
    _sql(db, "UPDATE aigclabel_likeness_head SET body = ?", old_head)
    assert ledger.verify_chain().ok  # the documented limit: a saved old head hides a cut tail...
    assert ledger.verify_chain(expect=kept).problems == ["the expected head (entry 5) is not in the ledger"]


def test_reordered_rows_are_detected(ledger: ConsentLedger, clock: Clock, db: Path) -> None:
    fill(ledger, clock)
    two, four = _body(db, 2), _body(db, 4)
    with sqlite3.connect(db) as conn:
        hashes = dict(conn.execute("SELECT seq, entry_hash FROM aigclabel_likeness_ledger"))
        conn.execute("UPDATE aigclabel_likeness_ledger SET body = ?, entry_hash = 'x' WHERE seq = 2", (four,))
        conn.execute("UPDATE aigclabel_likeness_ledger SET body = ?, entry_hash = ? WHERE seq = 4", (two, hashes[2]))
        conn.execute("UPDATE aigclabel_likeness_ledger SET entry_hash = ? WHERE seq = 2", (hashes[4],))
    problems = ledger.verify_chain().problems
    assert any("columns disagree" in p for p in problems)


def test_entry_signed_by_an_untrusted_key(ledger: ConsentLedger, clock: Clock) -> None:
    fill(ledger, clock, 2)
    ConsentLedger(ledger.store, SigningKey.generate()).grant("p9", "studio", "face", notice=NOTICE)
    problems = ConsentLedger(ledger.store, demo_signing_key()).verify_chain().problems
    assert any("entry 3 is signed by key" in p for p in problems)
    assert ConsentLedger(ledger.store).verify_chain().trusted_keys is False


def test_sm2_signed_ledger(db: Path, clock: Clock) -> None:
    pytest.importorskip("gmssl")
    store = AuditStore(db, clock=clock)
    ledger = ConsentLedger(store, demo_signing_key("sm2"))
    ledger.grant("p", "studio", "face", notice=NOTICE)
    assert ledger.verify_chain().ok and ledger.check("p", "studio", "face").ok


WRITERS, PER_WRITER = 4, 10


def _append_many(db: str, writer: int) -> None:
    store = AuditStore(db)
    ledger = ConsentLedger(store, demo_signing_key())
    for i in range(PER_WRITER):
        ledger.grant(f"w{writer}-{i}", "studio", "face", notice=NOTICE)
    store.close()


def check_concurrent_appends(url: str) -> None:
    """Writers in several processes append at once: one chain, no fork, no lost entry."""
    AuditStore(url).close()
    run_forked(_append_many, [(url, w) for w in range(WRITERS)])
    store = AuditStore(url)
    report = ConsentLedger(store, demo_signing_key()).verify_chain()
    assert report.ok and report.count == WRITERS * PER_WRITER, report.problems
    store.close()


def test_concurrent_appends_do_not_fork_the_chain(db: Path) -> None:
    check_concurrent_appends(str(db))


def test_sqlite_downgrade_keeps_the_events_table(db: Path) -> None:
    from alembic import command

    from aigclabel.audit import AuditEvent

    store = AuditStore(db)
    store.record(AuditEvent(kind="label", produce_id="kept"))
    store.record(AuditEvent(kind="likeness", detail={"action": "gate"}))
    command.downgrade(store._alembic_config(), "0003")
    assert store.schema_revision() == "0003"
    with pytest.raises(sqlite3.IntegrityError):
        _sql(db, "INSERT INTO aigclabel_events (ts, kind, detail) VALUES ('2026-01-01', 'likeness', '{}')")
    store.migrate()
    assert [e.produce_id for e in store.events()] == ["kept"]
    store.close()


def test_revocation_from_a_clock_ahead_applies_at_once(ledger: ConsentLedger, clock: Clock) -> None:
    ledger.grant("p", "studio", "face", notice=NOTICE)
    clock.now = T0 + timedelta(minutes=5)  # another server, its clock five minutes ahead
    ledger.revoke("p", grantee="studio")
    clock.now = T0 + timedelta(minutes=1)
    assert ledger.check("p", "studio", "face").state == "revoked"
    assert ledger.check("p", "studio", "face", at=T0 + timedelta(minutes=1)).ok  # the past, asked as such


def test_inserted_middle_entry_is_detected(ledger: ConsentLedger, clock: Clock, db: Path, tmp_path: Path) -> None:
    fill(ledger, clock, 4)
    # The forger builds a well-formed entry 3 after entry 2 (with their own key) in a copy of the ledger...
    forged_db = tmp_path / "forged.sqlite"
    with sqlite3.connect(db) as src, sqlite3.connect(forged_db) as dst:
        src.backup(dst)
    _sql(forged_db, "DELETE FROM aigclabel_likeness_ledger WHERE seq >= 3")
    forger = AuditStore(forged_db, clock=clock)
    forged = ConsentLedger(forger, SigningKey.generate()).grant("p9", "studio", "face", notice=NOTICE)
    forger.close()
    # ...and slips it in, moving the later rows up by one.
    with sqlite3.connect(db) as conn:
        for seq in (4, 3):
            conn.execute("UPDATE aigclabel_likeness_ledger SET seq = ? WHERE seq = ?", (seq + 1, seq))
        conn.execute(
            "INSERT INTO aigclabel_likeness_ledger (seq, entry_hash, kind, person_id, ts, body) "
            "VALUES (3, ?, 'grant', 'p9', ?, ?)",
            (forged.hash, "2026-11-01 12:00:00", _body(forged_db, 3)),
        )
    problems = ledger.verify_chain().problems
    assert any("entry 3 is signed by key" in p for p in problems)
    assert any("entry 4's columns disagree" in p for p in problems)
