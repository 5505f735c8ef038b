"""What a backups operation makes and removes again when it fails: a health check's temporary VM and
its overlays in the backup pool (virt/healthcheck.py), the flat copy a restore onto another host makes
beside the chain it reads (virt/backup_copies.py), a restore's new volumes until the new VM is
defined, a restore in place's new volumes until the VM is switched to them (then its old ones), and
an attached backup disk's volume. The temporary ones are named from the operation (scratch_tag:
decided before anything is made); the others are recorded in the operation's arguments (MAKING,
REPLACING) before they are made. When the worker dies midway, the sweep fails the operation and
queues `backup.scratch_cleanup` here, which removes exactly those, as `backup.cleanup` does for a
backup's partial files."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict

from backups.copies import restore_source
from backups.models import AttachedBackupDisk, RestorePoint
from domains.models import Domain
from hosts.connection import host_session
from hosts.models import Host
from hosts.targets import HOST
from operations.frame import operation_frame
from operations.models import Operation
from operations.registry import Report, after_sweep, operation_handler
from operations.services import OperationBusy, operation_enqueue, operation_remember
from virt import backup as virt_backup
from virt import backup_copies, healthcheck
from virt.backup_copies import DiskSwap
from virt.types import Connection


MAKING = "making"  # the key of a restore's (or an attach's) new volume names in its operation's arguments
REPLACING = "replacing"  # the key of a restore in place's disk swaps (virt.backup_copies.DiskSwap, as dicts)


def scratch_tag(operation: Operation) -> str:
    """What the names of the operation's temporary VMs and volumes are made from."""
    return f"op{operation.pk}"


def remember_making(operation: Operation) -> Callable[[list[str]], None]:
    """What a restore calls with the names of the volumes it is about to make (virt's before_making)."""
    return lambda names: operation_remember(operation_id=operation.pk, key=MAKING, value=names)


def remember_replacing(operation: Operation) -> Callable[[list[DiskSwap]], None]:
    """What a restore in place calls with its disk swaps before it makes any new volume."""
    return lambda swaps: operation_remember(operation_id=operation.pk, key=REPLACING,
                                            value=[asdict(swap) for swap in swaps])


def scratch_cleanup_enqueue(*, host: Host, pool_name: str, after: Operation, prefix: str | None = None,
                            volumes: list[str] | None = None, unless_vm: str | None = None,
                            attached_to: str | None = None, replacing: list[dict] | None = None,
                            vm_uuid: str | None = None) -> Operation | None:
    """Queue the removal of what the interrupted operation `after` left in pool_name of host: the
    names starting with prefix; or the volumes it was making for the VM unless_vm (kept when that VM
    is defined), or for the VM attached_to (unplugged from it first if need be); or, for the VM
    vm_uuid, the side of its disk swaps (`replacing`) it does not use. None when it could not be
    queued (then the failed operation's page names them)."""
    arguments = {"pool": pool_name, "after": after.pk, "prefix": prefix, "volumes": volumes or [],
                 "unless_vm": unless_vm, "attached_to": attached_to, REPLACING: replacing or [], "vm": vm_uuid}
    try:
        return operation_enqueue(kind="backup.scratch_cleanup", target=host, host=host, user=None,
                                 arguments=arguments, exclusive=False,
                                 label=f"{host}: remove what the interrupted operation #{after.pk} left in {pool_name}")
    except OperationBusy:
        return None


@operation_handler("backup.scratch_cleanup")
def backup_scratch_cleanup(operation: Operation, report: Report) -> str:
    arguments = operation.arguments
    pool_name, after = arguments["pool"], arguments["after"]
    with operation_frame(operation, report, HOST) as frame, host_session(frame.row) as conn:
        frame.report(20, f"Removing what operation #{after} left in {pool_name}")
        gone = _removed(conn, arguments)
    if arguments.get("attached_to"):
        AttachedBackupDisk.objects.filter(domain__host=frame.row, domain__uuid=arguments["attached_to"],
                                          pool_name=pool_name, volume__in=arguments["volumes"]).delete()
    if not gone:
        return f"The interrupted operation #{after} had left nothing in {pool_name}."
    return f"Removed what the interrupted operation #{after} left: {', '.join(gone)}"


