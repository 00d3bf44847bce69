"""The audit store on a real PostgreSQL server (a throwaway cluster started by tests/pg.py).

PostgreSQL missing is a failure, not a skip: CI installs it via scripts/install-system-deps.sh.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from aigclabel.audit import AuditEvent, AuditStore, EventKind, purge
from aigclabel.signing import demo_registry
from tests.pg import PostgresServer, running_server
from tests.test_audit import check_concurrent_first_open, check_concurrent_writers, check_crash_mid_batch

pytestmark = pytest.mark.interop  # a throwaway PostgreSQL server

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    yield from running_server()


@pytest.fixture
def url(server: PostgresServer) -> str:
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


def test_schema_and_round_trip(url: str) -> None:
    store = AuditStore(url, clock=lambda: NOW)
    assert store.dialect == "postgresql"
    assert store.schema_revision() == store.head_revision()
    columns = {c["name"]: c for c in inspect(store.engine).get_columns("aigclabel_events")}
    assert "JSONB" in str(columns["detail"]["type"]).upper()
    event_id = store.record(
        AuditEvent(kind=EventKind.EXPORT_UNLABELED, produce_id="p-1", recipient="r", detail={"k": ["v", 1]})
    )
    [got] = store.trace(produce_id="p-1")
    assert (got.id, got.ts, got.recipient, got.detail) == (event_id, NOW, "r", {"k": ["v", 1]})
    long_id = store.record(AuditEvent(kind="label", produce_id="x" * 3000 + "\x00", detail={"n": "a\x00"}))
    [cut] = [e for e in store.events() if e.id == long_id]
    assert cut.detail["truncated"] == ["produce_id"] and cut.produce_id is not None and len(cut.produce_id) == 2048
    assert store.trace(produce_id="a\x00b") == []
    for entry in demo_registry():
        store.save_key(entry)
    assert {e.key_id for e in store.key_registry()} == {e.key_id for e in demo_registry()}
    store.close()


def test_retention_on_postgres(url: str) -> None:
    store = AuditStore(url)
    store.record_many(
        [AuditEvent(kind="export_unlabeled", produce_id=str(d), ts=NOW - timedelta(days=d)) for d in (0, 182, 183, 184)]
    )
    assert purge(store, now=NOW).deleted == 1
    assert sorted(e.produce_id or "" for e in store.events()) == ["0", "182", "183"]
    store.close()


@pytest.mark.slow  # 8 processes x 200 commits: ~1-2 s idle, 10+ s on a loaded machine
def test_concurrent_postgres_writers_lose_nothing(url: str) -> None:
    check_concurrent_writers(url)


def test_crash_mid_batch_postgres(url: str) -> None:
    check_crash_mid_batch(url)


def test_concurrent_first_open_migrates_once(server: PostgresServer) -> None:
    check_concurrent_first_open(server.create_database("race"))


def test_agreement_acceptances_on_postgres(url: str) -> None:
    store = AuditStore(url, clock=lambda: NOW)
    assert "aigclabel_acceptances" in inspect(store.engine).get_table_names()
    first = store.record_acceptance("u-1", "a" * 64, "zh-CN")
    assert store.record_acceptance("u-1", "a" * 64, "en") == first  # the first acceptance stands
    store.record_acceptance("u-1", "b" * 64, "en", ts=NOW + timedelta(days=1))
    assert [a.version for a in store.acceptance_of("u-1")] == ["b" * 64, "a" * 64]
    assert first.ts == NOW and store.acceptance_of("u-2") == []
    store.close()
