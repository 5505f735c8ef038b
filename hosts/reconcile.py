"""Make the cached tables equal to what a host reported, as a diff: new, gone and changed rows."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from domains.models import Domain
from hosts.choices import HostStatus
from hosts.connection import connect_uri
from hosts.models import Host
from networking.models import VirtualNetwork
from storage.models import StoragePool
from storage.sync import volumes_apply
from virt.connection import pool
from virt.domains import describe_domain
from virt.errors import HostUnavailable, NotFound
from virt.inventory import HostFacts, Inventory, read_inventory

# Cached model, and how a summary's fields map onto its columns.
_DOMAIN_FIELDS = {"name": "name", "state": "state", "reason": "state_reason", "vcpus": "vcpus",
                  "memory_kib": "memory_kib", "persistent": "persistent", "autostart": "autostart"}
_POOL_FIELDS = {"name": "name", "pool_type": "pool_type", "target_path": "target_path", "active": "active",
                "autostart": "autostart", "capacity": "capacity", "allocation": "allocation", "available": "available",
                "details": "details"}
_NETWORK_FIELDS = {"name": "name", "active": "active", "autostart": "autostart", "persistent": "persistent"}


@dataclass
class Diff:
    new: int = 0
    gone: int = 0
    new_uuids: tuple = ()
    changed: int = 0
    total: int = 0

    def __str__(self) -> str:
        return f"{self.total} ({self.new} new, {self.changed} changed, {self.gone} gone)"


@transaction.atomic
def apply_inventory(*, host: Host, inventory: Inventory) -> dict[str, Diff]:
    now = timezone.now()
    diffs = {
        "domains": apply_diff(Domain, host, inventory.domains, _DOMAIN_FIELDS, now),
        "pools": apply_diff(StoragePool, host, inventory.pools, _POOL_FIELDS, now),
        "networks": apply_diff(VirtualNetwork, host, inventory.networks, _NETWORK_FIELDS, now),
    }
    volumes_apply(host=host, summaries=inventory.volumes, now=now)
    Host.objects.filter(pk=host.pk).update(status=HostStatus.ONLINE, status_reason="", last_seen=now, synced_at=now,
                                           **_fact_columns(inventory.facts))
    return diffs


def _fact_columns(facts: HostFacts | None) -> dict[str, Any]:
    if facts is None:
        return {}
    return {"hostname": facts.hostname[:255], "libvirt_version": facts.libvirt_version,
            "hypervisor_version": facts.hypervisor_version, "cpu_count": facts.cpu_count,
            "memory_kib": facts.memory_kib, "capabilities": facts.capabilities}


def apply_diff(model: type[models.Model], host: Host, summaries: Iterable[Any], field_map: dict[str, str], now) -> Diff:
    columns = list(field_map.values())
    attributes = list(field_map)
    reported = {summary.uuid: tuple(getattr(summary, name) for name in attributes) for summary in summaries}
    # Plain tuples, not model instances: at a thousand rows per host this is most of the cost.
    cached = {row[1]: (row[0], row[2:]) for row in model.objects.filter(host=host).values_list("pk", "uuid", *columns)}
    gone = [pk for uuid, (pk, _values) in cached.items() if uuid not in reported]
    model.objects.filter(pk__in=gone).delete()
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


def host_reconcile(*, host: Host, fresh: bool = False) -> dict[str, Diff]:
    """Read the host's whole inventory in a few bulk calls and apply it. A failure to reach the
    host marks it offline (or in error, for credential problems) with the reason, and re-raises."""
    uri = connect_uri(host)
    if fresh:
        pool().drop(uri)
    try:
        with pool().session(uri) as conn:
            inventory = read_inventory(conn, with_facts=fresh or not host.libvirt_version)
            diffs = apply_inventory(host=host, inventory=inventory)
            backlog = _undescribed(host) if fresh else []
            _describe_new_domains(conn, host, [*diffs["domains"].new_uuids, *backlog])
    except HostUnavailable as exc:
        reason = getattr(exc, "reason", "")
        status = HostStatus.ERROR if reason in CREDENTIAL_FAILURES else HostStatus.OFFLINE
        Host.objects.filter(pk=host.pk).update(status=status, status_reason=str(exc)[:500])
        raise
    return diffs


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
        Domain.objects.filter(host=host, uuid=uuid).update(details=details, is_template=template)


CREDENTIAL_FAILURES = {"host key changed", "auth failed", "permission denied by polkit"}
