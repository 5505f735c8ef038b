"""Operation handlers for virtual networks: act through virt.networks, then store the network as
libvirt has it now (networking.sync.network_refresh), whatever happened."""
from __future__ import annotations

import time
from collections.abc import Callable

from hosts.connection import connect_uri
from hosts.models import Host
from networking.models import VirtualNetwork
from networking.sync import network_refresh
from operations.models import Operation
from operations.registry import Report, operation_handler
from operations.services import operation_record_libvirt_time, operation_record_result
from virt import networks as virt_networks
from virt.connection import pool
from virt.errors import VirtError, translated
from virt.networks import NetworkEdit, NetworkSpec, PortGroupSpec, StaticHostSpec, SubnetSpec
from virt.types import Connection, NetworkHandle

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


def act_on_network(operation: Operation, report: Report, act: Act) -> str:
    network = VirtualNetwork.objects.select_related("host").get(pk=operation.target_id)
    with pool().session(connect_uri(network.host)) as conn:
        handle = virt_networks.lookup(conn, str(network.uuid))
        report(10, f"{operation.kind.partition('.')[2].replace('_', ' ').capitalize()}: {network.name}")
        started = time.perf_counter()
        try:
            return act(conn, handle, operation.arguments)
        finally:
            operation_record_libvirt_time(operation_id=operation.pk,
                                          milliseconds=(time.perf_counter() - started) * 1000)
            _refresh_quietly(conn, network)


def _refresh_quietly(conn: Connection, network: VirtualNetwork) -> None:
    try:
        network_refresh(conn, host=network.host, uuid=str(network.uuid))
    except VirtError:
        pass  # the host went away mid-action: the next reconcile catches up


def _register(action: str) -> None:
    operation_handler(f"network.{action}")(lambda operation, report: act_on_network(operation, report, _ACTS[action]))


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
    host = Host.objects.get(pk=operation.target_id)
    args = operation.arguments
    document = virt_networks.build_network(network_spec(args))
    with pool().session(connect_uri(host)) as conn:
        report(20, f"Defining the network {args['name']}")
        started = time.perf_counter()
        try:
            handle = virt_networks.define(conn, document, autostart=bool(args.get("autostart")))
            uuid = handle.UUIDString()
            message = f"Defined the network {args['name']}"
            if args.get("start_now"):
                report(60, "Starting it")
                try:
                    with translated():
                        virt_networks.start(handle)
                    message += " and started it"
                except VirtError as exc:  # a network that fails to start stays defined, and says why
                    _link_result(operation, network_refresh(conn, host=host, uuid=uuid))
                    raise type(exc)(f"Defined the network {args['name']}, but it did not start: {exc}") from exc
        finally:
            operation_record_libvirt_time(operation_id=operation.pk,
                                          milliseconds=(time.perf_counter() - started) * 1000)
        _link_result(operation, network_refresh(conn, host=host, uuid=uuid))
    return message


def _link_result(operation: Operation, network: VirtualNetwork | None) -> None:
    if network is not None:
        operation_record_result(operation_id=operation.pk, **network.result_link)
