"""Which restore points a job's retention removes, of one VM's points in one pool.

Kept: the newest `last` points, plus for each of the newest `daily` days (`weekly` ISO weeks,
`monthly` months) that have a point, the newest point of that day (week, month): the
grandfather-father-son rule as borg's `prune` and restic's `forget --keep-daily/weekly/monthly`
count it (a period with no backup is not counted; one point may be kept by several rules). Days
are those of TIME_ZONE. A point a kept one depends on (its chain back to the full point) stays
too, so pruning never breaks a chain. No database, no libvirt: points need only pk, parent_id
and created_at.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from django.utils import timezone

from backups.models import RestorePoint


@dataclass(frozen=True)
class Retention:
    last: int = 1  # never fewer than one: the newest point always stays
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def describe(self) -> str:
        parts = [f"the last {max(self.last, 1)}"]
        parts += [f"{count} {label}" for count, label in ((self.daily, "daily"), (self.weekly, "weekly"),
                                                         (self.monthly, "monthly")) if count]
        return ", ".join(parts)


def _day(moment: datetime) -> Hashable:
    return moment.date()


def _week(moment: datetime) -> Hashable:
    return moment.isocalendar()[:2]


def _month(moment: datetime) -> Hashable:
    return moment.year, moment.month


def _newest_per_period(newest_first: list[RestorePoint], count: int, period: Callable[[datetime], Hashable],
                       zone: tzinfo) -> list[RestorePoint]:
    chosen: list[RestorePoint] = []
    seen: set[Hashable] = set()
    for point in newest_first:
        if len(chosen) >= count:
            break
        key = period(timezone.localtime(point.created_at, zone))
        if key not in seen:
            seen.add(key)
            chosen.append(point)
    return chosen


def points_to_prune(points: Iterable[RestorePoint], rule: Retention | int,
                    zone: tzinfo | None = None) -> list[RestorePoint]:
    """The points to delete, newest first (so an incremental goes before the point it rests on).
    rule: a Retention, or a number: keep the last N only."""
    rule = rule if isinstance(rule, Retention) else Retention(last=rule)
    zone = zone or timezone.get_current_timezone()
    newest_first = sorted(points, key=lambda point: (point.created_at, point.pk), reverse=True)
    by_id = {point.pk: point for point in newest_first}
    wanted = newest_first[:max(rule.last, 1)]
    for count, period in ((rule.daily, _day), (rule.weekly, _week), (rule.monthly, _month)):
        wanted += _newest_per_period(newest_first, count, period, zone)
    kept: set[int] = set()
    for point in wanted:
        while point is not None and point.pk not in kept:
            kept.add(point.pk)
            point = by_id.get(point.parent_id)
    return [point for point in newest_first if point.pk not in kept]
