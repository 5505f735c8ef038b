"""Writes of the backups app: queuing "back up now" and "restore as a new VM" (one operation at a
time per VM, and per restore point), and storing a restore point the worker has written."""
from __future__ import annotations

import uuid as uuid_module

from django.contrib.auth.models import AbstractBaseUser
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.models import BackupJob, RestorePoint, RestorePointDisk
from domains.choices import DomainState
from domains.models import Domain
from operations.models import Operation
from operations.services import operation_enqueue
from storage.models import StoragePool
from virt.backup import BackupOutcome

# A backup job needs QEMU running (or paused); a shut-off VM's volumes are copied whole.
BACKUP_STATES = frozenset({DomainState.RUNNING, DomainState.BLOCKED, DomainState.PAUSED, DomainState.SHUTOFF})


class BackupRefused(Exception):
    """The VM's state (as read under the row lock) does not allow a backup now."""


def backup_state_refusal(domain: Domain) -> str | None:
    if domain.state not in BACKUP_STATES:
        return (f"{domain.name} is {domain.get_state_display().lower()}: a backup is taken of a running, paused "
                "or shut-off VM.")
    return None


def _backup_allowed(domain: Domain) -> None:
    refusal = backup_state_refusal(domain)
    if refusal:
        raise BackupRefused(refusal)


def backup_enqueue(*, domain: Domain, user: AbstractBaseUser | None, pool: StoragePool, job: BackupJob | None = None,
                   full_reason: str = "") -> Operation:
    """Queue a backup of the VM into the pool: incremental when its chain can go on there, else full.
    For a job's run: full_reason (not empty) asks for a new chain, and the point's older ones in the
    pool are pruned by the job's retention once it is saved."""
    arguments = {"pool": pool.name}
    if job is not None:
        arguments |= {"job": job.pk, "job_name": job.name, "keep_last": job.keep_last,
                      "retention": {"last": job.keep_last, "daily": job.keep_daily, "weekly": job.keep_weekly,
                                    "monthly": job.keep_monthly},
                      "health_check": job.health_check}
        if job.copy_host_id and job.copy_pool_name:  # backups/copies.py: queued once the point is saved
            arguments |= {"copy_host": job.copy_host_id, "copy_pool": job.copy_pool_name}
    if full_reason:
        arguments["full_reason"] = full_reason
    return operation_enqueue(kind="backup.create", target=domain, host=domain.host, user=user,
                             arguments=arguments, exclusive=True, check=_backup_allowed,
                             label=f"{domain.name}: back up into {pool.name}" + (f" ({job})" if job else ""))


def cleanup_enqueue(*, domain: Domain, pool_name: str) -> Operation:
    """Queue the removal of what an interrupted backup of the VM left (its job, files, checkpoint)."""
    return operation_enqueue(kind="backup.cleanup", target=domain, host=domain.host, user=None,
                             arguments={"pool": pool_name}, exclusive=True,
                             label=f"{domain.name}: clean up an interrupted backup in {pool_name}")


def restore_enqueue(*, point: RestorePoint, user: AbstractBaseUser | None, name: str,
                      pool: StoragePool) -> Operation:
    """Queue a restore of the point into a new VM named `name`, its disks in `pool` (of the point's host)."""
    return operation_enqueue(kind="backup.restore", target=point, host=point.host, user=user,
                             arguments={"name": name, "pool": pool.name}, exclusive=True,
                             label=f"{point}: restore as {name}")


def health_check_enqueue(*, point: RestorePoint, user: AbstractBaseUser | None) -> Operation:
    """Queue a health check of the point (backups/handlers_health.py): one operation at a time per point."""
    return operation_enqueue(kind="backup.health_check", target=point, host=point.host, user=user,
                             arguments={"timeout": settings.BACKUP_HEALTH_CHECK_TIMEOUT}, exclusive=True,
                             label=f"{point}: health check")


def restore_point_health_record(*, point: RestorePoint, passed: bool, seconds: float, note: str) -> None:
    """The latest health check's result, on the point (and so on its page and in the API)."""
    RestorePoint.objects.filter(pk=point.pk).update(
        health=RestorePoint.Health.PASSED if passed else RestorePoint.Health.FAILED, health_checked_at=timezone.now(),
        health_seconds=round(seconds, 1), health_note=note[:10000])


def restore_point_build(*, domain: Domain, name: str, pool_name: str, manifest: str, parent: RestorePoint | None,
                        outcome: BackupOutcome, note: str) -> tuple[RestorePoint, list[RestorePointDisk]]:
    """The restore point the worker has written and checksummed, not saved yet (its manifest is
    written from it first: a point is in the catalogue only once its manifest is in the pool)."""
    point = RestorePoint(
        host=domain.host, domain_uuid=domain.uuid, domain_name=domain.name, name=name,
        kind=outcome.kind, parent=parent, chain=parent.chain if parent else uuid_module.uuid4(),
        checkpoint=outcome.checkpoint, pool_name=pool_name, manifest=manifest,
        consistency=outcome.consistency[:255], note=note, domain_xml=outcome.domain_xml, seconds=outcome.seconds)
    disks = [RestorePointDisk(point=point, target=disk.target, source=disk.source, volume=disk.volume, path=disk.path,
                              format=disk.format, capacity=disk.capacity, size=disk.size, checksum=disk.checksum)
             for disk in outcome.disks]
    return point, disks


@transaction.atomic
def restore_point_save(point: RestorePoint, disks: list[RestorePointDisk]) -> RestorePoint:
    point.save()
    for disk in disks:
        disk.point = point
    RestorePointDisk.objects.bulk_create(disks)
    return point
