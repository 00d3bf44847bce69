"""The audit log: every label, verify, strip, label-free export and likeness event, traceable and retained.

SQLite by default (``aigclabel-audit.sqlite`` in the working directory, or ``$AIGCLABEL_DB``),
PostgreSQL (``postgresql://...``, install the ``postgres`` extra) for production. The schema is
managed by the Alembic migrations shipped in :mod:`aigclabel.audit.migrations`, applied on open.
"""

from ..errors import AuditError, RetentionError
from .events import file_event, verdict_event
from .models import EventKind
from .retention import MIN_RETENTION_DAYS, RetentionResult, purge
from .store import DB_ENV, DEFAULT_SQLITE_FILE, AcceptanceRecord, AuditEvent, AuditStore, file_sha256, resolve_url

__all__ = [
    "DB_ENV",
    "DEFAULT_SQLITE_FILE",
    "MIN_RETENTION_DAYS",
    "AcceptanceRecord",
    "AuditError",
    "AuditEvent",
    "AuditStore",
    "EventKind",
    "RetentionError",
    "RetentionResult",
    "file_event",
    "file_sha256",
    "purge",
    "resolve_url",
    "verdict_event",
]
