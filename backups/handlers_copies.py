"""Operation handler `backup.copy`: a restore point's files and manifest copied into a pool of another
host through storage streams (virt/backup_copies.py), each file checked against the catalogue as it
is read and read back on the copy host; the copy recorded in the catalogue (RestorePointCopy). The
points it rests on that have no copy there yet are copied first, oldest first, so the copied chain
is whole. A failure leaves no file of the point being copied in the copy pool.

Two copies into one pool may run at once (the copies of two points of one chain both lack its full
point there): each point's copy into a pool is made under a lock of its own, held across workers and
machines (operations/locks.py), and a copy that got the lock after another made it uses that one."""
from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from backups.copies import copy_manifest
from backups.handlers import RESTORE_POINT
from backups.models import RestorePoint, RestorePointCopy
from hosts.connection import connect_uri, host_session
from hosts.models import Host
from operations.frame import operation_frame
from operations.locks import LockTimeout, lock_held
from operations.models import Operation
from operations.registry import Report, operation_handler
from storage.sync import pool_refresh_row
from storage.models import StoragePool
from virt import backup as virt_backup
from virt import backup_copies
from virt.errors import OperationInvalid
from virt.types import Connection

COPY_LOCK_WAIT = 6 * 3600.0  # seconds a copy waits for another's copy of the same point into the same pool


@operation_handler("backup.copy")
def backup_copy(operation: Operation, report: Report) -> str:
    host = Host.objects.get(pk=operation.arguments["host"])
    pool_name = operation.arguments["pool"]
    with operation_frame(operation, report, RESTORE_POINT) as frame:
        point = frame.row
        if point.host_id == host.pk:
            raise virt_backup.OperationInvalid("A second copy goes to a pool of another host than the backup's own.")
        lineage = point.lineage()
        copied: list[RestorePoint] = []
        with host_session(host) as target_conn:
            for index, link in enumerate(lineage):
                step = 2 + 90 * index // len(lineage)
                with _point_copy_lock(link, host, pool_name, lambda: frame.report(
                        step, f"Waiting for another operation's copy of {link.name} to {pool_name} on {host}")):
                    if RestorePointCopy.objects.filter(point=link, host=host, pool_name=pool_name).exists():
                        continue
                    frame.report(step, f"Copying {link.name} ({index + 1} of {len(lineage)}) to {pool_name} on {host}")
                    _copy_point(frame.conn, target_conn, link, host=host, pool_name=pool_name)
                    copied.append(link)
            _refresh_pool_row(target_conn, host, pool_name)
    total = sum(disk.size for link in copied for disk in link.disks.all())
    return (f"Copied {len(copied)} restore point(s) ({total / 2**20:.1f} MiB) to {pool_name} on {host}; "
            "each file's checksum matched the catalogue, and its copy read back as sent")


@contextmanager
def _point_copy_lock(point: RestorePoint, host: Host, pool_name: str, on_wait: Callable[[], None]) -> Iterator[None]:
    """Held while the point's copy into pool_name of host is looked for and made."""
    try:
        with lock_held(f"backup-copy:{host.pk}:{pool_name}:{point.pk}", wait=COPY_LOCK_WAIT, on_wait=on_wait):
            yield
    except LockTimeout as exc:
        raise OperationInvalid(f"Another operation's copy of {point.name} to {pool_name} on {host} did not end "
                               f"({exc}): nothing more was copied.") from exc


def _copy_point(source_conn: Connection, target_conn: Connection, point: RestorePoint, *, host: Host,
                pool_name: str) -> RestorePointCopy:
    disks = list(point.disks.all())
    folder = backup_copies.pool_path(target_conn, pool_name)
    parent_volumes = {disk.target: disk.volume for disk in point.parent.disks.all()} if point.parent_id else {}
    copied: dict[str, tuple[str, str]] = {}
    made: list[str] = []
    try:
        for disk in disks:
            backing = posixpath.join(folder, parent_volumes[disk.target]) if point.parent_id else None
            result = backup_copies.copy_file(
                source_conn=source_conn, source_uri=connect_uri(point.host), source_pool=point.pool_name,
                name=disk.volume, target_conn=target_conn, target_uri=connect_uri(host), target_pool=pool_name,
                expected_checksum=disk.checksum, backing=backing)
            made.append(result.volume)
            copied[disk.target] = (result.path, result.checksum)
        manifest = point.manifest
        virt_backup.write_file(target_conn, pool_name, manifest, copy_manifest(point, disks, copied))
        made.append(manifest)
        return RestorePointCopy.objects.create(point=point, host=host, pool_name=pool_name, manifest=manifest,
                                               checksums={target: checksum for target, (_, checksum) in copied.items()})
    except BaseException:  # nothing half-kept: the point's copied files go
        virt_backup.delete_files(target_conn, pool_name, made)
        raise


def _refresh_pool_row(conn: Connection, host: Host, pool_name: str) -> None:
    row = StoragePool.objects.filter(host=host, name=pool_name).first()
    if row is not None:
        pool_refresh_row(conn, row)
