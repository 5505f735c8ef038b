"""Reads of the backups app; what a user may see comes from accounts.access."""
from __future__ import annotations

from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from accounts.access import VIEW, backup_jobs_for, domains_for, operations_for, restore_points_for
from backups.models import BackupJob, RestorePoint, RestorePointCopy, RestorePointDisk
from domains.models import Domain
from operations.choices import OperationState
from operations.models import Operation


def restore_points_list(*, user, domain: Domain) -> QuerySet[RestorePoint]:
    """The VM's restore points the user may see, newest first, with their disks and parents."""
    return (restore_points_for(user, domain).select_related("parent", "host")
            .prefetch_related(Prefetch("disks", queryset=RestorePointDisk.objects.order_by("target")),
                              Prefetch("copies", queryset=RestorePointCopy.objects.select_related("host"))))


def failed_job_backups(user) -> list[Operation]:
    """Per VM (that still exists) whose backup by a job failed and which has had no good backup since
    (by a job or not): its latest failed backup, as the user may see operations."""
    good_since = Operation.objects.filter(kind="backup.create", state=OperationState.SUCCEEDED, target_type="domain",
                                          target_id=OuterRef("target_id"), created_at__gt=OuterRef("created_at"))
    failed = (operations_for(user)
              .filter(kind="backup.create", state=OperationState.FAILED, target_type="domain",
                      arguments__has_key="job", target_id__in=Domain.objects.values("pk"))
              .exclude(Exists(good_since)).order_by("target_id", "-created_at"))
    latest: dict[int, Operation] = {}
    for operation in failed:
        latest.setdefault(operation.target_id, operation)
    return sorted(latest.values(), key=lambda operation: operation.target_label)


def jobs_that_skipped(user) -> QuerySet[BackupJob]:
    """The jobs the user may see whose last run skipped a VM (busy, or in a state no backup is taken in)."""
    return backup_jobs_for(user).exclude(last_run_skipped=[]).filter(enabled=True)


def failed_health_checks(user) -> list[tuple[Domain, RestorePoint]]:
    """Per VM the user may see: its most recently health-checked restore point, when that check
    failed (a later passed check, of any of its points, clears it)."""
    visible = domains_for(user, VIEW)
    checked = (RestorePoint.objects.filter(domain_uuid__in=visible.values("uuid")).exclude(health="")
               .only("id", "domain_uuid", "name", "health", "health_note", "health_checked_at")
               .order_by("domain_uuid", "-health_checked_at", "-id"))
    latest: dict = {}
    for point in checked:
        latest.setdefault(point.domain_uuid, point)
    failed = {uuid: point for uuid, point in latest.items() if point.health == RestorePoint.Health.FAILED}
    domains = {domain.uuid: domain for domain in visible.filter(uuid__in=list(failed)).select_related("host")}
    return sorted(((domains[uuid], point) for uuid, point in failed.items() if uuid in domains),
                  key=lambda pair: pair[0].name)
