"""Operation handlers for snapshots, clones and templates: load the VM, act through virt/, then
store the snapshot tree or template mark and refresh the VM's row like every domain handler."""
from __future__ import annotations

from collections.abc import Callable

from domains.handlers import act_on_domain
from domains.models import Domain
from domains.sync import domain_refresh, domain_snapshots_store, domain_template_store, host_vms_and_disks_reconcile
from hosts.connection import connect_uri
from operations.models import Operation
from operations.registry import Report, operation_handler
from storage.disks import vetted_copy_format
from storage.records import volume_record_made
from virt import clone as virt_clone
from virt import domains as virt_domains
from virt import snapshots as virt_snapshots
from virt.connection import pool
from virt.types import Connection, DomainHandle

Act = Callable[[DomainHandle, dict, Report], str]


def _run(operation: Operation, report: Report, label: str, act: Act) -> str:
    """Act on the operation's VM; whatever happens, store its snapshot tree and state afterwards."""
    return act_on_domain(operation, report, label, lambda conn, dom, args, report, domain: act(dom, args, report),
                         stores=(_store_snapshots,))


def _store_snapshots(conn: Connection, dom: DomainHandle, domain: Domain) -> None:
    """The snapshot tree and the template mark (from the XML: it survives a re-register)."""
    domain_snapshots_store(domain_id=domain.pk, snapshots=virt_snapshots.read_tree(dom))
    domain_template_store(domain_id=domain.pk, is_template=virt_clone.is_template(dom))


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
    domain = Domain.objects.select_related("host").get(pk=operation.target_id)
    with pool().session(connect_uri(domain.host)) as conn:
        dom = virt_domains.lookup(conn, str(domain.uuid))
        report(5, f"Checking the disks of {domain.name}")
        try:
            result = virt_clone.clone(conn, dom, uri=connect_uri(domain.host), new_name=operation.arguments["name"],
                                      progress=report,
                                      vet=lambda volume: vetted_copy_format(conn, host=domain.host, volume=volume))
        finally:
            domain_refresh(conn, domain)
    for key, fmt in zip(result.keys, result.formats):  # the copies are the clone's
        volume_record_made(host=domain.host, key=key, format=fmt, owner_uuid=result.uuid)
    report(95, f"Adding {result.name} to the inventory")
    host_vms_and_disks_reconcile(host=domain.host)
    copies = f"{len(result.volumes)} disk(s) copied" if result.volumes else "no disks to copy"
    return f"Cloned to {result.name} ({copies})"
