"""Operation handlers for host interfaces and network filters: their own work through virt/, inside
a frame that re-reads the host's interfaces and filters (networking.sync.host_devices_sync),
whatever happened (operations.frame)."""
from __future__ import annotations

import dataclasses

from hosts.connection import host_session
from hosts.targets import CONNECTED_HOST
from networking.models import HostInterface, NetworkFilter
from networking.sync import host_devices_sync
from operations.frame import Target, operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from virt import interfaces as virt_interfaces
from virt import nwfilters as virt_nwfilters
from virt.interfaces import InterfaceSpec

# The host, its interfaces and filters re-read after the work.
DEVICES_HOST = dataclasses.replace(CONNECTED_HOST, store=lambda frame: host_devices_sync(frame.conn, host=frame.row))
INTERFACE = Target[HostInterface](
    rows=lambda: HostInterface.objects.select_related("host"), session=lambda interface: host_session(interface.host),
    store=lambda frame: host_devices_sync(frame.conn, host=frame.row.host))
FILTER = Target[NetworkFilter](
    rows=lambda: NetworkFilter.objects.select_related("host"), session=lambda item: host_session(item.host),
    store=lambda frame: host_devices_sync(frame.conn, host=frame.row.host))


@operation_handler("network.devices_refresh")
def refresh_devices(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, CONNECTED_HOST) as frame:
        frame.report(20, f"Reading the interfaces and filters of {frame.row}")
        return host_devices_sync(frame.conn, host=frame.row)


@operation_handler("network.interface_define")
def define_interface(operation: Operation, report: Report) -> str:
    args = operation.arguments
    spec = InterfaceSpec(kind=args["kind"], name=args["name"], members=tuple(args.get("members") or ()),
                         vlan=args.get("vlan"), parent=args.get("parent"), bond_mode=args.get("bond_mode") or
                         "active-backup", stp=bool(args.get("stp")), ipv4=args.get("ipv4"), mtu=args.get("mtu"))
    with operation_frame(operation, report, DEVICES_HOST) as frame:
        frame.report(10, f"Defining the {spec.kind} {spec.name} (change transaction)")
        return virt_interfaces.define_interface(frame.conn, spec, start=bool(args.get("start")))


@operation_handler("network.interface_delete")
def delete_interface(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, INTERFACE) as frame:
        frame.report(10, f"Deleting the interface {frame.row.name}")
        return virt_interfaces.delete_interface(frame.conn, frame.row.name)


@operation_handler("network.filter_define")
def define_filter(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, DEVICES_HOST) as frame:
        frame.report(10, "Defining the filter")
        return virt_nwfilters.define_filter(frame.conn, frame.arguments["xml"])


@operation_handler("network.filter_delete")
def delete_filter(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, FILTER) as frame:
        frame.report(10, f"Deleting the filter {frame.row.name}")
        return virt_nwfilters.delete_filter(frame.conn, str(frame.row.uuid))
