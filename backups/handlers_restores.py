"""Operation handlers for restoring anywhere (backups/restores.py queues them):

- `backup.restore_elsewhere`: a restore point as a new VM on any host, read from the point's own pool
  or a copy's; the chain is verified against the catalogue where it is read, flattened there, and
  streamed to the new host's pool when that is another host (virt/backup_copies.py);
- `backup.restore_in_place`: the shut-off VM's disks replaced by new volumes restored from the point
  (the VM is switched to them once all are whole, then the old ones go); its checkpoints are
  forgotten, so its next backup starts a new chain (a full one, whose note says the checkpoint went);
- `backup.attach_disk` / `backup.detach_disk`: one disk of a point copied into a volume of the VM's
  own and attached read-only to the running VM; unplugged and deleted after.
"""
from __future__ import annotations

from contextlib import ExitStack

from backups.copies import RestoreSource, restore_source
from backups.handlers_scratch import remember_making, remember_replacing, scratch_tag
from backups.models import AttachedBackupDisk, RestorePoint
from domains.handlers import DOMAIN
from domains.sync import host_vms_and_disks_reconcile
from hosts.connection import connect_uri, host_session
from hosts.models import Host
from operations.frame import Target, operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from storage.records import volume_record_made
from virt import backup as virt_backup
from virt import backup_copies
from virt.backup_copies import HostEnd
from virt.types import Connection


# A restore from a copy must not need the point's own host (it may be the one that is gone): the
# handler connects to the host it reads from and the host it restores on, and no other.
POINT_ANYWHERE = Target[RestorePoint](rows=lambda: RestorePoint.objects.select_related("host"))


def _verified(conn: Connection, source: RestoreSource, report: Report, *, checksums: bool = True) -> None:
    for index, (target, chain) in enumerate(sorted(source.chains.items())):
        report(2 + 6 * index // len(source.chains),
               f"Checking the {len(chain)} file(s) of {target} in {source.label} against the catalogue")
        virt_backup.verify_chain(conn, source.pool_name, chain, checksums=checksums)


def _connection(stack: ExitStack, opened: dict[int, Connection], host: Host) -> Connection:
    """One connection per host for the operation (the frame's own, when it is that host's)."""
    if host.pk not in opened:
        opened[host.pk] = stack.enter_context(host_session(host))
    return opened[host.pk]


@operation_handler("backup.restore_elsewhere")
def backup_restore_elsewhere(operation: Operation, report: Report) -> str:
    arguments = operation.arguments
    new_name, pool_name = arguments["name"], arguments["pool"]
    host = Host.objects.get(pk=arguments["host"])
    with operation_frame(operation, report, POINT_ANYWHERE) as frame, ExitStack() as stack:
        point: RestorePoint = frame.row
        opened: dict[int, Connection] = {}
        source = restore_source(point, arguments.get("copy"))
        source_conn = _connection(stack, opened, source.host)
        target_conn = _connection(stack, opened, host)
        same_host = source.host.pk == host.pk  # there, the checksums are read while libvirt copies
        _verified(source_conn, source, frame.report, checksums=not same_host)
        untrusted = point.definition_from_manifest
        emulator = (host.capabilities or {}).get("emulator")
        if same_host:
            new_uuid, restored = virt_backup.restore_as_new_vm(
                target_conn, domain_xml=point.domain_xml, backup_pool=source.pool_name, tops=source.tops(),
                target_pool=pool_name, new_name=new_name, progress=frame.report, untrusted=untrusted,
                emulator=emulator, verify_files=[file for chain in source.chains.values() for file in chain],
                before_making=remember_making(operation))
        else:
            new_uuid, restored = backup_copies.restore_on_other_host(
                HostEnd(source_conn, source.uri, source.pool_name), HostEnd(target_conn, connect_uri(host), pool_name),
                domain_xml=point.domain_xml, tops=source.tops(), new_name=new_name, progress=frame.report,
                tag=scratch_tag(operation), untrusted=untrusted, emulator=emulator, network=arguments.get("network"),
                before_making=remember_making(operation))
    for disk in restored:
        volume_record_made(host=host, key=disk.key, format=virt_backup.BACKUP_FORMAT, owner_uuid=new_uuid)
    report(95, f"Adding {new_name} to the inventory of {host}")
    host_vms_and_disks_reconcile(host=host)
    return (f"Restored {point.domain_name}'s {point.kind} backup {point.name} from {source.label} as {new_name} on "
            f"{host}: {len(restored)} disk(s) into {pool_name}, from files whose checksums matched the catalogue; "
            "each copy was checked where it was written")


