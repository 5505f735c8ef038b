"""The reconcile of a host's whole inventory: its VMs, pools, volumes, networks and leases (and on
(re)connect its interfaces, filters and facts), read in a few bulk calls and stored through each
app's sync module. It ties the object apps together, so it sits above them."""
from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from domains.sync import domains_apply, domains_describe, domains_undescribed
from events.publish import publish_inventory
from hosts.cached import Diff
from hosts.connection import connect_uri
from hosts.models import Host
from hosts.sync import host_mark_online, host_mark_unreachable, unreachable_status
from networking.sync import host_devices_apply, host_devices_read, networks_apply
from storage.sync import pools_apply, volumes_apply
from virt.connection import pool
from virt.errors import HostUnavailable
from virt.inventory import Inventory, list_networks, read_inventory
from virt.storage import list_all_volumes, list_pools
from virt.types import Connection


@transaction.atomic
def apply_inventory(*, host: Host, inventory: Inventory) -> dict[str, Diff]:
    now = timezone.now()
    diffs = {
        "domains": domains_apply(host=host, summaries=inventory.domains, now=now, read_at=inventory.read_at),
        "pools": pools_apply(host=host, summaries=inventory.pools, now=now),
        "networks": networks_apply(host=host, summaries=inventory.networks, now=now),
    }
    volumes_changed = volumes_apply(host=host, summaries=inventory.volumes, now=now)
    host_mark_online(host=host, facts=inventory.facts, now=now)
    if volumes_changed or any(diff.any_change for diff in diffs.values()):
        transaction.on_commit(lambda: publish_inventory(host_id=host.pk))
    return diffs


def host_reconcile(*, host: Host, fresh: bool = False, applied: Callable[[], None] | None = None) -> dict[str, Diff]:
    """Read the host's whole inventory in a few bulk calls and apply it. A failure to reach the
    host marks it offline (or in error, for credential problems) with the reason, and re-raises.
    applied() is called once the rows hold the read, before new VMs are described (one call each):
    from then on, a VM that changed since the read can be read again without this reconcile's older
    view overwriting it."""
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
            if applied is not None:
                applied()
            backlog = domains_undescribed(host) if fresh else []
            domains_describe(conn, host=host, uuids=[*diffs["domains"].new_uuids, *backlog])
    except HostUnavailable as exc:
        host_mark_unreachable(host=host, reason=str(exc), status=unreachable_status(getattr(exc, "reason", "")))
        raise
    return diffs


def host_reconcile_pools_and_networks(*, host: Host, conn: Connection) -> dict[str, Diff]:
    """After a pool or network event: those two lists only (a host has few), never its VMs, so that
    it cannot race the listener's per-VM refreshes with an older view of them."""
    with transaction.atomic():
        now = timezone.now()
        diffs = {"pools": pools_apply(host=host, summaries=list_pools(conn), now=now),
                 "networks": networks_apply(host=host, summaries=list_networks(conn), now=now)}
        volumes_changed = volumes_apply(host=host, summaries=list_all_volumes(conn), now=now)
        if volumes_changed or any(diff.any_change for diff in diffs.values()):
            transaction.on_commit(lambda: publish_inventory(host_id=host.pk))
    return diffs
