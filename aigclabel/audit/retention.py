"""Retention of audit events: Measures Art. 9 requires logs of label-free exports to be kept for at
least six months, so the retention period can never be set below :data:`MIN_RETENTION_DAYS`.

"Six months" is read as six calendar months back from the purge time, which is 181 to 184 days
(1 July to 1 January is 184), so a fixed 183-day floor would delete day-184 rows too early. The job
deletes only rows strictly older than the earlier of ``now - days`` and ``now`` minus six calendar
months (a day the earlier month lacks, such as 31 February, clamps to that month's last day, which
keeps more, never less).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import RetentionError
from .store import AuditStore

#: The shortest retention period a caller may ask for, in days; the cutoff is in any case never later
#: than :data:`MIN_RETENTION_MONTHS` calendar months before the purge time.
MIN_RETENTION_DAYS = 183

#: Art. 9: logs are kept for at least six months.
MIN_RETENTION_MONTHS = 6


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


def months_before(now: datetime, months: int) -> datetime:
    """``now`` moved back by whole calendar months (the day clamped to the target month's length)."""
    index = now.year * 12 + now.month - 1 - months
    year, month = divmod(index, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def cutoff_for(days: int, now: datetime) -> datetime:
    """The oldest timestamp kept for a period of ``days`` ending at ``now`` (never under six calendar months)."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise RetentionError("retention period must be a whole number of days")
    if days < MIN_RETENTION_DAYS:
        raise RetentionError(
            f"retention period {days} days is below the legal minimum of {MIN_RETENTION_DAYS} days "
            "(Measures Art. 9: at least six months)"
        )
    if now.tzinfo is None:
        raise RetentionError("the retention clock must be time-zone aware")
    return min(now - timedelta(days=days), months_before(now, MIN_RETENTION_MONTHS))


def purge(
    store: AuditStore, days: int = MIN_RETENTION_DAYS, *, now: datetime | None = None, dry_run: bool = False
) -> RetentionResult:
    """Delete events older than ``days`` (never fewer than 183, nor than six calendar months) before ``now``
    (default: the store clock)."""
    cutoff = cutoff_for(days, now if now is not None else store.clock())
    deleted = store.count_before(cutoff) if dry_run else store.delete_before(cutoff)
    return RetentionResult(cutoff=cutoff, days=days, deleted=deleted, dry_run=dry_run)
