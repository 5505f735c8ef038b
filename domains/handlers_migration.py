"""The migration of a VM to another host, run by a worker: migrate through virt/, with progress and
cancel, then re-read both hosts' VMs and disks so that the inventory shows the VM where it is now."""
from __future__ import annotations

import dataclasses
import logging

from django.db import transaction

from storage.records import records_follow_vm, records_left_behind
from domains.handlers import DOMAIN
from domains.identity import domain_move
from domains.models import Domain
from domains.sync import host_vms_and_disks_reconcile
from hosts.connection import host_session
from hosts.models import Host
from hosts.uri import validate_address
from operations.frame import Frame, operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from virt import domains as virt_domains
from virt import migration as virt_migration
from virt.errors import HostUnavailable

logger = logging.getLogger(__name__)

START, END = 10, 95  # the share of the progress bar that the migration job itself fills

# The VM's row is not refreshed from the source it leaves: it follows the VM (_move_row), and
# both hosts are re-read instead.
LEAVING_DOMAIN = dataclasses.replace(DOMAIN, store=None)


@operation_handler("domain.migrate")
def migrate_domain(operation: Operation, report: Report) -> str:
    destination = Host.objects.get(pk=operation.arguments["destination_host_id"])
    options = _options(operation.arguments)

    def reread_both(frame: Frame[Domain]) -> None:  # whatever happened
        _reconcile(frame, frame.row.host, destination)

    with operation_frame(operation, report, LEAVING_DOMAIN, stores=(reread_both,)) as frame:
        domain, source = frame.row, frame.row.host
        frame.report(5, f"Connecting to {destination.name}")
        with host_session(destination) as destination_conn:
            leaves_source = options.undefine_source or not virt_domains.is_persistent(frame.handle)
            frame.report(START, f"Migrating {domain.name} from {source.name} to {destination.name}")
            try:
                result = virt_migration.migrate(
                    frame.conn, frame.handle, destination_conn,
                    destination_address=_migration_address(destination), options=options,
                    progress=lambda sample: frame.report(START + (END - START) * sample.percent // 100,
                                                         sample.describe()),
                    cancel_requested=lambda: _cancel_requested(operation))
            except virt_migration.MigrationCancelled as exc:
                raise virt_migration.MigrationCancelled(f"Cancelled by {_cancelled_by(operation)}: {exc}") from exc
        if leaves_source:
            _move_row(domain, destination)
    records_follow_vm(vm_uuid=domain.uuid, source=source, destination=destination)
    records_left_behind(vm_uuid=domain.uuid, host=source, keys=result.kept_source_disks)
    return f"{result.message}; now on {destination.name}"


def _options(arguments: dict) -> virt_migration.MigrationOptions:
    return virt_migration.MigrationOptions(
        live=bool(arguments.get("live")), persist_destination=bool(arguments.get("persist_destination")),
        undefine_source=bool(arguments.get("undefine_source")), copy_storage=bool(arguments.get("copy_storage")),
        bandwidth_mib=arguments.get("bandwidth_mib") or None, auto_converge=bool(arguments.get("auto_converge")),
        postcopy=bool(arguments.get("postcopy")), move_snapshots=bool(arguments.get("move_snapshots")),
        keep_source_disks=bool(arguments.get("keep_source_disks")))


def _migration_address(destination: Host) -> str:
    """The address the source's QEMU sends to: the destination's registered, validated address
    (checked again here, as it goes into a URI). Empty for the local host: libvirt then uses the
    destination's own migration_host setting."""
    return validate_address(destination.address) if destination.address else ""


def _cancel_requested(operation: Operation) -> bool:
    return Operation.objects.filter(pk=operation.pk, cancel_requested=True).exists()


def _cancelled_by(operation: Operation) -> str:
    operation.refresh_from_db(fields=["arguments"])
    return operation.arguments.get("cancel_requested_by", "a user")


def _reconcile(frame: Frame[Domain], *hosts: Host) -> None:
    frame.report(END, "Reading both hosts' inventories")
    for host in hosts:
        try:
            host_vms_and_disks_reconcile(host=host)
        except HostUnavailable as exc:  # the listener marks it offline, and catches up later
            logger.warning("after a migration, %s could not be re-read: %s", host.name, exc)


def _move_row(domain: Domain, destination: Host) -> None:
    """Keep the VM's row (its page, operations, graph samples and grants) and point it at its new
    host, folding in any row a reconcile or the listener has made for it there meanwhile."""
    with transaction.atomic():
        domain_move(domain=domain, destination_id=destination.pk)
