"""Reads of the backups app; what a user may see comes from accounts.access."""
from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.access import restore_points_for
from backups.models import RestorePoint, RestorePointDisk
from domains.models import Domain


def restore_points_list(*, user, domain: Domain) -> QuerySet[RestorePoint]:
    """The VM's restore points the user may see, newest first, with their disks and parents."""
    return (restore_points_for(user, domain).select_related("parent", "host")
            .prefetch_related(Prefetch("disks", queryset=RestorePointDisk.objects.order_by("target"))))
