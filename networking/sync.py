"""Storing what libvirt says of networks, leases, host interfaces and filters in their cached rows,
for every writer: the handlers (one network after each change: network_refresh; the host's
interfaces and filters: host_devices_sync) and the reconcile of a whole host
(inventory/reconcile.py: networks_apply, host_devices_read and host_devices_apply).
`NETWORK_COLUMNS`, `LEASE_COLUMNS`, `INTERFACE_COLUMNS` and `FILTER_COLUMNS` are the one list of
what a row keeps of libvirt's answer.
"""
from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hosts.cached import ColumnMap, Diff, apply_diff
from hosts.models import Host
from networking.models import HostInterface, Lease, NetworkFilter, VirtualNetwork
from tombstones.services import tombstone_record
from virt import interfaces as virt_interfaces
from virt import networks as virt_networks
from virt import nwfilters as virt_nwfilters
from virt.inventory import NetworkSummary
from virt.networks import LeaseInfo, NetworkState
from virt.types import Connection

# A bulk read's NetworkSummary and one network's NetworkState tell the same columns.
NETWORK_COLUMNS = ColumnMap(VirtualNetwork, {name: name for name in (
    "name", "active", "autostart", "persistent", "mode", "bridge", "details")})
LEASE_COLUMNS = ColumnMap(Lease, {name: name for name in (
    "mac", "ip", "prefix", "hostname", "expiry", "kind", "client_id")})
INTERFACE_COLUMNS = ColumnMap(HostInterface, {name: name for name in ("name", "kind", "mac", "active", "details")})
FILTER_COLUMNS = ColumnMap(NetworkFilter, {name: name for name in (
    "name", "chain", "rule_count", "references", "xml")})


def networks_apply(*, host: Host, summaries: list[NetworkSummary], now: datetime) -> Diff:
    """Make the host's network rows, and the leases of those whose leases were read, equal to a
    list of its networks; a network gone from its host leaves a tombstone."""
    diff = apply_diff(NETWORK_COLUMNS, host=host, reports=summaries, now=now, forget=networks_gone)
    leases_apply(host=host, leases={network.uuid: network.leases for network in summaries})
    return diff


def _lease_key(lease: LeaseInfo | Lease) -> tuple:
    return tuple(LEASE_COLUMNS.values(lease).values())


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
    Lease.objects.bulk_create([Lease(network_id=network_id, **LEASE_COLUMNS.values(lease))
                               for lease in leases if lease.ip])


@transaction.atomic
def network_apply_state(*, host: Host, uuid: str, state: NetworkState | None) -> VirtualNetwork | None:
    """Store one network as libvirt has it now; None means it is gone from its host."""
    if state is None:
        networks_gone(VirtualNetwork.objects.filter(host=host, uuid=uuid).values_list("pk", flat=True))
        return None
    values = {**NETWORK_COLUMNS.values(state), "synced_at": timezone.now()}
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
    apply_diff(INTERFACE_COLUMNS, host=host, reports=summaries, now=timezone.now())


def filters_apply(*, host: Host, summaries: list) -> None:
    apply_diff(FILTER_COLUMNS, host=host, reports=summaries, now=timezone.now())


def networks_gone(pks: Iterable[int]) -> None:
    """These networks are gone from their hosts: each leaves a tombstone for its old page."""
    for network in VirtualNetwork.objects.filter(pk__in=list(pks)).select_related("host"):
        tombstone_record(obj=network)
        network.delete()
