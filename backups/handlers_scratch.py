"""What a backups operation makes and removes again when it fails: a health check's temporary VM and
its overlays in the backup pool (virt/healthcheck.py), the flat copy a restore onto another host makes
beside the chain it reads (virt/backup_copies.py), a restore's new volumes until the new VM is
defined. The temporary ones are named from the operation (scratch_tag: decided before anything is
made); a restore's new volumes are recorded in the operation's arguments (MAKING) before it makes
them. When the worker dies midway, the sweep fails the operation and queues `backup.scratch_cleanup`
here, which removes exactly those, as `backup.cleanup` does for a backup's partial files."""
from __future__ import annotations

from collections.abc import Callable

from backups.copies import restore_source
from backups.models import RestorePoint
from hosts.connection import host_session
from hosts.models import Host
from hosts.targets import HOST
from operations.frame import operation_frame
from operations.models import Operation
from operations.registry import Report, after_sweep, operation_handler
from operations.services import OperationBusy, operation_enqueue, operation_remember
from virt import backup as virt_backup
from virt import backup_copies, healthcheck


MAKING = "making"  # the key of a restore's new volume names in its operation's arguments


def scratch_tag(operation: Operation) -> str:
    """What the names of the operation's temporary VMs and volumes are made from."""
    return f"op{operation.pk}"


def remember_making(operation: Operation) -> Callable[[list[str]], None]:
    """What a restore calls with the names of the volumes it is about to make (virt's before_making)."""
    return lambda names: operation_remember(operation_id=operation.pk, key=MAKING, value=names)


def scratch_cleanup_enqueue(*, host: Host, pool_name: str, after: Operation, prefix: str | None = None,
                            volumes: list[str] | None = None, unless_vm: str | None = None) -> Operation | None:
    """Queue the removal of what the interrupted operation `after` left in pool_name of host: the
    names starting with prefix, or the volumes it was making for the VM unless_vm (kept when that VM
    is defined). None when it could not be queued (then the failed operation's page names them)."""
    arguments = {"pool": pool_name, "after": after.pk, "prefix": prefix, "volumes": volumes or [], "unless_vm": unless_vm}
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
        if arguments.get("prefix"):
            gone = virt_backup.remove_scratch(conn, pool_name=pool_name, prefix=arguments["prefix"])
        else:
            gone = virt_backup.remove_unused(conn, pool_name=pool_name, names=arguments["volumes"],
                                             unless_vm=arguments["unless_vm"])
    if not gone:
        return f"The interrupted operation #{after} had left nothing in {pool_name}."
    return f"Removed what the interrupted operation #{after} left: {', '.join(gone)}"


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


@after_sweep("backup.restore_in_place")
def restore_in_place_swept(operation: Operation) -> None:
    _restore_swept(operation, operation.arguments.get("point"))


@after_sweep("backup.attach_disk")
def attach_disk_swept(operation: Operation) -> None:
    _restore_swept(operation, operation.arguments.get("point"))
