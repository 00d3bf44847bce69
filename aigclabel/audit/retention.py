"""Retention of audit events: Measures Art. 9 requires logs of label-free exports to be kept for at
least six months, so the retention period can never be set below :data:`MIN_RETENTION_DAYS`.

Six months is read as 183 days (the longest six-month span), so no reading of "six months" is
shortened. The job deletes only rows strictly older than ``now - days``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import AIGCLabelError
from .store import AuditStore

#: The shortest retention period accepted, in days (Art. 9: at least six months).
MIN_RETENTION_DAYS = 183


class RetentionError(AIGCLabelError, ValueError):
    """A retention period shorter than the law allows, or a bad clock value."""

    exit_code = 2


@dataclass(frozen=True)
class RetentionResult:
    """What a retention run did (or, on a dry run, would do)."""

    cutoff: datetime
    days: int
    deleted: int
    dry_run: bool

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"cutoff": self.cutoff.isoformat(), "days": self.days, "deleted": self.deleted, "dry_run": self.dry_run}


def cutoff_for(days: int, now: datetime) -> datetime:
    """The oldest timestamp kept for a period of ``days`` ending at ``now``."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise RetentionError("retention period must be a whole number of days")
    if days < MIN_RETENTION_DAYS:
        raise RetentionError(
            f"retention period {days} days is below the legal minimum of {MIN_RETENTION_DAYS} days "
            "(Measures Art. 9: at least six months)"
        )
    if now.tzinfo is None:
        raise RetentionError("the retention clock must be time-zone aware")
    return now - timedelta(days=days)


def purge(
    store: AuditStore, days: int = MIN_RETENTION_DAYS, *, now: datetime | None = None, dry_run: bool = False
) -> RetentionResult:
    """Delete events older than ``days`` (never fewer than 183) before ``now`` (default: the store clock)."""
    cutoff = cutoff_for(days, now if now is not None else store.clock())
    deleted = store.count_before(cutoff) if dry_run else store.delete_before(cutoff)
    return RetentionResult(cutoff=cutoff, days=days, deleted=deleted, dry_run=dry_run)
