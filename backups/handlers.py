"""Operation handlers of the backups app: "back up now" and "restore as a new VM", each in its
frame (operations.frame).

A backup continues the VM's chain (an incremental restore point) only when everything it rests on
is still true: the previous point has a checkpoint and is in this pool, the pool on the VM's host
now (another host's, after a migration, when the pool is shared) holds its files where they were
written, and the VM still has that checkpoint with a bitmap on every disk, and the same disks.
Otherwise it starts a new chain with a full backup and the point's note says why. A point enters
the catalogue only once its files are written, checksummed and its manifest is in the pool; a
failed or cancelled backup leaves no file, no checkpoint and no row.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime

from backups.copies import copies_delete, copy_after_backup, original_chains
from backups.handlers_scratch import remember_making
from backups.manifest import MANIFEST_SUFFIX, disk_file_name, manifest_name, manifest_of, point_stem
from backups.models import RestorePoint
from backups.retention import Retention, points_to_prune
from backups.services import cleanup_enqueue, health_check_enqueue, restore_point_build, restore_point_save
from domains.handlers import DOMAIN
from domains.models import Domain
from hosts.connection import host_session
from domains.sync import host_vms_and_disks_reconcile
from operations.frame import Frame, Target, operation_frame
from operations.models import Operation
from operations.registry import Report, after_sweep, operation_handler
from operations.services import OperationBusy
from storage.disks import vetted_copy_format
from storage.models import StoragePool
from storage.records import volume_record_made
from storage.sync import pool_refresh_row
from virt import backup as virt_backup
from virt import domains as virt_domains
from virt.errors import VirtError
from virt.types import Connection, DomainHandle

RESTORE_POINT = Target[RestorePoint](rows=lambda: RestorePoint.objects.select_related("host"),
                                     session=lambda point: host_session(point.host))


@dataclass(frozen=True)
class Plan:
    since: RestorePoint | None  # the point an incremental continues from; None: a full backup
    checkpoint: bool  # whether the backup starts a checkpoint (not for a copy, nor for raw disks)
    note: str  # why a full backup, when an incremental could have been expected


@operation_handler("backup.create")
def backup_create(operation: Operation, report: Report) -> str:
    pool_name = operation.arguments["pool"]
    name = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")

    def store_pool(frame: Frame[Domain]) -> None:  # the backup's files, or none after a failure
        _refresh_pool_row(frame.conn, frame.row, pool_name)

    with operation_frame(operation, report, DOMAIN, stores=(store_pool,)) as frame:
        point, disks = _back_up(frame.conn, frame.handle, frame.row, operation, frame.report, pool_name=pool_name,
                                name=name)
    text = _describe(point, disks) + copy_after_backup(operation, point)
    if operation.arguments.get("health_check"):  # a job's option: the new point is booted once, apart
        check = health_check_enqueue(point=point, user=operation.user)
        text += f" Its health check is queued (operation #{check.pk})."
    return text


def _back_up(conn: Connection, dom: DomainHandle, domain: Domain, operation: Operation, report: Report, *,
             pool_name: str, name: str):
    cleared = _clear_leftovers(conn, dom, domain, pool_name)
    running = virt_domains.is_running(dom)
    volume_names = {disk.target: disk_file_name(domain.uuid, name, disk.target)
                    for disk in virt_backup.source_disks(dom)}
    if running:
        plan = _plan(conn, dom, domain, pool_name)
        if plan.since is not None and operation.arguments.get("full_reason"):
            plan = Plan(since=None, checkpoint=True, note=f"A new chain starts: {operation.arguments['full_reason']}.")
        since = _chain_link(plan.since) if plan.since else None
        if since is None and plan.checkpoint:
            virt_backup.drop_checkpoints(dom)  # a new chain: the old bitmaps would only cost writes
        report(3, f"{'Incremental' if since else 'Full'} backup of {domain.name} into {pool_name}")
        try:
            outcome = virt_backup.back_up_running(
                conn, dom, pool_name=pool_name, volume_names=volume_names,
                checkpoint=virt_backup.CHECKPOINT_PREFIX + name if plan.checkpoint else None, since=since,
                progress=report, cancelled=lambda: _cancel_requested(operation))
        except virt_backup.BackupCancelled as exc:
            operation.refresh_from_db(fields=["arguments"])
            by = operation.arguments.get("cancel_requested_by", "a user")
            raise virt_backup.BackupCancelled(f"Cancelled by {by}: {exc}") from exc
        parent, note = plan.since, plan.note
    else:
        report(3, f"Copying the disks of {domain.name} (shut off) into {pool_name}")
        outcome = virt_backup.back_up_shut_off(conn, dom, pool_name=pool_name, volume_names=volume_names,
                                               progress=report,
                                               vet=lambda volume: vetted_copy_format(conn, host=domain.host,
                                                                                     volume=volume))
        parent, note = None, "The VM was shut off: its disks were copied whole, with no checkpoint to continue from."
    note = " ".join(part for part in (cleared, note) if part)
    manifest = manifest_name(domain.uuid, name)
    point, disks = restore_point_build(domain=domain, name=name, pool_name=pool_name, manifest=manifest,
                                       parent=parent, outcome=outcome, note=note)
    try:
        virt_backup.write_file(conn, pool_name, manifest, manifest_of(point, disks))
        restore_point_save(point, disks)
    except BaseException:  # nothing half-kept: the files and the manifest go too
        virt_backup.delete_files(conn, pool_name, [disk.volume for disk in outcome.disks] + [manifest])
        raise
    for disk in outcome.disks:  # nobody's volumes: only host operators and administrators reach them
        volume_record_made(host=domain.host, key=disk.key, format=disk.format)
    rule = _retention(operation.arguments)
    if rule is not None:
        try:
            point.pruned = _prune(conn, dom, point, rule=rule)
        except VirtError as exc:  # the backup is whole: a failed pruning is said, and the next run tries again
            point.note = f"{point.note} Pruning by the job's retention failed: {exc}".strip()
    return point, disks


def _retention(arguments: dict) -> Retention | None:
    """A job's retention, as its backup operation carries it (None: not a job's backup)."""
    if "retention" in arguments:
        return Retention(**arguments["retention"])
    if "keep_last" in arguments:  # queued before daily/weekly/monthly existed
        return Retention(last=arguments["keep_last"])
    return None


def _prune(conn: Connection, dom: DomainHandle, point: RestorePoint, *, rule: Retention) -> list[str]:
    """A job's retention, after its new point is saved: the VM's older points in the same pool of the
    same host that the rule does not keep go (files, manifest, row), except those a kept point rests
    on; so do their checkpoints. Returns the names of the points removed."""
    points = RestorePoint.objects.filter(domain_uuid=point.domain_uuid, host_id=point.host_id,
                                         pool_name=point.pool_name).prefetch_related("disks")
    pruned = points_to_prune(points, rule)
    for old in pruned:  # newest first: an incremental goes before the point it rests on
        files = [old.manifest] + [disk.volume for disk in old.disks.all()]  # the manifest first: then it is gone
        kept_copies = copies_delete(old)
        if kept_copies:
            point.note = f"{point.note} Pruning: {'; '.join(kept_copies)}.".strip()
        old.delete()
        virt_backup.delete_files(conn, point.pool_name, files)
    if pruned:
        remaining = RestorePoint.objects.filter(domain_uuid=point.domain_uuid).exclude(checkpoint="")
        virt_backup.drop_checkpoints(dom, keep=frozenset(remaining.values_list("checkpoint", flat=True)))
    return [old.name for old in pruned]


def _clear_leftovers(conn: Connection, dom: DomainHandle, domain: Domain, pool_name: str) -> str:
    """What a backup of this VM that never finished (its worker killed) left: its job, still
    running in QEMU; its files in the pool; its checkpoint. A restore point exists once its manifest
    is in the pool, so files with no manifest beside them and checkpoints of no point are its
    leftovers. Removed before the new backup starts; says what went ("" when nothing)."""
    prefix = point_stem(domain.uuid, "")
    aborted = virt_backup.abort_stale_job(dom, owns=lambda path: posixpath.basename(path).startswith(prefix))
    names = virt_backup.file_names(conn, pool_name, prefix=prefix)
    points = {name.removeprefix(prefix).removesuffix(MANIFEST_SUFFIX) for name in names
              if name.endswith(MANIFEST_SUFFIX)}
    partial = [name for name in names if not any(name.startswith(point_stem(domain.uuid, point) + "-")
                                                 or name == manifest_name(domain.uuid, point) for point in points)]
    virt_backup.delete_files(conn, pool_name, partial)
    points |= set(RestorePoint.objects.filter(domain_uuid=domain.uuid).values_list("name", flat=True))
    dropped = virt_backup.drop_checkpoints(
        dom, keep=frozenset(virt_backup.CHECKPOINT_PREFIX + point for point in points))
    if not (aborted or partial or dropped):
        return ""
    return (f"An interrupted backup was cleaned up first ({'its job aborted, ' if aborted else ''}"
            f"{len(partial)} partial file(s) and {dropped} checkpoint(s) removed).")


def _plan(conn: Connection, dom: DomainHandle, domain: Domain, pool_name: str) -> Plan:
    disks = virt_backup.source_disks(dom)
    refusal = virt_backup.bitmap_refusal(disks)
    if refusal:
        return Plan(since=None, checkpoint=False, note=refusal)
    previous = RestorePoint.objects.filter(domain_uuid=domain.uuid).order_by("-created_at", "-id").first()
    if previous is None:
        return Plan(since=None, checkpoint=True, note="")
    reason = _chain_refusal(previous, pool_name)
    if reason is None:
        link = _chain_link(previous)
        reason = (virt_backup.chain_files_missing(conn, pool_name, link)
                  or virt_backup.chain_break(dom, link, disks))
    if reason:
        return Plan(since=None, checkpoint=True, note=f"A new chain starts: {reason}")
    return Plan(since=previous, checkpoint=True, note="")


def _chain_refusal(previous: RestorePoint, pool_name: str) -> str | None:
    """What the catalogue alone says against continuing from the previous point. Not the host: a VM
    that migrated continues its chain where its checkpoints came along and the pool (shared) holds
    the previous point's files, which the caller asks the host."""
    if previous.state != RestorePoint.State.READY:
        return f"the previous backup {previous.name} is {previous.get_state_display()}."
    if not previous.checkpoint:
        return f"the previous backup {previous.name} has no checkpoint to count changes from."
    if previous.pool_name != pool_name:
        return f"the previous backup {previous.name} is in the pool {previous.pool_name}: a chain stays in one pool."
    return None