def _removed(conn: Connection, arguments: dict) -> list[str]:
    """Carry out the clean-up the arguments describe (see scratch_cleanup_enqueue); what went, in words."""
    pool_name = arguments["pool"]
    if arguments.get("prefix"):
        return virt_backup.remove_scratch(conn, pool_name=pool_name, prefix=arguments["prefix"])
    if arguments.get(REPLACING):
        return backup_copies.settle_swaps(conn, domain_uuid=arguments["vm"],
                                          swaps=[DiskSwap(**swap) for swap in arguments[REPLACING]])
    if arguments.get("attached_to"):
        return [gone for volume in arguments["volumes"] for gone in backup_copies.undo_attach(
            conn, domain_uuid=arguments["attached_to"], pool_name=pool_name, volume=volume)]
    return virt_backup.remove_unused(conn, pool_name=pool_name, names=arguments["volumes"],
                                     unless_vm=arguments["unless_vm"])


def _point(point_id: int | None) -> RestorePoint | None:
    return RestorePoint.objects.filter(pk=point_id).select_related("host").first()


@after_sweep("backup.health_check")
def health_check_swept(operation: Operation) -> None:
    point = _point(operation.target_id)
    if point is not None:
        scratch_cleanup_enqueue(host=point.host, pool_name=point.pool_name,
                                prefix=healthcheck.scratch_prefix(scratch_tag(operation)), after=operation)


def _restore_swept(operation: Operation, point_id: int | None) -> None:
    """A restore that may have made a flat copy beside the chain it read (its point's pool, or a copy's)."""
    point = _point(point_id)
    if point is None:
        return
    source = restore_source(point, operation.arguments.get("copy"))
    scratch_cleanup_enqueue(host=source.host, pool_name=source.pool_name,
                            prefix=backup_copies.scratch_prefix(scratch_tag(operation)), after=operation)


def _new_volumes_swept(operation: Operation, host: Host | None) -> None:
    """A restore as a new VM that recorded the volumes it was making."""
    if host is not None and operation.arguments.get(MAKING):
        scratch_cleanup_enqueue(host=host, pool_name=operation.arguments["pool"], volumes=operation.arguments[MAKING],
                                unless_vm=operation.arguments["name"], after=operation)


@after_sweep("backup.restore_elsewhere")
def restore_elsewhere_swept(operation: Operation) -> None:
    _restore_swept(operation, operation.target_id)
    _new_volumes_swept(operation, Host.objects.filter(pk=operation.arguments.get("host")).first())


@after_sweep("backup.restore")
def restore_swept(operation: Operation) -> None:
    point = _point(operation.target_id)
    _new_volumes_swept(operation, point.host if point is not None else None)


def _domain(domain_id: int | None) -> Domain | None:
    return Domain.objects.filter(pk=domain_id).select_related("host").first()


@after_sweep("backup.restore_in_place")
def restore_in_place_swept(operation: Operation) -> None:
    _restore_swept(operation, operation.arguments.get("point"))
    domain, swaps = _domain(operation.target_id), operation.arguments.get(REPLACING)
    if domain is not None and swaps:
        scratch_cleanup_enqueue(host=domain.host, pool_name=", ".join(sorted({swap["pool"] for swap in swaps})),
                                replacing=swaps, vm_uuid=str(domain.uuid), after=operation)


@after_sweep("backup.attach_disk")
def attach_disk_swept(operation: Operation) -> None:
    _restore_swept(operation, operation.arguments.get("point"))
    domain = _domain(operation.target_id)
    if domain is not None and operation.arguments.get(MAKING):
        scratch_cleanup_enqueue(host=domain.host, pool_name=operation.arguments["pool"],
                                volumes=operation.arguments[MAKING], attached_to=str(domain.uuid), after=operation)
