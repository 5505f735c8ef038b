"""Make the cached tables equal to what a host reported, as a diff: new, gone and changed rows."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from domains.identity import domains_gone
from domains.models import Domain
from events.publish import publish_domain, publish_host, publish_inventory
from hosts.choices import HostStatus
from hosts.connection import connect_uri
from hosts.models import Host
from networking.models import VirtualNetwork
from networking.sync import host_devices_apply, host_devices_read, leases_apply, networks_gone
from storage.models import StoragePool
from storage.sync import volumes_apply
from virt.connection import pool
from virt.domains import describe_domain, refetch
from virt.errors import HostUnavailable, NotFound
from virt.inventory import HostFacts, Inventory, list_networks, list_pools, read_inventory
from virt.storage import list_all_volumes
from virt.types import Connection

# Cached model, and how a summary's fields map onto its columns.
_DOMAIN_FIELDS = {"name": "name", "state": "state", "reason": "state_reason", "vcpus": "vcpus",
                  "memory_kib": "memory_kib", "persistent": "persistent", "autostart": "autostart"}
_POOL_FIELDS = {"name": "name", "pool_type": "pool_type", "target_path": "target_path", "active": "active",
                "autostart": "autostart", "capacity": "capacity", "allocation": "allocation", "available": "available",
                "details": "details"}
_NETWORK_FIELDS = {"name": "name", "active": "active", "autostart": "autostart", "persistent": "persistent",
                   "mode": "mode", "bridge": "bridge", "details": "details"}


@dataclass
class Diff:
    new: int = 0
    gone: int = 0
    new_uuids: tuple = ()
    changed: int = 0
    total: int = 0

    def __str__(self) -> str:
        changes = [f"{count} {what}" for count, what in ((self.new, "new"), (self.changed, "changed"),
                                                            (self.gone, "gone")) if count]
        return f"{self.total} ({', '.join(changes)})" if changes else f"{self.total} (no change)"


@transaction.atomic
def apply_inventory(*, host: Host, inventory: Inventory) -> dict[str, Diff]:
    now = timezone.now()
    diffs = {
        "domains": apply_diff(Domain, host, inventory.domains, _DOMAIN_FIELDS, now, unknown_when_none=("memory_kib",)),
        "pools": apply_diff(StoragePool, host, inventory.pools, _POOL_FIELDS, now),
        "networks": apply_diff(VirtualNetwork, host, inventory.networks, _NETWORK_FIELDS, now),
    }
    leases_apply(host=host, leases={network.uuid: network.leases for network in inventory.networks})
    was_online = Host.objects.filter(pk=host.pk, status=HostStatus.ONLINE).exists()
    volumes_apply(host=host, summaries=inventory.volumes, now=now)
    Host.objects.filter(pk=host.pk).update(status=HostStatus.ONLINE, status_reason="", last_seen=now, synced_at=now,
                                           **_fact_columns(inventory.facts))
    if not was_online:
        transaction.on_commit(lambda: publish_host(host_id=host.pk))
    if any(diff.new or diff.gone or diff.changed for diff in diffs.values()):
        transaction.on_commit(lambda: publish_inventory(host_id=host.pk))
    return diffs


def _fact_columns(facts: HostFacts | None) -> dict[str, Any]:
    if facts is None:
        return {}
    return {"hostname": facts.hostname[:255], "libvirt_version": facts.libvirt_version,
            "hypervisor_version": facts.hypervisor_version, "cpu_count": facts.cpu_count,
            "memory_kib": facts.memory_kib, "capabilities": facts.capabilities}


def apply_diff(model: type[models.Model], host: Host, summaries: Iterable[Any], field_map: dict[str, str], now,
               unknown_when_none: tuple[str, ...] = ()) -> Diff:
    """unknown_when_none: columns the bulk read cannot always tell (None); the cached value stays."""
    columns = list(field_map.values())
    attributes = list(field_map)
    reported = {summary.uuid: tuple(getattr(summary, name) for name in attributes) for summary in summaries}
    # Plain tuples, not model instances: at a thousand rows per host this is most of the cost.
    cached = {row[1]: (row[0], row[2:]) for row in model.objects.filter(host=host).values_list("pk", "uuid", *columns)}
    for position in [columns.index(column) for column in unknown_when_none]:
        for uuid, values in reported.items():
            if values[position] is None and uuid in cached:
                reported[uuid] = (*values[:position], cached[uuid][1][position], *values[position + 1:])
    gone = [pk for uuid, (pk, _values) in cached.items() if uuid not in reported]
    _forget(model, gone)
    new = [model(host=host, uuid=uuid, synced_at=now, **dict(zip(columns, values)))
           for uuid, values in reported.items() if uuid not in cached]
    model.objects.bulk_create(new, batch_size=500, ignore_conflicts=True)  # a racing reconcile got there first
    changed = 0
    for uuid, values in reported.items():
        pk, cached_values = cached.get(uuid, (None, values))
        if cached_values != values:
            model.objects.filter(pk=pk).update(seq=F("seq") + 1, synced_at=now, **dict(zip(columns, values)))
            changed += 1
    # Unchanged rows keep their synced_at (when they last changed); Host.synced_at says when the
    # whole inventory was last confirmed. Rewriting every row each time would double the cost.
    return Diff(new=len(new), gone=len(gone), changed=changed, total=len(reported),
                new_uuids=tuple(row.uuid for row in new))


def _forget(model: type[models.Model], pks: list[int]) -> None:
    """Rows whose object is gone from the host: a VM's row may move with its VM, and a VM or a
    network leaves a tombstone for its old page (domains.identity, tombstones)."""
    if model is Domain:
        domains_gone(pks)
    elif model is VirtualNetwork:
        networks_gone(pks)
    else:
        model.objects.filter(pk__in=pks).delete()


def host_reconcile(*, host: Host, fresh: bool = False) -> dict[str, Diff]:
    """Read the host's whole inventory in a few bulk calls and apply it. A failure to reach the
    host marks it offline (or in error, for credential problems) with the reason, and re-raises."""
    uri = connect_uri(host)
    if fresh:
        pool().drop(uri)
    try:
        with pool().session(uri) as conn:
            first_read = fresh or not host.libvirt_version
            inventory = read_inventory(conn, with_facts=first_read)
            # Interfaces and filters change rarely: read on (re)connect and on request, before the
            # host is marked online so that a host lost meanwhile is reported as the read failing.
            devices = host_devices_read(conn) if first_read else None
            diffs = apply_inventory(host=host, inventory=inventory)
            if devices is not None:
                host_devices_apply(host=host, devices=devices)
            backlog = _undescribed(host) if fresh else []
            _describe_new_domains(conn, host, [*diffs["domains"].new_uuids, *backlog])
    except HostUnavailable as exc:
        reason = getattr(exc, "reason", "")
        status = HostStatus.ERROR if reason in CREDENTIAL_FAILURES else HostStatus.OFFLINE
        if Host.objects.filter(pk=host.pk).exclude(status=status, status_reason=str(exc)[:500]).update(
                status=status, status_reason=str(exc)[:500]):
            publish_host(host_id=host.pk)
        raise
    return diffs


def host_reconcile_pools_and_networks(*, host: Host, conn: Connection) -> dict[str, Diff]:
    """After a pool or network event: those two lists only (a host has few), never its VMs, so that
    it cannot race the listener's per-VM refreshes with an older view of them."""
    with transaction.atomic():
        now = timezone.now()
        networks = list_networks(conn)
        diffs = {"pools": apply_diff(StoragePool, host, list_pools(conn), _POOL_FIELDS, now),
                 "networks": apply_diff(VirtualNetwork, host, networks, _NETWORK_FIELDS, now)}
        leases_apply(host=host, leases={network.uuid: network.leases for network in networks})
        volumes_apply(host=host, summaries=list_all_volumes(conn), now=now)
        if any(diff.new or diff.gone or diff.changed for diff in diffs.values()):
            transaction.on_commit(lambda: publish_inventory(host_id=host.pk))
    return diffs


