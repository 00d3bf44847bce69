"""Audit store on SQLite: events, trace, retention (Art. 9), keys, migrations, concurrency, crashes.

The concurrency and crash checks are shared with tests/test_audit_postgres.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import event, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from aigclabel import DEMO_PROVIDER_CODE, AIGCLabel
from aigclabel.api import write_label
from aigclabel.audit import (
    MIN_RETENTION_DAYS,
    AuditError,
    AuditEvent,
    AuditStore,
    EventKind,
    RetentionError,
    file_event,
    purge,
)
from aigclabel.cli import app
from aigclabel.signing import SigningKey, demo_registry
from tests._tools import run_forked
from tests.conftest import SAMPLES

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
_fork = multiprocessing.get_context("fork")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AuditStore]:
    made = AuditStore(tmp_path / "audit.sqlite", clock=lambda: NOW)
    yield made
    made.close()


# ------------------------------------------------------------------------------------- events & trace
def test_record_and_trace_by_every_identifier(store: AuditStore, tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes((SAMPLES / "sample.jpg").read_bytes())
    labelled = file_event(EventKind.LABEL, image, None, watermark_payload="wm-1")
    first = store.record(labelled)
    store.record(AuditEvent(kind="verify", produce_id="pid-1", detail={"classification": "confirmed"}))
    store.record(AuditEvent(kind=EventKind.EXPORT_UNLABELED, produce_id="pid-1", recipient="user@example.org"))
    assert labelled.content_sha256 is not None and labelled.payload_digest is not None
    assert [e.id for e in store.trace(content_sha256=labelled.content_sha256.upper())] == [first]
    assert [e.id for e in store.trace(payload_digest=labelled.payload_digest)] == [first]
    assert [e.id for e in store.trace(watermark_payload="wm-1")] == [first]
    found = store.trace(produce_id="pid-1")
    assert [e.kind for e in found] == [EventKind.VERIFY, EventKind.EXPORT_UNLABELED]
    assert found[1].recipient == "user@example.org"
    assert found[0].ts == NOW and found[0].detail == {"classification": "confirmed"}
    assert store.trace(produce_id="pid-1' OR '1'='1") == []
    with pytest.raises(AuditError):
        store.trace()


@pytest.mark.parametrize(
    "bad",
    [AuditEvent(kind="delete-everything"), AuditEvent(kind="label", ts=datetime(2026, 1, 1))],
)
def test_programming_errors_are_refused_and_nothing_is_stored(store: AuditStore, bad: AuditEvent) -> None:
    with pytest.raises(AuditError):
        store.record_many([AuditEvent(kind="label", produce_id="fine"), bad])
    assert store.count() == 0


@pytest.mark.parametrize(
    ("hostile", "field"),
    [
        (AuditEvent(kind="label", produce_id="x" * 5000), "produce_id"),
        (AuditEvent(kind="label", recipient="a\x00b"), "recipient"),
        (AuditEvent(kind="label", content_sha256="f" * 65), "content_sha256"),
        (AuditEvent(kind="label", detail={"blob": "x" * 70_000}), None),
        (AuditEvent(kind="label", detail={"nan": float("nan"), "nul": "a\x00"}), None),
    ],
)
def test_hostile_values_are_stored_cut_and_flagged_not_refused(
    store: AuditStore, hostile: AuditEvent, field: str | None
) -> None:
    """An event is evidence: a hostile ProduceID read from an upload must not lose the verdict it belongs
    to (the service answered 400 and a platform let the file through). It is stored, made storable."""
    [event_id] = store.record_many([hostile])
    [stored] = [e for e in store.events() if e.id == event_id]
    if field is not None:
        value = getattr(stored, field)
        assert "\x00" not in value and len(value) <= len(getattr(hostile, field))
        assert stored.detail["truncated"] == [field]
    else:
        assert len(json.dumps(stored.detail)) < 70_000 and "\\u0000" not in json.dumps(stored.detail)
    assert store.trace(produce_id="x\x00") == []  # a NUL identifier matches nothing (PostgreSQL would raise)


def test_export_streams_in_time_order(store: AuditStore) -> None:
    events = [AuditEvent(kind="label", produce_id=f"p{i}", ts=NOW - timedelta(hours=i)) for i in range(25)]
    store.record_many(events)
    got = list(store.events(batch=4))
    assert [e.produce_id for e in got] == [f"p{i}" for i in reversed(range(25))]
    window = list(store.events(since=NOW - timedelta(hours=5), until=NOW, kinds=["label"]))
    assert [e.produce_id for e in window] == ["p5", "p4", "p3", "p2", "p1"]


# ------------------------------------------------------------------------------------- retention
def test_retention_never_deletes_rows_younger_than_the_period(store: AuditStore) -> None:
    ages = {
        "ancient": timedelta(days=400),
        "just-old": timedelta(days=MIN_RETENTION_DAYS, seconds=1),
        "boundary": timedelta(days=MIN_RETENTION_DAYS),
        "young": timedelta(days=MIN_RETENTION_DAYS - 1),
        "new": timedelta(0),
    }
    store.record_many([AuditEvent(kind="export_unlabeled", produce_id=k, ts=NOW - v) for k, v in ages.items()])
    dry = purge(store, now=NOW, dry_run=True)
    assert (dry.deleted, store.count()) == (2, 5)
    result = purge(store, now=NOW)
    assert result.deleted == 2
    assert sorted(e.produce_id or "" for e in store.events()) == ["boundary", "new", "young"]
    # A later run with a later clock removes only what has aged out since.
    assert purge(store, now=NOW + timedelta(days=1)).deleted == 1
    assert purge(store, 400, now=NOW + timedelta(days=1)).deleted == 0


def test_retention_keeps_six_calendar_months_even_when_they_are_184_days(store: AuditStore) -> None:
    now = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)  # 1 July to 1 January: 184 days
    six_months = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert (now - six_months).days == 184
    ages = {"day-184": six_months + timedelta(seconds=1), "older": six_months - timedelta(seconds=1)}
    store.record_many([AuditEvent(kind="export_unlabeled", produce_id=k, ts=v) for k, v in ages.items()])
    result = purge(store, now=now)
    assert (result.cutoff, result.deleted) == (six_months, 1)
    assert [e.produce_id for e in store.events()] == ["day-184"]
    # a month without the day clamps earlier (31 August back to 29 February 2028 keeps more, not less)
    assert purge(store, now=datetime(2028, 8, 31, tzinfo=UTC), dry_run=True).cutoff == datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize("days", [0, -5, 30, 182])
def test_retention_below_six_months_is_refused(store: AuditStore, days: int) -> None:
    store.record(AuditEvent(kind="export_unlabeled", ts=NOW - timedelta(days=365)))
    with pytest.raises(RetentionError, match="183"):
        purge(store, days, now=NOW)
    assert store.count() == 1


def test_cli_retention_refuses_short_periods(tmp_path: Path) -> None:
    db = str(tmp_path / "a.sqlite")
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "retention", "--days", "90", "--db", db])
    assert result.exit_code == 2
    assert "183" in result.output
    assert runner.invoke(app, ["audit", "retention", "--db", db]).exit_code == 0


def test_cli_record_export_and_export(tmp_path: Path) -> None:
    db = str(tmp_path / "a.sqlite")
    image = tmp_path / "a.png"
    image.write_bytes((SAMPLES / "sample.png").read_bytes())
    write_label(image, AIGCLabel.for_producer(DEMO_PROVIDER_CODE))  # Art. 9 waives only the explicit label
    AuditStore(db).record_acceptance("acct-9", "0" * 64, "en")  # and needs the recipient's agreement
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "record-export", str(image), "--recipient", "acct-9", "--db", db])
    assert result.exit_code == 0, result.output
    out = runner.invoke(app, ["audit", "export", "--kind", "export_unlabeled", "--format", "csv", "--db", db])
    assert out.exit_code == 0, out.output
    assert "acct-9" in out.stdout and out.stdout.startswith("id,ts,kind")
    assert runner.invoke(app, ["audit", "trace", str(image), "--db", db]).exit_code == 0


# ------------------------------------------------------------------------------------- keys & schema
def test_keys_in_the_database(store: AuditStore) -> None:
    for entry in demo_registry():
        store.save_key(entry)
    store.save_key(next(iter(demo_registry())))  # idempotent
    loaded = store.key_registry()
    assert {e.key_id for e in loaded} == {e.key_id for e in demo_registry()}
    from aigclabel.signing import RegisteredKey

    stolen = RegisteredKey("001191440300708461136T1XGW3", next(iter(demo_registry())).public_key)
    with pytest.raises(AuditError):
        store.save_key(stolen)
    other = SigningKey.generate()
    store.save_key(RegisteredKey(DEMO_PROVIDER_CODE, other.public_key, pinned=False))
    assert len(store.key_registry()) == 3


def test_migrations_ship_in_the_package_and_run_both_ways(tmp_path: Path) -> None:
    versions = resources.files("aigclabel.audit") / "migrations" / "versions"
    assert any(p.name.endswith(".py") and p.name[0].isdigit() for p in versions.iterdir())
    store = AuditStore(tmp_path / "m.sqlite")
    assert store.schema_revision() == store.head_revision() is not None
    tables = set(inspect(store.engine).get_table_names())
    assert {"aigclabel_events", "aigclabel_keys", "alembic_version"} <= tables
    command.downgrade(store._alembic_config(), "base")
    assert "aigclabel_events" not in inspect(store.engine).get_table_names()
    store.migrate()
    assert store.schema_revision() == store.head_revision()
    # The schema refuses unknown kinds even when the application layer is bypassed.
    with store.engine.begin() as conn, pytest.raises(IntegrityError):
        conn.exec_driver_sql("INSERT INTO aigclabel_events (ts, kind, detail) VALUES ('2026-01-01', 'bogus', '{}')")
    store.close()


def test_sqlite_settings_for_concurrency(store: AuditStore) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 10_000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_default_location_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIGCLABEL_DB", raising=False)
    AuditStore().close()
    assert (tmp_path / "aigclabel-audit.sqlite").exists()
    monkeypatch.setenv("AIGCLABEL_DB", str(tmp_path / "env.sqlite"))
    AuditStore().close()
    assert (tmp_path / "env.sqlite").exists()


def test_unopenable_database_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "notadb.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(AuditError):
        AuditStore(tmp_path / "notadb.sqlite")


# ------------------------------------------------------------------------------------- concurrency
WRITERS, PER_WRITER = 8, 200


def _writer(url: str, worker: int, count: int) -> None:
    store = AuditStore(url)
    for i in range(count):
        store.record(AuditEvent(kind="label", produce_id=f"w{worker}-{i}"))
    store.close()


def check_concurrent_writers(url: str) -> None:
    """N processes x M single-event transactions: every event arrives exactly once."""
    AuditStore(url).close()  # migrate first, then fork with no open connections
    run_forked(_writer, [(url, w, PER_WRITER) for w in range(WRITERS)])
    store = AuditStore(url)
    assert store.count() == WRITERS * PER_WRITER
    ids = {e.produce_id for e in store.events(batch=5000)}
    assert ids == {f"w{w}-{i}" for w in range(WRITERS) for i in range(PER_WRITER)}
    store.close()


@pytest.mark.slow  # 8 processes x 200 commits: ~1-2 s idle, 10+ s on a loaded machine
def test_concurrent_sqlite_writers_lose_nothing(tmp_path: Path) -> None:
    check_concurrent_writers(str(tmp_path / "concurrent.sqlite"))


def check_concurrent_first_open(url: str) -> None:
    """Six processes open a store nobody has migrated yet: the schema is made once, no event is lost."""
    run_forked(_writer, [(url, w, 5) for w in range(6)])
    assert AuditStore(url).count() == 30


def test_concurrent_first_open_migrates_once(tmp_path: Path) -> None:
    check_concurrent_first_open(str(tmp_path / "race.sqlite"))


# ------------------------------------------------------------------------------------- crash
BATCH, COMMITTED_BATCHES = 50, 3


def _crashing_writer(url: str, pipe: Connection) -> None:
    store = AuditStore(url)
    for batch in range(COMMITTED_BATCHES):
        store.record_many([AuditEvent(kind="label", produce_id=f"b{batch}-{i}") for i in range(BATCH)])
        pipe.send(("committed", batch))

    @event.listens_for(Session, "before_commit")
    def _stall(session: Session) -> None:  # every row of the last batch is flushed, none committed
        session.flush()
        pipe.send(("mid-batch", None))
        signal.pause()

    store.record_many([AuditEvent(kind="label", produce_id=f"partial-{i}") for i in range(BATCH)])
    pipe.send(("committed", "partial"))  # never reached


def check_crash_mid_batch(url: str) -> None:
    """SIGKILL a writer inside a transaction: committed batches stay, the open batch vanishes."""
    AuditStore(url).close()
    parent, child = _fork.Pipe()
    proc = _fork.Process(target=_crashing_writer, args=(url, child))
    proc.start()
    messages = []
    while True:
        assert parent.poll(60), "writer stalled"
        message = parent.recv()
        messages.append(message)
        if message[0] == "mid-batch":
            break
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert messages[:COMMITTED_BATCHES] == [("committed", b) for b in range(COMMITTED_BATCHES)]
    store = AuditStore(url)
    ids = {e.produce_id for e in store.events()}
    assert ids == {f"b{b}-{i}" for b in range(COMMITTED_BATCHES) for i in range(BATCH)}
    store.record(AuditEvent(kind="verify"))  # the store is usable after the crash
    assert store.count() == COMMITTED_BATCHES * BATCH + 1
    store.close()


def test_crash_mid_batch_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    check_crash_mid_batch(str(path))
    # An independent reader (the sqlite3 module, no SQLAlchemy) sees the same rows and a sound file.
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM aigclabel_events WHERE produce_id LIKE 'partial-%'").fetchone() == (
            0,
        )