@operation_handler("backup.restore_in_place")
def backup_restore_in_place(operation: Operation, report: Report) -> str:
    point = RestorePoint.objects.select_related("host").get(pk=operation.arguments["point"])
    with operation_frame(operation, report, DOMAIN) as frame, ExitStack() as stack:
        domain = frame.row
        source = restore_source(point, operation.arguments.get("copy"))
        source_conn = _connection(stack, {domain.host_id: frame.conn}, source.host)
        _verified(source_conn, source, frame.report)
        swaps = backup_copies.restore_in_place(
            HostEnd(source_conn, source.uri, source.pool_name), frame.conn, connect_uri(domain.host), frame.handle,
            tops=source.tops(), same_host=source.host.pk == domain.host_id, progress=frame.report,
            tag=scratch_tag(operation), before_making=remember_replacing(operation))
    for swap in swaps:  # the VM's own volumes, as the ones they replace were
        volume_record_made(host=domain.host, key=swap.key, format=swap.format, owner_uuid=domain.uuid)
    host_vms_and_disks_reconcile(host=domain.host)
    replaced = ", ".join(f"{swap.disk} ({swap.old} -> {swap.new})" for swap in swaps)
    return (f"Restored {domain.name}'s disks in place from its {point.kind} backup {point.name} ({source.label}): "
            f"{replaced}; checksums matched the catalogue. Its backup chain restarts: the next backup is full, "
            "as the checkpoints went with the old disks")


@operation_handler("backup.attach_disk")
def backup_attach_disk(operation: Operation, report: Report) -> str:
    arguments = operation.arguments
    point = RestorePoint.objects.select_related("host").get(pk=arguments["point"])
    with operation_frame(operation, report, DOMAIN) as frame, ExitStack() as stack:
        domain = frame.row
        source = restore_source(point)
        chain = {arguments["disk"]: source.chains[arguments["disk"]]}
        source_conn = _connection(stack, {domain.host_id: frame.conn}, source.host)
        _verified(source_conn, RestoreSource(host=source.host, pool_name=source.pool_name, chains=chain,
                                             label=source.label), frame.report)
        name = f"{domain.name}-backup-{point.name}-{arguments['disk']}.qcow2"
        attached = backup_copies.attach_point_disk(
            HostEnd(source_conn, source.uri, source.pool_name),
            HostEnd(frame.conn, connect_uri(domain.host), arguments["pool"]), frame.handle,
            top=chain[arguments["disk"]][-1].volume, name=name, same_host=source.host.pk == domain.host_id,
            progress=frame.report, tag=scratch_tag(operation), before_making=remember_making(operation))
    volume_record_made(host=domain.host, key=attached.key, format=virt_backup.BACKUP_FORMAT, owner_uuid=domain.uuid)
    AttachedBackupDisk.objects.create(domain=domain, point=point, point_label=f"{arguments['disk']} of {point}",
                                      device=attached.target, pool_name=arguments["pool"], volume=attached.volume)
    host_vms_and_disks_reconcile(host=domain.host)
    return (f"Attached {arguments['disk']} of backup {point.name} to {domain.name} as {attached.target}, read-only "
            f"({attached.volume} in {arguments['pool']}); detach it from the VM's page when done")


@operation_handler("backup.detach_disk")
def backup_detach_disk(operation: Operation, report: Report) -> str:
    attached = AttachedBackupDisk.objects.get(pk=operation.arguments["attached"])
    with operation_frame(operation, report, DOMAIN) as frame:
        backup_copies.detach_point_disk(frame.conn, frame.handle, device=attached.device, pool=attached.pool_name,
                                        volume=attached.volume)
    attached.delete()
    host_vms_and_disks_reconcile(host=frame.row.host)
    return f"Detached {attached.point_label} ({attached.device}) and deleted {attached.volume}"