def host_store_new_domain(*, host: Host, conn: Connection, uuid: str) -> bool:
    """A VM the listener heard of before any reconcile listed it: insert its row (described, so
    that its page is complete). False when it is gone again or another writer inserted it first."""
    live = refetch(conn, uuid)
    if live is None:
        return False
    details, is_template = describe_domain(conn, uuid)
    domain, created = Domain.objects.get_or_create(
        host=host, uuid=uuid,
        defaults=dict(name=live.name, state=live.state, state_reason=live.reason, vcpus=live.vcpus,
                      memory_kib=live.memory_kib, persistent=live.persistent, autostart=live.autostart,
                      has_managed_save=live.has_managed_save, details=details, is_template=is_template,
                      synced_at=timezone.now()))
    if created:
        publish_domain(domain_id=domain.pk, host_id=host.pk, seq=domain.seq, state=domain.state, change="created")
    return created


def _undescribed(host: Host, limit: int = 200) -> list:
    """VMs cached before their XML summary was read (older rows, or a read that failed), caught up
    on (re)connect, a bounded number at a time; periodic reconciles stay free of the extra query."""
    return list(Domain.objects.filter(host=host, details={}).values_list("uuid", flat=True)[:limit])


def _describe_new_domains(conn, host: Host, uuids) -> None:
    """A VM seen for the first time gets its XML summary (disks, NICs...) and its template mark:
    one call each, once."""
    for uuid in uuids:
        try:
            details, template = describe_domain(conn, str(uuid))
        except NotFound:
            continue  # gone again already
        memory = {"memory_kib": details.get("current_memory_kib") or details.get("memory_kib")}  # the bulk read's gap
        Domain.objects.filter(host=host, uuid=uuid).update(details=details, is_template=template, **memory)


CREDENTIAL_FAILURES = {"host key changed", "auth failed", "TLS failed", "permission denied by polkit"}
