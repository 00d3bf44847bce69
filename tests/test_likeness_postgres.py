"""The likeness tables on a real PostgreSQL server (a throwaway cluster started by tests/pg.py): the
migration, the consent life cycle, concurrent appends that must not fork the chain, and tampering."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from aigclabel.audit import AuditEvent, AuditStore
from aigclabel.likeness.ledger import ConsentLedger
from aigclabel.signing import demo_signing_key
from tests.pg import running_server
from tests.test_likeness_ledger import Clock, check_concurrent_appends, exercise_ledger, fill

pytestmark = pytest.mark.interop  # a throwaway PostgreSQL server


@pytest.fixture(scope="module")
def databases() -> Iterator[Iterator[str]]:
    """Fresh databases (their URLs) on one server for the module."""
    for server in running_server():
        yield (server.create_database(f"likeness_{n}") for n in itertools.count())


@pytest.fixture
def url(databases: Iterator[str]) -> str:
    return next(databases)


def test_ledger_on_postgres(url: str) -> None:
    clock = Clock()
    store = AuditStore(url, clock=clock)
    assert store.schema_revision() == "0004"
    store.record(AuditEvent(kind="likeness", detail={"action": "gate"}))
    exercise_ledger(ConsentLedger(store, demo_signing_key()), clock)
    store.close()


def test_tampering_on_postgres(url: str) -> None:
    clock = Clock()
    store = AuditStore(url, clock=clock)
    ledger = ConsentLedger(store, demo_signing_key())
    fill(ledger, clock, 4)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM aigclabel_likeness_ledger WHERE seq = 4"))
    assert ledger.verify_chain().problems == ["the signed head names entry 4, the ledger ends at 3"]
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE aigclabel_likeness_ledger SET body = replace(body, 'studio', 'other') WHERE seq = 2"))
    assert any("entry 2 was altered" in p for p in ledger.verify_chain().problems)
    store.close()


def test_concurrent_appends_on_postgres(url: str) -> None:
    check_concurrent_appends(url)


def test_downgrade_and_upgrade_again(url: str) -> None:
    from alembic import command

    store = AuditStore(url)
    store.record(AuditEvent(kind="likeness", detail={"action": "scan"}))
    command.downgrade(store._alembic_config(), "0003")
    assert store.schema_revision() == "0003"
    store.migrate()
    assert store.schema_revision() == "0004"
    store.close()


def test_registry_scan_and_review_on_postgres(url: str) -> None:
    from aigclabel.likeness.registry import LikenessRegistry
    from aigclabel.likeness.scan import ReviewQueue, scan
    from tests.test_likeness_registry import KEY, Euclid, face

    store = AuditStore(url)
    ledger = ConsentLedger(store, demo_signing_key())
    registry = LikenessRegistry(store, KEY, ledger)
    registry.enrol("alice", [face(1)], protected=True)
    assert registry.templates()[0].vector.tobytes() == face(1).vector.tobytes()
    seen = scan(__file__, registry, ledger, encoders={"face": Euclid()}, find=lambda _p: [face(1, 0.1)])  # type: ignore[dict-item]
    [review_id] = seen.queued
    queue = ReviewQueue(ledger)
    assert queue.decide(review_id, "remove", "r1").status == "remove" and queue.list() == []
    assert registry.delete("alice") == 1 and registry.people() == []
    assert [e.kind for e in ledger.entries("alice")] == ["review", "delete"] and ledger.verify_chain().ok
    store.close()
