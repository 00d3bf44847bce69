"""The audit store: an append-mostly event log on SQLite (default) or PostgreSQL.

Why these settings: several processes (CLI runs, service workers) write one SQLite file at once, so
every transaction starts with ``BEGIN IMMEDIATE`` (a writer waits for the lock up to the busy
timeout instead of failing with ``SQLITE_BUSY`` when it upgrades a read snapshot), the journal is
WAL (readers never block the writer) and ``synchronous=FULL`` (a committed event survives a crash).
PostgreSQL needs none of that. The schema is owned by the Alembic migrations shipped in this
package; the store runs them on open, under a lock, so concurrent first opens are safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._extras import needs_extra
from ..errors import AuditError, AuditUnavailableError
from ..signing import KeyRegistry, PublicKey, RegisteredKey
from .models import MAX_ID_LENGTH, Acceptance, Event, EventKind, StoredKey

with needs_extra("audit"):
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import Engine, create_engine, delete, event, func, select, text, update
    from sqlalchemy.engine import Connection
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

#: Environment variable naming the database URL (or SQLite file path).
DB_ENV = "AIGCLABEL_DB"
#: SQLite file used when neither ``--db`` nor ``$AIGCLABEL_DB`` is given.
DEFAULT_SQLITE_FILE = "aigclabel-audit.sqlite"
#: How long a SQLite writer waits for the lock before giving up, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 60_000
#: Largest ``detail`` JSON accepted per event.
MAX_DETAIL_BYTES = 64 * 1024
_PG_MIGRATION_LOCK = 0x41494743  # "AIGC": advisory lock serialising concurrent migrations


@dataclass(frozen=True)
class AuditEvent:
    """One event as the store records and returns it (``id``/``ts`` are set by the store)."""

    kind: EventKind | str
    produce_id: str | None = None
    propagate_id: str | None = None
    content_sha256: str | None = None
    payload_digest: str | None = None
    watermark_payload: str | None = None
    provider_code: str | None = None
    recipient: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    ts: datetime | None = None
    id: int | None = None
    #: Whether the response this event belongs to reached the client (``None``: not a served request).
    delivered: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``audit export`` line format)."""
        return {
            "id": self.id,
            "ts": self.ts.isoformat() if self.ts else None,
            "kind": str(EventKind(self.kind).value),
            "produce_id": self.produce_id,
            "propagate_id": self.propagate_id,
            "content_sha256": self.content_sha256,
            "payload_digest": self.payload_digest,
            "watermark_payload": self.watermark_payload,
            "provider_code": self.provider_code,
            "recipient": self.recipient,
            "detail": dict(self.detail),
            "delivered": self.delivered,
        }


@dataclass(frozen=True)
class AcceptanceRecord:
    """A user's recorded acceptance of one agreement version."""

    id: int
    user: str
    version: str
    lang: str
    ts: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"id": self.id, "user": self.user, "version": self.version, "lang": self.lang, "ts": self.ts.isoformat()}


_LIMITS = {
    "produce_id": MAX_ID_LENGTH,
    "propagate_id": MAX_ID_LENGTH,
    "content_sha256": 64,
    "payload_digest": 64,
    "watermark_payload": 256,
    "provider_code": MAX_ID_LENGTH,
    "recipient": 512,
}