def _chain_link(point: RestorePoint) -> virt_backup.ChainLink:
    disks = list(point.disks.all())
    return virt_backup.ChainLink(checkpoint=point.checkpoint, volumes={disk.target: disk.volume for disk in disks},
                                 sources={disk.target: disk.source for disk in disks},
                                 paths={disk.target: disk.path for disk in disks})


def _cancel_requested(operation: Operation) -> bool:
    return Operation.objects.filter(pk=operation.pk, cancel_requested=True).exists()


def _refresh_pool_row(conn: Connection, domain: Domain, pool_name: str) -> None:
    row = StoragePool.objects.filter(host=domain.host, name=pool_name).first()
    if row is not None:
        pool_refresh_row(conn, row)


def _describe(point: RestorePoint, disks) -> str:
    size = sum(disk.size for disk in disks)
    rate = size / point.seconds / 2**20 if point.seconds else 0
    files = ", ".join(f"{disk.target} {disk.size / 2**20:.1f} MiB" for disk in disks)
    text = (f"{point.kind.capitalize()} backup {point.name}: {files} in {point.seconds:.1f} s ({rate:.0f} MiB/s); "
            f"{point.consistency}")
    text = f"{text}. {point.note}" if point.note else text
    pruned = getattr(point, "pruned", None)
    if pruned:
        text += f" Pruned by the job's retention: {', '.join(pruned)}."
    return text


