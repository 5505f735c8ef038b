"""Storing what libvirt says of networks, leases, host interfaces and filters.

`network_refresh` is the one function that re-reads one network from libvirt and updates its row
(and its leases); operations call it after every change, and the event listener may call it from
a network event. The reconcile of a whole host goes through hosts/reconcile.py, which calls
`leases_apply` for the leases it read.
"""
from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hosts.models import Host
from networking.models import HostInterface, Lease, NetworkFilter, VirtualNetwork
from tombstones.services import tombstone_record
from virt import interfaces as virt_interfaces
from virt import networks as virt_networks
from virt import nwfilters as virt_nwfilters
from virt.networks import LeaseInfo, NetworkState
from virt.types import Connection


def _lease_key(lease) -> tuple:
    return (lease.mac, lease.ip, lease.prefix, lease.hostname, lease.expiry, lease.kind, lease.client_id)


def leases_apply(*, host: Host, leases: dict[uuid_module.UUID, list[LeaseInfo] | None]) -> int:
    """Replace the cached leases of each network whose leases changed; None leaves them alone.
    Returns how many networks changed."""
    rows = dict(VirtualNetwork.objects.filter(host=host).values_list("uuid", "pk"))
    current: dict[int, set] = {pk: set() for pk in rows.values()}
    for lease in Lease.objects.filter(network__host=host):
        current[lease.network_id].add(_lease_key(lease))
    changed = 0
    for uuid, reported in leases.items():
        pk = rows.get(uuid)
        if pk is None or reported is None:
            continue
        if {_lease_key(lease) for lease in reported} != current.get(pk, set()):
            _replace_leases(pk, reported)
            changed += 1
    return changed


def _replace_leases(network_id: int, leases: Iterable[LeaseInfo]) -> None:
    Lease.objects.filter(network_id=network_id).delete()
    Lease.objects.bulk_create([
        Lease(network_id=network_id, mac=lease.mac, ip=lease.ip, prefix=lease.prefix, hostname=lease.hostname,
              expiry=lease.expiry, kind=lease.kind, client_id=lease.client_id)
        for lease in leases if lease.ip
    ])


@transaction.atomic
def network_apply_state(*, host: Host, uuid: str, state: NetworkState | None) -> VirtualNetwork | None:
    """Store one network as libvirt has it now; None means it is gone from its host."""
    if state is None:
        networks_gone(VirtualNetwork.objects.filter(host=host, uuid=uuid).values_list("pk", flat=True))
        return None
    values = {"name": state.name, "active": state.active, "autostart": state.autostart,
              "persistent": state.persistent, "mode": state.mode, "bridge": state.bridge, "details": state.details,
              "synced_at": timezone.now()}
    # get_or_create survives a reconcile that inserts the same network at the same moment.
    row, created = VirtualNetwork.objects.get_or_create(host=host, uuid=state.uuid, defaults=values)
    if not created:
        VirtualNetwork.objects.filter(pk=row.pk).update(seq=F("seq") + 1, **values)
        row.refresh_from_db()
    if state.leases is not None:
        _replace_leases(row.pk, state.leases)
    return row


def network_refresh(conn: Connection, *, host: Host, uuid: str) -> VirtualNetwork | None:
    """Re-read one network from libvirt and store it (or drop its row if it is gone)."""
    return network_apply_state(host=host, uuid=uuid, state=virt_networks.refetch(conn, uuid))


@dataclass(frozen=True)
class HostDevices:
    interfaces: list
    filters: list | None  # None: the driver has no network filters
    interface_define: bool


def host_devices_read(conn: Connection) -> HostDevices:
    """The host's interfaces (interface and node-device APIs), its network filters, and whether its
    libvirt can define interfaces: libvirt calls only, nothing stored yet."""
    return HostDevices(interfaces=virt_interfaces.list_interfaces(conn), filters=virt_nwfilters.list_filters(conn),
                       interface_define=virt_interfaces.changes_supported(conn))


def host_devices_apply(*, host: Host, devices: HostDevices) -> str:
    interfaces_apply(host=host, summaries=devices.interfaces)
    if devices.filters is not None:
        filters_apply(host=host, summaries=devices.filters)
    capabilities = Host.objects.values_list("capabilities", flat=True).get(pk=host.pk) or {}
    if capabilities.get("interface_define") != devices.interface_define:
        Host.objects.filter(pk=host.pk).update(capabilities={**capabilities,
                                                             "interface_define": devices.interface_define})
    filters = len(devices.filters) if devices.filters is not None else "no"
    return f"{len(devices.interfaces)} interfaces, {filters} filters"


def host_devices_sync(conn: Connection, *, host: Host) -> str:
    """Re-read the host's interfaces and filters and store them."""
    return host_devices_apply(host=host, devices=host_devices_read(conn))


def interfaces_apply(*, host: Host, summaries: list) -> None:
    """The host's interfaces as virt.interfaces listed them (the whole list each time)."""
    from hosts.reconcile import apply_diff  # here: hosts.reconcile imports this module

    apply_diff(HostInterface, host, summaries,
               {"name": "name", "kind": "kind", "mac": "mac", "active": "active", "details": "details"},
               timezone.now())


def filters_apply(*, host: Host, summaries: list) -> None:
    from hosts.reconcile import apply_diff

    apply_diff(NetworkFilter, host, summaries,
               {"name": "name", "chain": "chain", "rule_count": "rule_count", "references": "references",
                "xml": "xml"}, timezone.now())


def networks_gone(pks: Iterable[int]) -> None:
    """These networks are gone from their hosts: each leaves a tombstone for its old page."""
    for network in VirtualNetwork.objects.filter(pk__in=list(pks)).select_related("host"):
        tombstone_record(obj=network)
        network.delete()