def resolve_url(url: str | Path | None = None) -> str:
    """The SQLAlchemy URL for ``url``, ``$AIGCLABEL_DB`` or the default SQLite file.

    A value without ``://`` is a SQLite file path; ``postgresql://`` selects the psycopg 3 driver.
    """
    chosen = str(url) if url is not None else os.environ.get(DB_ENV) or DEFAULT_SQLITE_FILE
    if "://" not in chosen:
        return f"sqlite:///{Path(chosen).expanduser()}"
    if chosen.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + chosen.split("://", 1)[1]
    return chosen


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a whole file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _storable(value: object, limit: int) -> str:
    """``value`` as text every backend stores: NUL replaced (PostgreSQL refuses it), cut to ``limit``."""
    text = value if isinstance(value, str) else str(value)
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _storable_detail(detail: Mapping[str, Any]) -> dict[str, Any]:
    """``detail`` as JSON every backend stores; too large, NUL-holding or unserialisable detail is cut."""
    try:
        text = json.dumps(dict(detail), ensure_ascii=False, allow_nan=False, default=str)
    except (TypeError, ValueError):
        text = json.dumps({"unserialisable": _storable(repr(dict(detail)), 4096)}, ensure_ascii=False)
    text = text.replace("\\u0000", "\\ufffd")
    if len(text.encode()) > MAX_DETAIL_BYTES:
        text = json.dumps({"excerpt": _storable(text, 4096), "cut_from_bytes": len(text.encode())}, ensure_ascii=False)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


