"""Operation handlers for virtual networks: their own work through virt.networks, inside the frame
that finds the network and stores it as libvirt has it now (networking.sync.network_refresh),
whatever happened (operations.frame)."""
from __future__ import annotations

from collections.abc import Callable

from hosts.connection import host_session
from hosts.targets import CONNECTED_HOST
from networking.models import VirtualNetwork
from networking.sync import network_refresh
from operations.frame import Target, operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from operations.services import operation_record_result
from virt import networks as virt_networks
from virt.errors import VirtError
from virt.networks import NetworkEdit, NetworkSpec, PortGroupSpec, StaticHostSpec, SubnetSpec
from virt.types import Connection, NetworkHandle

NETWORK = Target[VirtualNetwork](
    rows=lambda: VirtualNetwork.objects.select_related("host"), session=lambda network: host_session(network.host),
    find=lambda conn, network: virt_networks.lookup(conn, str(network.uuid)),
    store=lambda frame: network_refresh(frame.conn, host=frame.row.host, uuid=str(frame.row.uuid)))

Act = Callable[[Connection, NetworkHandle, dict], str]  # (connection, network, arguments) -> message

_ACTS: dict[str, Act] = {
    "start": lambda conn, net, args: virt_networks.start(net),
    "stop": lambda conn, net, args: virt_networks.stop(net),
    "autostart_on": lambda conn, net, args: virt_networks.set_autostart(net, enabled=True),
    "autostart_off": lambda conn, net, args: virt_networks.set_autostart(net, enabled=False),
    "delete": lambda conn, net, args: virt_networks.undefine(net),
    "lease_add": lambda conn, net, args: virt_networks.add_static_host(
        net, StaticHostSpec(mac=args["mac"], ip=args["ip"], name=args.get("hostname") or None)),
    "lease_remove": lambda conn, net, args: virt_networks.remove_static_host(net, mac=args["mac"]),
    "dns_add": lambda conn, net, args: virt_networks.add_dns_host(net, ip=args["ip"], hostname=args["hostname"]),
    "dns_remove": lambda conn, net, args: virt_networks.remove_dns_host(net, ip=args["ip"]),
    "refresh": lambda conn, net, args: "Read the network's state and leases",
    "edit": lambda conn, net, args: virt_networks.edit(conn, net, NetworkEdit(
        dhcp_range=tuple(args["dhcp_range"]) if args.get("dhcp_range") else None, domain=args.get("domain"),
        mtu=args.get("mtu"), inbound_kbps=args.get("inbound_kbps"), outbound_kbps=args.get("outbound_kbps"))),
}


def run_network_action(action: str, operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, NETWORK, label=action.replace("_", " ").capitalize()) as frame:
        return _ACTS[action](frame.conn, frame.handle, frame.arguments)


def _register(action: str) -> None:
    operation_handler(f"network.{action}")(lambda operation, report: run_network_action(action, operation, report))


for _action in _ACTS:
    _register(_action)


def network_spec(args: dict) -> NetworkSpec:
    """The create operation's arguments (networking.forms.network_arguments) as a builder spec."""
    def subnet(value: dict | None) -> SubnetSpec | None:
        return SubnetSpec(**value) if value else None

    return NetworkSpec(
        name=args["name"], mode=args["mode"], bridge=args.get("bridge"), forward_dev=args.get("forward_dev"),
        macvtap_mode=args.get("macvtap_mode") or "bridge", ipv4=subnet(args.get("ipv4")),
        ipv6=subnet(args.get("ipv6")), domain=args.get("domain"), mtu=args.get("mtu"),
        dns_hosts=tuple(tuple(entry) for entry in args.get("dns_hosts") or []),
        inbound_kbps=args.get("inbound_kbps"), outbound_kbps=args.get("outbound_kbps"),
        openvswitch=bool(args.get("openvswitch")),
        portgroups=tuple(PortGroupSpec(name=group[0], vlan=group[1], default=index == 0,
                                       inbound_kbps=group[2] if len(group) > 2 else None,
                                       outbound_kbps=group[3] if len(group) > 3 else None)
                         for index, group in enumerate(args.get("portgroups") or [])),
    )


@operation_handler("network.create")
def create_network(operation: Operation, report: Report) -> str:
    args = operation.arguments
    document = virt_networks.build_network(network_spec(args))
    with operation_frame(operation, report, CONNECTED_HOST) as frame:
        conn, host = frame.conn, frame.row
        frame.report(20, f"Defining the network {args['name']}")
        network = virt_networks.define(conn, document, autostart=bool(args.get("autostart")))
        uuid = virt_networks.network_uuid(network)
        try:
            if args.get("start_now"):
                frame.report(60, "Starting it")
                try:
                    virt_networks.start(network)
                except VirtError as exc:  # a network that fails to start stays defined, and says why
                    raise type(exc)(f"Defined the network {args['name']}, but it did not start: {exc}") from exc
        finally:
            _link_result(operation, network_refresh(conn, host=host, uuid=uuid))
    return f"Defined the network {args['name']}" + (" and started it" if args.get("start_now") else "")


def _link_result(operation: Operation, network: VirtualNetwork | None) -> None:
    if network is not None:
        operation_record_result(operation_id=operation.pk, **network.result_link)
