"""Operation handlers for host interfaces and network filters: act through virt/, then re-read the
host's interfaces and filters (networking.sync.host_devices_sync), whatever happened."""
from __future__ import annotations

import time
from collections.abc import Callable

from hosts.connection import connect_uri
from hosts.models import Host
from networking.models import HostInterface, NetworkFilter
from networking.sync import host_devices_sync
from operations.models import Operation
from operations.registry import Report, operation_handler
from operations.services import operation_record_libvirt_time
from virt import interfaces as virt_interfaces
from virt import nwfilters as virt_nwfilters
from virt.connection import pool
from virt.errors import VirtError
from virt.interfaces import InterfaceSpec


def _on_host(operation: Operation, report: Report, host: Host, label: str, act: Callable) -> str:
    with pool().session(connect_uri(host)) as conn:
        report(10, label)
        started = time.perf_counter()
        try:
            return act(conn)
        finally:
            operation_record_libvirt_time(operation_id=operation.pk,
                                          milliseconds=(time.perf_counter() - started) * 1000)
            try:
                host_devices_sync(conn, host=host)
            except VirtError:
                pass  # the host went away mid-action: the next reconnect reads them again


@operation_handler("network.devices_refresh")
def refresh_devices(operation: Operation, report: Report) -> str:
    host = Host.objects.get(pk=operation.target_id)
    with pool().session(connect_uri(host)) as conn:
        report(20, f"Reading the interfaces and filters of {host}")
        return host_devices_sync(conn, host=host)


@operation_handler("network.interface_define")
def define_interface(operation: Operation, report: Report) -> str:
    host = Host.objects.get(pk=operation.target_id)
    args = operation.arguments
    spec = InterfaceSpec(kind=args["kind"], name=args["name"], members=tuple(args.get("members") or ()),
                         vlan=args.get("vlan"), parent=args.get("parent"), bond_mode=args.get("bond_mode") or
                         "active-backup", stp=bool(args.get("stp")), ipv4=args.get("ipv4"), mtu=args.get("mtu"))
    return _on_host(operation, report, host, f"Defining the {spec.kind} {spec.name} (change transaction)",
                    lambda conn: virt_interfaces.define_interface(conn, spec, start=bool(args.get("start"))))


@operation_handler("network.interface_delete")
def delete_interface(operation: Operation, report: Report) -> str:
    interface = HostInterface.objects.select_related("host").get(pk=operation.target_id)
    return _on_host(operation, report, interface.host, f"Deleting the interface {interface.name}",
                    lambda conn: virt_interfaces.delete_interface(conn, interface.name))


@operation_handler("network.filter_define")
def define_filter(operation: Operation, report: Report) -> str:
    host = Host.objects.get(pk=operation.target_id)
    return _on_host(operation, report, host, "Defining the filter",
                    lambda conn: virt_nwfilters.define_filter(conn, operation.arguments["xml"]))


@operation_handler("network.filter_delete")
def delete_filter(operation: Operation, report: Report) -> str:
    item = NetworkFilter.objects.select_related("host").get(pk=operation.target_id)
    return _on_host(operation, report, item.host, f"Deleting the filter {item.name}",
                    lambda conn: virt_nwfilters.delete_filter(conn, str(item.uuid)))