class AuditStore:
    """Open (and migrate) the audit database at ``url``; see :func:`resolve_url`.

    ``clock`` supplies event timestamps; tests inject it instead of sleeping.
    """

    def __init__(
        self, url: str | Path | None = None, *, clock: Callable[[], datetime] = _utcnow, migrate: bool = True
    ) -> None:
        self.url = resolve_url(url)
        self.clock = clock
        try:
            self.engine = self._make_engine(self.url)
            if migrate:
                self.migrate()
        except SQLAlchemyError as exc:
            raise AuditError(f"cannot open audit database: {exc.__class__.__name__}: {exc}") from None
        except ImportError as exc:
            raise AuditError(
                f"no database driver for {self.url.split(':', 1)[0]} ({exc.name}); for PostgreSQL "
                "install aigclabel[postgres]"
            ) from None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @staticmethod
    def _make_engine(url: str) -> Engine:
        if not url.startswith("sqlite"):
            # A bounded connect: a database that does not answer is an outage to report, not a hang.
            options = {"connect_timeout": 5} if url.startswith("postgresql") else {}
            return create_engine(url, pool_pre_ping=True, connect_args=options)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN IMMEDIATE ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    # ------------------------------------------------------------------ schema
    def _alembic_config(self, connection: Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", "aigclabel.audit:migrations")
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` before the first migration)."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        """The newest revision this package ships."""
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (no-op when it is there already)."""
        if self.schema_revision() == self.head_revision():
            return
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            command.upgrade(self._alembic_config(conn), "head")

    # ------------------------------------------------------------------ events
    def _row(self, item: AuditEvent) -> Event:
        # An event is evidence: a hostile value (a 3,000-character or NUL-holding ProduceID read from an
        # upload) must not make the write fail, or the verdict that goes with it is lost. Values are made
        # storable (NUL replaced, text cut to the column) and the event says which fields were changed.
        # Only a programming error (unknown kind, naive timestamp) is refused.
        try:
            kind = EventKind(item.kind).value
        except ValueError:
            raise AuditError(f"unknown event kind {item.kind!r}") from None
        ts = item.ts if item.ts is not None else self.clock()
        if ts.tzinfo is None:
            raise AuditError("event timestamps must be time-zone aware")
        values: dict[str, Any] = {}
        changed: list[str] = []
        for name, limit in _LIMITS.items():
            value = getattr(item, name)
            if value is not None:
                cleaned = _storable(value, limit)
                if cleaned != value:
                    changed.append(name)
                value = cleaned
            values[name] = value
        detail = _storable_detail(item.detail)
        if changed:
            detail["truncated"] = changed
        return Event(ts=ts, kind=kind, detail=detail, delivered=item.delivered, **values)

    def record(self, item: AuditEvent) -> int:
        """Append one event in its own transaction; returns its id."""
        return self.record_many([item])[0]

    def record_many(self, items: Iterable[AuditEvent]) -> list[int]:
        """Append events in ONE transaction: after a crash either all of them are stored or none."""
        rows = [self._row(item) for item in items]
        try:
            with Session(self.engine) as session, session.begin():
                session.add_all(rows)
                session.flush()
                return [row.id for row in rows]
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(f"cannot write audit events: {exc.__class__.__name__}") from exc

    def mark_delivered(self, ids: Iterable[int]) -> None:
        """Record that the responses of events ``ids`` were handed to the client in full."""
        wanted = list(ids)
        if not wanted:
            return
        try:
            with Session(self.engine) as session, session.begin():
                session.execute(update(Event).where(Event.id.in_(wanted)).values(delivered=True))
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(f"cannot update audit events: {exc.__class__.__name__}") from exc

    def ping(self) -> None:
        """Raise :class:`AuditUnavailableError` unless the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(f"audit database unavailable: {exc.__class__.__name__}") from exc

    @staticmethod
    def _event(row: Event) -> AuditEvent:
        return AuditEvent(
            kind=EventKind(row.kind),
            produce_id=row.produce_id,
            propagate_id=row.propagate_id,
            content_sha256=row.content_sha256,
            payload_digest=row.payload_digest,
            watermark_payload=row.watermark_payload,
            provider_code=row.provider_code,
            recipient=row.recipient,
            detail=row.detail,
            ts=row.ts,
            id=row.id,
            delivered=row.delivered,
        )

    def trace(
        self,
        *,
        produce_id: str | None = None,
        content_sha256: str | None = None,
        payload_digest: str | None = None,
        watermark_payload: str | None = None,
        propagate_id: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEvent]:
        """Events matching ANY of the given identifiers, oldest first."""
        given = [
            (column, value)
            for column, value in (
                (Event.produce_id, produce_id),
                (Event.content_sha256, content_sha256.lower() if content_sha256 else None),
                (Event.payload_digest, payload_digest.lower() if payload_digest else None),
                (Event.watermark_payload, watermark_payload),
                (Event.propagate_id, propagate_id),
            )
            if value
        ]
        if not given:
            raise AuditError("trace needs a ProduceID, PropagateID, content hash, payload digest or watermark payload")
        # A value no stored row can hold (NUL, longer than the column) matches nothing; sent as it is,
        # PostgreSQL would refuse the NUL with an error instead of an empty answer.
        criteria = [column == value for column, value in given if "\x00" not in value and len(value) <= MAX_ID_LENGTH]
        if not criteria:
            return []
        from sqlalchemy import or_

        query = select(Event).where(or_(*criteria)).order_by(Event.ts, Event.id).limit(limit)
        try:
            with Session(self.engine) as session:
                return [self._event(row) for row in session.scalars(query)]
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(f"cannot read audit events: {exc.__class__.__name__}") from exc

    def events(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        kinds: Sequence[EventKind | str] | None = None,
        batch: int = 1000,
    ) -> Iterator[AuditEvent]:
        """Stream events in time order, ``since <= ts < until``, fetching ``batch`` rows at a time."""
        last: tuple[datetime, int] | None = None
        while True:
            query = select(Event).order_by(Event.ts, Event.id).limit(batch)
            if since is not None:
                query = query.where(Event.ts >= since)
            if until is not None:
                query = query.where(Event.ts < until)
            if kinds:
                query = query.where(Event.kind.in_([EventKind(k).value for k in kinds]))
            if last is not None:
                query = query.where((Event.ts > last[0]) | ((Event.ts == last[0]) & (Event.id > last[1])))
            with Session(self.engine) as session:
                rows = [self._event(row) for row in session.scalars(query)]
            yield from rows
            if len(rows) < batch:
                return
            tail = rows[-1]
            assert tail.ts is not None and tail.id is not None
            last = (tail.ts, tail.id)

    def count(self, kind: EventKind | str | None = None) -> int:
        """Number of stored events (of one kind)."""
        query = select(func.count()).select_from(Event)
        if kind is not None:
            query = query.where(Event.kind == EventKind(kind).value)
        with Session(self.engine) as session:
            return int(session.scalar(query) or 0)

    def time_range(self) -> tuple[datetime, datetime] | None:
        """Timestamps of the oldest and newest stored event (``None`` when there is none)."""
        with Session(self.engine) as session:
            first, last = session.execute(select(func.min(Event.ts), func.max(Event.ts))).one()
        return None if first is None else (first.replace(tzinfo=UTC), last.replace(tzinfo=UTC))

    def delete_before(self, cutoff: datetime, *, batch: int = 5000) -> int:
        """Delete events with ``ts < cutoff`` in bounded batches; use :mod:`.retention`, not this."""
        deleted = 0
        while True:
            with Session(self.engine) as session, session.begin():
                ids = list(session.scalars(select(Event.id).where(Event.ts < cutoff).order_by(Event.id).limit(batch)))
                if not ids:
                    return deleted
                session.execute(delete(Event).where(Event.id.in_(ids)))
                deleted += len(ids)

    def count_before(self, cutoff: datetime) -> int:
        """How many events are older than ``cutoff``."""
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(Event).where(Event.ts < cutoff)) or 0)

    # ------------------------------------------------------------------ agreement acceptances
    def record_acceptance(self, user: str, version: str, lang: str, *, ts: datetime | None = None) -> AcceptanceRecord:
        """Record that ``user`` accepted agreement ``version`` (SHA-256 hex of the clause text) in ``lang``.

        Accepting the same version again keeps the first record and returns it.
        """
        version = version.lower().removeprefix("sha256:")
        if len(version) != 64 or any(c not in "0123456789abcdef" for c in version):
            raise AuditError(f"an agreement version is the SHA-256 of its text (64 hex digits), not {version!r}")
        if not user or len(user) > 512 or "\x00" in user:
            raise AuditError("a user id is 1 to 512 characters without NUL")
        when = ts if ts is not None else self.clock()
        if when.tzinfo is None:
            raise AuditError("acceptance timestamps must be time-zone aware")
        try:
            with Session(self.engine) as session, session.begin():
                row = session.scalar(
                    select(Acceptance).where(Acceptance.user_id == user, Acceptance.version == version)
                )
                if row is None:
                    row = Acceptance(user_id=user, version=version, lang=lang, ts=when)
                    session.add(row)
                    session.flush()
                return AcceptanceRecord(row.id, row.user_id, row.version, row.lang, row.ts)
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(f"cannot record the acceptance: {exc.__class__.__name__}") from exc

    def acceptance_of(self, user: str | None = None) -> list[AcceptanceRecord]:
        """Acceptances of ``user`` (of everyone when ``None``), newest first."""
        query = select(Acceptance).order_by(Acceptance.ts.desc(), Acceptance.id.desc())
        if user is not None:
            query = query.where(Acceptance.user_id == user)
        try:
            with Session(self.engine) as session:
                return [AcceptanceRecord(r.id, r.user_id, r.version, r.lang, r.ts) for r in session.scalars(query)]
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(f"cannot read acceptances: {exc.__class__.__name__}") from exc

    # ------------------------------------------------------------------ keys
    def save_key(self, entry: RegisteredKey) -> None:
        """Store a key-registry entry (replacing one with the same key id)."""
        with Session(self.engine) as session, session.begin():
            existing = session.scalar(select(StoredKey).where(StoredKey.key_id == entry.key_id))
            if existing is not None and existing.provider != entry.provider:
                raise AuditError(f"key {entry.key_id} is already registered to {existing.provider}")
            row = existing or StoredKey(key_id=entry.key_id, added=self.clock())
            row.provider = entry.provider
            row.alg = entry.public_key.alg.value
            row.public_key = entry.public_key.hex
            row.pinned = entry.pinned
            row.note = entry.note
            session.add(row)

    def key_registry(self) -> KeyRegistry:
        """Every stored key as a :class:`KeyRegistry`."""
        registry = KeyRegistry()
        with Session(self.engine) as session:
            for row in session.scalars(select(StoredKey).order_by(StoredKey.id)):
                registry.add(
                    row.provider, PublicKey.from_hex(row.alg, row.public_key), pinned=row.pinned, note=row.note
                )
        return registry

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
