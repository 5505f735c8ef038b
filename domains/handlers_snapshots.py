"""Operation handlers for snapshots, clones and templates: their own work through virt/, inside the
VM's frame (operations.frame), which also stores the snapshot tree and template mark."""
from __future__ import annotations

from collections.abc import Callable

from domains.handlers import DOMAIN
from domains.models import Domain
from domains.sync import domain_snapshots_store, domain_template_store, host_vms_and_disks_reconcile
from hosts.connection import connect_uri
from operations.frame import Frame, operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from storage.disks import vetted_copy_format
from storage.records import volume_record_made
from virt import clone as virt_clone
from virt import snapshots as virt_snapshots
from virt.types import DomainHandle

Act = Callable[[DomainHandle, dict, Report], str]


def _run(operation: Operation, report: Report, label: str, act: Act) -> str:
    """Act on the operation's VM; whatever happens, store its snapshot tree and state afterwards."""
    with operation_frame(operation, report, DOMAIN, label=label, stores=(_store_snapshots,)) as frame:
        return act(frame.handle, frame.arguments, frame.report)


def _store_snapshots(frame: Frame[Domain]) -> None:
    """The snapshot tree and the template mark (from the XML: it survives a re-register)."""
    domain_snapshots_store(domain_id=frame.row.pk, snapshots=virt_snapshots.read_tree(frame.handle))
    domain_template_store(domain_id=frame.row.pk, is_template=virt_clone.is_template(frame.handle))


@operation_handler("domain.snapshot_create")
def snapshot_create(operation: Operation, report: Report) -> str:
    return _run(operation, report, "Taking a snapshot", lambda dom, args, report: virt_snapshots.create(
        dom, name=args["name"], description=args.get("description", ""), with_memory=bool(args["with_memory"])))


@operation_handler("domain.snapshot_revert")
def snapshot_revert(operation: Operation, report: Report) -> str:
    return _run(operation, report, "Reverting", lambda dom, args, report: virt_snapshots.revert(
        dom, name=args["name"]))


@operation_handler("domain.snapshot_delete")
def snapshot_delete(operation: Operation, report: Report) -> str:
    return _run(operation, report, "Deleting a snapshot", lambda dom, args, report: virt_snapshots.delete(
        dom, name=args["name"], with_children=bool(args.get("with_children"))))


@operation_handler("domain.snapshot_refresh")
def snapshot_refresh(operation: Operation, report: Report) -> str:
    """Re-read the tree and the template mark, e.g. after snapshots were taken outside vmsite."""
    return _run(operation, report, "Reading snapshots",
                lambda dom, args, report: f"{virt_snapshots.count(dom)} snapshot(s)")


@operation_handler("domain.mark_template")
def mark_template(operation: Operation, report: Report) -> str:
    return _run(operation, report, "Template mark", lambda dom, args, report: virt_clone.mark_template(
        dom, template=bool(args["template"])))


@operation_handler("domain.clone")
def clone(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, DOMAIN) as frame:
        domain = frame.row
        frame.report(5, f"Checking the disks of {domain.name}")
        result = virt_clone.clone(frame.conn, frame.handle, uri=connect_uri(domain.host),
                                  new_name=frame.arguments["name"], progress=frame.report,
                                  vet=lambda volume: vetted_copy_format(frame.conn, host=domain.host, volume=volume))
    for key, fmt in zip(result.keys, result.formats):  # the copies are the clone's
        volume_record_made(host=domain.host, key=key, format=fmt, owner_uuid=result.uuid)
    report(95, f"Adding {result.name} to the inventory")
    host_vms_and_disks_reconcile(host=domain.host)
    copies = f"{len(result.volumes)} disk(s) copied" if result.volumes else "no disks to copy"
    return f"Cloned to {result.name} ({copies})"
