"""Storing what libvirt says of VMs in their cached rows, for every writer: the listener's refresh
of one VM, the handlers (after each action, and after a create, clone or migration that adds VMs
to a host), and the reconcile of a whole host (inventory/reconcile.py).

`DOMAIN_COLUMNS` is the one list of what a VM's row keeps of libvirt's answer; the snapshot tree,
the template mark and the XML are stored by their own functions below, after the actions that
change them."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from domains.identity import domain_gone, domains_gone
from domains.models import Domain
from events.publish import publish_domain, publish_inventory
from hosts.cached import ColumnMap, Diff, apply_diff
from hosts.connection import connect_uri
from hosts.models import Host
from storage.sync import pools_reconcile
from virt.connection import pool
from virt.domains import LiveDomain, describe_domain, refetch
from virt.errors import NotFound, VirtError
from virt.inventory import DomainSummary, list_domains
from virt.snapshots import SnapshotInfo
from virt.types import Connection

DOMAIN_COLUMNS = ColumnMap(
    Domain,
    {"name": "name", "state": "state", "reason": "state_reason", "vcpus": "vcpus", "memory_kib": "memory_kib",
     "persistent": "persistent", "autostart": "autostart", "has_managed_save": "has_managed_save",
     "details": "details", "tags": "tags"},
    unknown_when_none=("memory_kib",),
)
# The bulk read (virt.inventory.DomainSummary) tells less: a VM's details are read once, when it
# is new to its host (domains_describe).
_LISTED_COLUMNS = DOMAIN_COLUMNS.without("has_managed_save", "details", "tags")


# -- one VM --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DomainRow:
    """What a write to a VM's row reads of it first: which row, and its change count (seq)."""

    id: int
    host_id: int
    seq: int


def domain_row(**lookup) -> DomainRow | None:
    """The row that lookup finds (its id, or its host_id and uuid) as it is now, in one query; None
    when there is none."""
    found = Domain.objects.filter(**lookup).values_list("pk", "host_id", "seq").first()
    return None if found is None else DomainRow(*found)


def domain_apply_state(*, row: DomainRow, live: LiveDomain | None) -> None:
    """Store what libvirt says of one VM now (None: it is gone from its host), and tell open pages."""
    if live is None:
        domain_gone(row.id)
        return
    _update_and_publish(row, DOMAIN_COLUMNS.values(live))


def domain_apply_run_state(*, row: DomainRow, state: int, reason: int) -> None:
    """Store a VM's new run state alone (after a pause or a resume, nothing else changed), and tell
    open pages."""
    _update_and_publish(row, {"state": state, "state_reason": reason})


def _update_and_publish(row: DomainRow, columns: dict) -> None:
    if Domain.objects.filter(pk=row.id).update(synced_at=timezone.now(), seq=F("seq") + 1, **columns):
        # The row's seq may have moved on meanwhile; a page that sees a jump fetches a fresh copy anyway.
        publish_domain(domain_id=row.id, host_id=row.host_id, seq=row.seq + 1, state=columns["state"],
                       change="changed")


def domain_refresh(conn: Connection, domain: Domain) -> None:
    """The database shows the VM as libvirt has it now (its row goes if the VM is gone)."""
    try:
        live = refetch(conn, str(domain.uuid))
    except VirtError:
        return  # the host went away mid-action: the listener and the next reconcile catch up
    row = domain_row(pk=domain.pk)  # as it is now: the handler's copy may be older (a migration moves it)
    if row is not None:
        domain_apply_state(row=row, live=live)


def domain_store_new(*, host: Host, conn: Connection, uuid: str) -> bool:
    """A VM the listener heard of before any reconcile listed it: insert its row (described, so
    that its page is complete). False when it is gone again or another writer inserted it first."""
    live = refetch(conn, uuid)
    if live is None:
        return False
    try:
        _details, is_template = describe_domain(conn, uuid)
    except NotFound:
        return False
    domain, created = Domain.objects.get_or_create(
        host=host, uuid=uuid,
        defaults={**DOMAIN_COLUMNS.values(live), "is_template": is_template, "synced_at": timezone.now()})
    if created:
        publish_domain(domain_id=domain.pk, host_id=host.pk, seq=domain.seq, state=domain.state, change="created")
    return created


def domain_snapshots_store(*, domain_id: int, snapshots: Iterable[SnapshotInfo]) -> None:
    rows = [asdict(snapshot) | {"taken_at": f"{datetime.fromtimestamp(snapshot.created, UTC):%Y-%m-%d %H:%M:%S} UTC"}
            for snapshot in snapshots]
    Domain.objects.filter(pk=domain_id).update(snapshots=rows, synced_at=timezone.now(), seq=F("seq") + 1)


def domain_template_store(*, domain_id: int, is_template: bool) -> None:
    Domain.objects.filter(pk=domain_id).update(is_template=is_template, synced_at=timezone.now(),
                                               seq=F("seq") + 1)


def domain_xml_store(*, domain_id: int, inactive: str, live: str) -> None:
    """Keep the XML libvirt gave (never with passwords) for the XML page."""
    Domain.objects.filter(pk=domain_id).update(xml_inactive=inactive, xml_live=live)


# -- a host's VMs --------------------------------------------------------------------------------

def domains_apply(*, host: Host, summaries: Iterable[DomainSummary], now: datetime,
                  read_at: datetime | None = None) -> Diff:
    """Make the host's VM rows equal to a bulk read: a row whose VM left may move with it, or leave
    a tombstone (domains.identity). Rows written since read_at are left alone (hosts.cached.apply_diff)."""
    return apply_diff(_LISTED_COLUMNS, host=host, reports=summaries, now=now, forget=domains_gone, read_at=read_at)


def domains_describe(conn: Connection, *, host: Host, uuids: Iterable) -> None:
    """A VM seen for the first time gets its XML summary (disks, NICs...) and its template mark:
    one call each, once."""
    for uuid in uuids:
        try:
            details, template = describe_domain(conn, str(uuid))
        except NotFound:
            continue  # gone again already
        memory = {"memory_kib": details.get("current_memory_kib") or details.get("memory_kib")}  # the bulk read's gap
        Domain.objects.filter(host=host, uuid=uuid).update(details=details, is_template=template,
                                                           tags=details.get("tags", []), **memory)


def domains_undescribed(host: Host, limit: int = 200) -> list:
    """VMs cached before their XML summary was read (older rows, or a read that failed), caught up
    on (re)connect, a bounded number at a time; periodic reconciles stay free of the extra query."""
    return list(Domain.objects.filter(host=host, details={}).values_list("uuid", flat=True)[:limit])


def domains_reconcile(conn: Connection, *, host: Host) -> Diff:
    """The host's VMs alone, after an operation that adds or moves some (a create, a clone, a
    migration): its pools and networks, and the host's own facts, are the whole reconcile's."""
    with transaction.atomic():
        read_at = timezone.now()
        summaries = list_domains(conn)
        diff = domains_apply(host=host, summaries=summaries, now=timezone.now(), read_at=read_at)
        if diff.any_change:
            transaction.on_commit(lambda: publish_inventory(host_id=host.pk))
    domains_describe(conn, host=host, uuids=diff.new_uuids)
    return diff


def host_vms_and_disks_reconcile(*, host: Host) -> None:
    """After an operation that adds, moves or removes VMs and their disks (a create, a clone, a
    migration): the host's VM, pool and volume rows as libvirt has them now, on a connection of
    their own. Raises HostUnavailable when the host cannot be reached."""
    with pool().session(connect_uri(host)) as conn:
        domains_reconcile(conn, host=host)
        pools_reconcile(conn, host=host)