@operation_handler("backup.cleanup")
def backup_cleanup(operation: Operation, report: Report) -> str:
    """After the sweep failed a backup whose worker died: its job, files and checkpoint go."""
    pool_name = operation.arguments["pool"]

    def store_pool(frame: Frame[Domain]) -> None:
        _refresh_pool_row(frame.conn, frame.row, pool_name)

    with operation_frame(operation, report, DOMAIN, stores=(store_pool,)) as frame:
        cleared = _clear_leftovers(frame.conn, frame.handle, frame.row, pool_name)
    return cleared or "The interrupted backup had left nothing behind."


@after_sweep("backup.create")
def backup_swept(operation: Operation) -> None:
    """A backup whose worker died is cleaned up at once, not only when the VM's next backup starts."""
    domain = Domain.objects.filter(pk=operation.target_id).select_related("host").first()
    if domain is None:
        return
    try:
        cleanup_enqueue(domain=domain, pool_name=operation.arguments["pool"])
    except OperationBusy:
        pass  # something else runs on the VM now; its next backup clears the leftovers first


@operation_handler("backup.restore")
def backup_restore(operation: Operation, report: Report) -> str:
    new_name, target_pool = operation.arguments["name"], operation.arguments["pool"]
    with operation_frame(operation, report, RESTORE_POINT) as frame:
        point = frame.row
        chains = original_chains(point)
        for index, (target, chain) in enumerate(sorted(chains.items())):
            frame.report(2 + 8 * index // len(chains),
                         f"Checking the {len(chain)} file(s) of {target} against the catalogue")
            virt_backup.verify_chain(frame.conn, point.pool_name, chain, checksums=False)
        new_uuid, restored = virt_backup.restore_as_new_vm(
            frame.conn, domain_xml=point.domain_xml, backup_pool=point.pool_name,
            tops={target: chain[-1].volume for target, chain in chains.items()}, target_pool=target_pool,
            new_name=new_name, progress=frame.report,
            verify_files=[file for chain in chains.values() for file in chain],
            untrusted=point.definition_from_manifest, emulator=(point.host.capabilities or {}).get("emulator"),
            before_making=remember_making(operation))
    for disk in restored:  # the new VM's own volumes
        volume_record_made(host=point.host, key=disk.key, format=virt_backup.BACKUP_FORMAT, owner_uuid=new_uuid)
    report(95, f"Adding {new_name} to the inventory")
    host_vms_and_disks_reconcile(host=point.host)
    files = sum(len(chain) for chain in chains.values())
    return (f"Restored {point.domain_name}'s {point.kind} backup {point.name} as {new_name}: "
            f"{len(restored)} disk(s) into {target_pool}, from {files} file(s) whose checksums matched the catalogue")
