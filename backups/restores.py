"""Writes for restoring anywhere (issue 18): a restore point as a new VM on another host (or from a
copy), in place over the VM while it is shut off, and one of its disks attached to the running VM
read-only (and detached after). Each queues one operation; backups/handlers_restores.py does the work."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from backups.models import AttachedBackupDisk, RestorePoint, RestorePointCopy
from domains.choices import DomainState
from domains.models import Domain
from operations.models import Operation
from operations.services import operation_enqueue
from storage.models import StoragePool


class RestoreRefused(Exception):
    """The VM's state (as read under the row lock) does not allow this restore now."""


def restore_elsewhere_enqueue(*, point: RestorePoint, user: AbstractBaseUser | None, name: str, pool: StoragePool,
                              copy: RestorePointCopy | None = None, network: str | None = None) -> Operation:
    """Queue a restore of the point as a new VM named `name` on the pool's host (any host), read from the
    point's own pool or from one of its copies."""
    arguments = {"name": name, "host": pool.host_id, "pool": pool.name, "copy": copy.pk if copy else None,
                 "network": network}
    source = f" from the copy on {copy.host}" if copy else ""
    return operation_enqueue(kind="backup.restore_elsewhere", target=point, host=pool.host, user=user,
                             arguments=arguments, exclusive=True,
                             label=f"{point}: restore as {name} on {pool.host}{source}")


def in_place_refusal(domain: Domain) -> str | None:
    if domain.state != DomainState.SHUTOFF:
        return (f"{domain.name} is {domain.get_state_display().lower()}: shut it off first. Restoring in place "
                "overwrites its disks, which only a shut-off VM may have done to them.")
    return None


def _require_shut_off(domain: Domain) -> None:
    refusal = in_place_refusal(domain)
    if refusal:
        raise RestoreRefused(refusal)


def restore_in_place_enqueue(*, domain: Domain, point: RestorePoint, user: AbstractBaseUser | None,
                             copy: RestorePointCopy | None = None) -> Operation:
    """Queue the overwrite of the shut-off VM's disks from the point (its chain restarts: next backup full)."""
    return operation_enqueue(kind="backup.restore_in_place", target=domain, host=domain.host, user=user,
                             arguments={"point": point.pk, "copy": copy.pk if copy else None}, exclusive=True,
                             check=_require_shut_off, label=f"{domain.name}: restore in place from {point.name}")


def attach_refusal(domain: Domain) -> str | None:
    if domain.state != DomainState.RUNNING:
        return (f"{domain.name} is {domain.get_state_display().lower()}: a backup's disk is attached to a running "
                "VM, to copy files from.")
    return None


def _require_running(domain: Domain) -> None:
    refusal = attach_refusal(domain)
    if refusal:
        raise RestoreRefused(refusal)


def attach_enqueue(*, domain: Domain, point: RestorePoint, disk: str, pool: StoragePool,
                   user: AbstractBaseUser | None) -> Operation:
    """Queue: the point's disk `disk` copied into a new volume of `pool` (the VM's host) and attached read-only."""
    return operation_enqueue(kind="backup.attach_disk", target=domain, host=domain.host, user=user,
                             arguments={"point": point.pk, "disk": disk, "pool": pool.name}, exclusive=True,
                             check=_require_running, label=f"{domain.name}: attach {disk} of backup {point.name}")


def detach_enqueue(*, attached: AttachedBackupDisk, user: AbstractBaseUser | None) -> Operation:
    """Queue: the attached backup disk unplugged and its volume deleted."""
    domain = attached.domain
    return operation_enqueue(kind="backup.detach_disk", target=domain, host=domain.host, user=user,
                             arguments={"attached": attached.pk}, exclusive=True,
                             label=f"{domain.name}: detach and delete {attached.point_label} ({attached.device})")

