"""Which restore points a job's retention removes: all but the newest `keep` of one VM's points in
one pool, except that a point a kept one depends on (its chain back to the full point) stays, so
pruning never breaks a chain. No database, no libvirt: points need only pk, parent_id and
created_at."""
from __future__ import annotations

from collections.abc import Iterable

from backups.models import RestorePoint


def points_to_prune(points: Iterable[RestorePoint], keep: int) -> list[RestorePoint]:
    """The points to delete, newest first (so an incremental goes before the point it rests on)."""
    newest_first = sorted(points, key=lambda point: (point.created_at, point.pk), reverse=True)
    by_id = {point.pk: point for point in newest_first}
    kept: set[int] = set()
    for point in newest_first[:max(keep, 1)]:
        while point is not None and point.pk not in kept:
            kept.add(point.pk)
            point = by_id.get(point.parent_id)
    return [point for point in newest_first if point.pk not in kept]
