"""Validation of every networking change a user can ask for; each error says what to write instead.

Checks against the host (names and subnets in use) read the cached rows; the worker checks the
host again as it is when it acts (virt.networks.define).
"""
from __future__ import annotations

import ipaddress
import re

from django import forms
from django.core.exceptions import ValidationError

from hosts.models import Host
from networking.models import NetworkMode, VirtualNetwork
from networking.validators import (
    clean_hostname, clean_interface_name, clean_mac, clean_network_name, clean_vlan_id, parse_address,
    parse_subnet, require_host_address,
)
from virt.networks import MACVTAP_MODES, ROUTED_MODES, overlapping

MTU_MIN, MTU_MAX = 68, 65535
IPV6_MTU_MIN = 1280
# ASCII digits only: str.isdigit() also takes '²' and '١', which int() refuses or reads otherwise.
WHOLE_NUMBER_RE = re.compile(r"\A-?[0-9]{1,10}\Z")


def host_subnets(host: Host, *, exclude_pk: int | None = None) -> dict[str, list]:
    """Every subnet of the host's networks as last seen, by network name (networks vmsite did not
    create included)."""
    subnets: dict[str, list] = {}
    for network in VirtualNetwork.objects.filter(host=host).exclude(pk=exclude_pk):
        subnets[network.name] = [ipaddress.ip_network(text, strict=False) for text in network.subnets]
    return subnets


class NetworkForm(forms.Form):
    host = forms.ModelChoiceField(queryset=Host.objects.filter(enabled=True), error_messages={
        "invalid_choice": "Pick one of the registered hosts."})
    name = forms.CharField(max_length=64)
    mode = forms.ChoiceField(choices=NetworkMode.choices, initial=NetworkMode.NAT)
    bridge = forms.CharField(required=False, max_length=64, label="Bridge",
                             help_text="NAT, routed, open, isolated: the bridge to create (empty: libvirt picks "
                                       "virbrN). Bridge mode: the host's existing bridge.")
    forward_dev = forms.CharField(required=False, max_length=64, label="Host interface",
                                  help_text="NAT and routed: leave traffic only by this interface (optional). "
                                            "macvtap: the host interface the VMs share (required).")
    macvtap_mode = forms.ChoiceField(choices=[(mode, mode) for mode in MACVTAP_MODES], initial="bridge",
                                     label="macvtap mode")
    openvswitch = forms.BooleanField(required=False, label="The bridge is an Open vSwitch bridge")
    ipv4_subnet = forms.CharField(required=False, max_length=64, label="IPv4 subnet",
                                  help_text="CIDR, like 10.251.1.0/24. Empty: no IPv4.")
    ipv4_gateway = forms.CharField(required=False, max_length=64, label="IPv4 gateway (the host's address)",
                                   help_text="Empty: the subnet's first address.")
    ipv4_dhcp_start = forms.CharField(required=False, max_length=64, label="IPv4 DHCP range start",
                                      help_text="Both ends empty: the largest range of the subnet beside the gateway.")
    ipv4_dhcp_end = forms.CharField(required=False, max_length=64, label="IPv4 DHCP range end")
    ipv4_no_dhcp = forms.BooleanField(required=False, label="No IPv4 DHCP",
                                      help_text="Guests on this network set their addresses themselves.")
    ipv6_subnet = forms.CharField(required=False, max_length=64, label="IPv6 subnet",
                                  help_text="CIDR, like fd00:251:1::/64. Empty: no IPv6.")
    ipv6_gateway = forms.CharField(required=False, max_length=64, label="IPv6 gateway (the host's address)")
    ipv6_dhcp_start = forms.CharField(required=False, max_length=64, label="IPv6 DHCP range start")
    ipv6_dhcp_end = forms.CharField(required=False, max_length=64, label="IPv6 DHCP range end")
    domain = forms.CharField(required=False, max_length=253, label="DNS domain",
                             help_text="Guests get names under it, like vm1.lab.example.")
    mtu = forms.IntegerField(required=False, label="MTU", error_messages={"invalid": "Give the MTU as a number."})
    dns_hosts = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="DNS host entries",
                                help_text="One per line: address, a space, host name.")
    inbound_kbps = forms.IntegerField(required=False, label="QoS inbound average (KiB/s)", min_value=1)
    outbound_kbps = forms.IntegerField(required=False, label="QoS outbound average (KiB/s)", min_value=1)
    portgroups = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Port groups",
                                 help_text="Bridge mode, one per line: name, VLAN id, and optionally QoS inbound "
                                           "and outbound averages in KiB/s, like 'web 10' or 'web 10 1000 500'. "
                                           "The first is the default.")
    autostart = forms.BooleanField(required=False, initial=True, label="Start with the host")
    start_now = forms.BooleanField(required=False, initial=True, label="Start it now")

    def clean_name(self) -> str:
        return clean_network_name(self.cleaned_data["name"])

    def clean_bridge(self) -> str:
        value = self.cleaned_data["bridge"].strip()
        return clean_interface_name(value) if value else ""

    def clean_forward_dev(self) -> str:
        value = self.cleaned_data["forward_dev"].strip()
        return clean_interface_name(value, what="interface") if value else ""

    def clean_domain(self) -> str:
        value = self.cleaned_data["domain"].strip()
        return clean_hostname(value) if value else ""

    def clean_dns_hosts(self) -> list[tuple[str, str]]:
        entries = []
        for number, line in enumerate(self.cleaned_data["dns_hosts"].splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValidationError(f"Line {number}: write an address and a host name, like '10.251.1.5 db'.")
            entries.append((str(parse_address(parts[0])), clean_hostname(parts[1])))
        return entries

    def clean_portgroups(self) -> list[list]:
        groups, names = [], set()
        for number, line in enumerate(self.cleaned_data["portgroups"].splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) not in (2, 4) or not all(WHOLE_NUMBER_RE.match(part) for part in parts[1:]):
                raise ValidationError(f"Line {number}: write a port group's name and its VLAN id, and optionally "
                                      "two QoS averages, like 'web 10' or 'web 10 1000 500'.")
            name = clean_network_name(parts[0])
            if name in names:
                raise ValidationError(f"Line {number}: the port group {name} is given twice.")
            names.add(name)
            qos = [int(part) for part in parts[2:]]
            if any(value < 1 for value in qos):
                raise ValidationError(f"Line {number}: QoS averages are at least 1 KiB/s.")
            groups.append([name, clean_vlan_id(int(parts[1])), *(qos or [None, None])])
        return groups

    def clean(self) -> dict:
        data = super().clean()
        host, mode = data.get("host"), data.get("mode")
        if host is not None and data.get("name") and VirtualNetwork.objects.filter(host=host, name=data["name"]).exists():
            self.add_error("name", f"The host {host} already has a network named {data['name']!r}.")
        if mode in ROUTED_MODES:
            self._clean_routed(data, mode)
            taken = VirtualNetwork.objects.filter(host=host, bridge=data.get("bridge")).first() \
                if host is not None and data.get("bridge") else None
            if taken is not None:
                self.add_error("bridge", f"The bridge {taken.bridge} belongs to the network {taken.name}: give "
                                         "another name, or leave it empty and libvirt picks one.")
        elif mode == NetworkMode.BRIDGE:
            self._clean_plugged(data, needs="bridge", label="a bridge of the host, like br0")
        elif mode == NetworkMode.MACVTAP:
            self._clean_plugged(data, needs="forward_dev", label="the host interface to share, like eth0")
        if mode != NetworkMode.BRIDGE and (data.get("portgroups") or data.get("openvswitch")):
            self.add_error("portgroups", "Port groups and Open vSwitch are for bridge mode only.")
        if host is not None and not self.errors:
            subnets = [subnet for subnet in (data.get("ipv4"), data.get("ipv6")) if subnet]
            clashes = overlapping([subnet["subnet"] for subnet in subnets], host_subnets(host))
            if clashes:
                raise ValidationError("Subnets may not overlap another network of the same host: "
                                      + "; ".join(clashes) + ".")
        return data

    def _clean_routed(self, data: dict, mode: str) -> None:
        data["ipv4"] = self._clean_subnet(data, 4)
        data["ipv6"] = self._clean_subnet(data, 6)
        if data.get("ipv4_no_dhcp") and not data.get("ipv4_subnet", "").strip():
            self.add_error("ipv4_no_dhcp", "No DHCP applies to an IPv4 subnet: give one, or untick it.")
        if mode in ("nat", "route", "open") and not (data.get("ipv4") or data.get("ipv6")) \
                and not self.has_error("ipv4_subnet") and not self.has_error("ipv6_subnet"):
            self.add_error("ipv4_subnet", f"A {NetworkMode(mode).label.lower()} network needs a subnet.")
        if mode == "nat" and data.get("ipv6") and not data.get("ipv4") and not self.has_error("ipv4_subnet"):
            self.add_error("ipv4_subnet", "NAT applies to IPv4: give an IPv4 subnet too.")
        if data.get("forward_dev") and mode not in ("nat", "route"):
            self.add_error("forward_dev", "Only NAT and routed networks go out by a chosen host interface.")
        mtu = data.get("mtu")
        if mtu is not None:
            low = IPV6_MTU_MIN if data.get("ipv6") else MTU_MIN
            if not low <= mtu <= MTU_MAX:
                self.add_error("mtu", f"The MTU must be between {low} and {MTU_MAX}"
                               + (" (IPv6 needs at least 1280)." if low == IPV6_MTU_MIN else "."))
        subnets = [subnet["subnet"] for subnet in (data.get("ipv4"), data.get("ipv6")) if subnet]
        for ip, _name in data.get("dns_hosts") or []:
            if not any(ipaddress.ip_address(ip) in subnet for subnet in subnets):
                self.add_error("dns_hosts", f"The DNS entry's address {ip} is outside the network's subnets.")

    def _clean_plugged(self, data: dict, *, needs: str, label: str) -> None:
        """Bridge and macvtap networks plug VMs into the host's own network: no addresses of their own."""
        if not data.get(needs) and not self.has_error(needs):
            self.add_error(needs, f"Give {label}.")
        for field in ("ipv4_subnet", "ipv6_subnet", "domain", "mtu", "dns_hosts"):
            if data.get(field):
                self.add_error(field, "Bridge and macvtap networks use the host's own network: they have no "
                                      "subnets, DHCP, DNS or MTU of their own.")
        if data.get("mode") == NetworkMode.MACVTAP and data.get("bridge"):
            self.add_error("bridge", "A macvtap network has no bridge: give the host interface instead.")

    def _clean_subnet(self, data: dict, version: int) -> dict | None:
        prefix = f"ipv{version}_"
        text = data.get(prefix + "subnet", "").strip()
        others = [data.get(prefix + name, "").strip() for name in ("gateway", "dhcp_start", "dhcp_end")]
        if not text:
            if any(others):
                self.add_error(prefix + "subnet", "Give the subnet these addresses belong to.")
            return None
        try:
            subnet = parse_subnet(text, version=version)
        except ValidationError as exc:
            self.add_error(prefix + "subnet", exc)
            return None
        gateway_text, start_text, end_text = others
        try:
            gateway = parse_address(gateway_text, version=version, label="gateway") if gateway_text \
                else next(subnet.hosts())
            require_host_address(gateway, subnet, label="gateway")
        except ValidationError as exc:
            self.add_error(prefix + "gateway", exc)
            return None
        start = end = None
        if start_text or end_text:
            if not (start_text and end_text):
                self.add_error(prefix + "dhcp_end", "Give both ends of the DHCP range, or neither.")
                return None
            try:
                start = parse_address(start_text, version=version, label="DHCP range start")
                end = parse_address(end_text, version=version, label="DHCP range end")
                require_host_address(start, subnet, label="DHCP range start")
                require_host_address(end, subnet, label="DHCP range end")
            except ValidationError as exc:
                self.add_error(prefix + "dhcp_start", exc)
                return None
            if start > end:
                self.add_error(prefix + "dhcp_start", f"The DHCP range is reversed: {start} comes after {end}.")
                return None
            if start <= gateway <= end:
                self.add_error(prefix + "dhcp_start", f"The DHCP range {start}-{end} holds the gateway {gateway}.")
                return None
            if version == 6 and subnet.prefixlen != 64:
                self.add_error(prefix + "subnet", "DHCPv6 needs a /64 subnet.")
                return None
            if version == 4 and data.get("ipv4_no_dhcp"):
                self.add_error("ipv4_no_dhcp", "Either give a DHCP range or choose no DHCP, not both.")
                return None
        elif version == 4 and not data.get("ipv4_no_dhcp"):
            start, end = default_dhcp_range(subnet, gateway)
        return {"subnet": subnet, "gateway": gateway, "start": start, "end": end}


def default_dhcp_range(subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address) -> tuple:
    """The longer run of the subnet's host addresses on either side of the gateway (a /24 with its
    gateway at .1: .2 to .254), or (None, None) when there is no room for one."""
    first, last = subnet.network_address + 1, subnet.broadcast_address - 1
    below = (first, gateway - 1) if gateway > first else None
    above = (gateway + 1, last) if gateway < last else None
    runs = [run for run in (above, below) if run]
    return max(runs, key=lambda run: int(run[1]) - int(run[0])) if runs else (None, None)


def network_arguments(form: NetworkForm) -> dict:
    """The form's data as the create operation's JSON arguments."""
    data = form.cleaned_data

    def subnet(value: dict | None) -> dict | None:
        if not value:
            return None
        return {"gateway": str(value["gateway"]), "prefix": value["subnet"].prefixlen,
                "dhcp_start": str(value["start"]) if value["start"] else None,
                "dhcp_end": str(value["end"]) if value["end"] else None}

    return {
        "name": data["name"], "mode": data["mode"], "bridge": data.get("bridge") or None,
        "forward_dev": data.get("forward_dev") or None, "macvtap_mode": data["macvtap_mode"],
        "ipv4": subnet(data.get("ipv4")), "ipv6": subnet(data.get("ipv6")), "domain": data.get("domain") or None,
        "mtu": data.get("mtu"), "dns_hosts": [list(entry) for entry in data.get("dns_hosts") or []],
        "inbound_kbps": data.get("inbound_kbps"), "outbound_kbps": data.get("outbound_kbps"),
        "openvswitch": bool(data.get("openvswitch")), "portgroups": data.get("portgroups") or [],
        "autostart": bool(data.get("autostart")), "start_now": bool(data.get("start_now")),
    }


class NetworkFormBase(forms.Form):
    def __init__(self, *args, network: VirtualNetwork, **kwargs) -> None:
        self.network = network
        super().__init__(*args, **kwargs)

    def subnets(self) -> list:
        return [ipaddress.ip_network(text, strict=False) for text in self.network.subnets]

    def static_hosts(self) -> list[dict]:
        return [host for ip in self.network.details.get("ips", []) for host in ip.get("hosts", [])]

    def gateways(self) -> set:
        return {ipaddress.ip_address(ip["address"]) for ip in self.network.details.get("ips", []) if ip.get("address")}


class StaticLeaseForm(NetworkFormBase):
    mac = forms.CharField(max_length=64, label="MAC address")
    ip = forms.CharField(max_length=64, label="IP address")
    hostname = forms.CharField(required=False, max_length=253, label="Host name (optional)")

    def clean_mac(self) -> str:
        mac = clean_mac(self.cleaned_data["mac"])
        for host in self.static_hosts():
            if (host.get("mac") or "").lower() == mac:
                raise ValidationError(f"{mac} already has a static lease on this network ({host.get('ip')}).")
        return mac

    def clean_ip(self) -> str:
        address = parse_address(self.cleaned_data["ip"].strip())
        subnet = next((subnet for subnet in self.subnets() if address in subnet), None)
        if subnet is None:
            shown = ", ".join(str(subnet) for subnet in self.subnets()) or "none"
            raise ValidationError(f"{address} is outside the network's subnets ({shown}).")
        require_host_address(address, subnet, label="address")
        if address in self.gateways():
            raise ValidationError(f"{address} is the host's own address on this network.")
        for host in self.static_hosts():
            if host.get("ip") and ipaddress.ip_address(host["ip"]) == address:
                raise ValidationError(f"{address} is already the static lease of {host.get('mac')}.")
        if address.version == 6:
            raise ValidationError("Static leases by MAC are for IPv4: DHCPv6 identifies clients otherwise.")
        return str(address)

    def clean_hostname(self) -> str:
        value = self.cleaned_data["hostname"].strip()
        return clean_hostname(value) if value else ""

    def clean(self) -> dict:
        data = super().clean()
        if not self.network.active and not self.network.persistent:
            raise ValidationError("The network is neither running nor defined.")
        return data


class RemoveStaticLeaseForm(NetworkFormBase):
    mac = forms.ChoiceField(error_messages={"invalid_choice": "The network has no static lease for %(value)s."})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["mac"].choices = [(host["mac"], host["mac"]) for host in self.static_hosts() if host.get("mac")]


class DNSHostForm(NetworkFormBase):
    ip = forms.CharField(max_length=64, label="IP address")
    hostname = forms.CharField(max_length=253, label="Host name")

    def clean_ip(self) -> str:
        address = parse_address(self.cleaned_data["ip"].strip())
        if not any(address in subnet for subnet in self.subnets()):
            raise ValidationError(f"{address} is outside the network's subnets.")
        if any(entry[0] == str(address) for entry in self.network.details.get("dns_hosts", [])):
            raise ValidationError(f"{address} already has a DNS entry on this network.")
        return str(address)

    def clean_hostname(self) -> str:
        return clean_hostname(self.cleaned_data["hostname"].strip())


class RemoveDNSHostForm(NetworkFormBase):
    ip = forms.ChoiceField(error_messages={"invalid_choice": "The network has no DNS entry for %(value)s."})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["ip"].choices = [(entry[0], entry[0]) for entry in self.network.details.get("dns_hosts", [])
                                     if entry[0]]


class NetworkEditForm(NetworkFormBase):
    """What can change on an existing network: its IPv4 DHCP range, DNS domain, MTU and QoS."""

    ipv4_dhcp_start = forms.CharField(required=False, max_length=64, label="IPv4 DHCP range start",
                                      help_text="Both empty: no DHCP. A running network takes a new range live.")
    ipv4_dhcp_end = forms.CharField(required=False, max_length=64, label="IPv4 DHCP range end")
    domain = forms.CharField(required=False, max_length=253, label="DNS domain",
                             help_text="Applies on the network's next start.")
    mtu = forms.IntegerField(required=False, label="MTU", help_text="Applies on the network's next start.",
                             error_messages={"invalid": "Give the MTU as a number."})
    inbound_kbps = forms.IntegerField(required=False, label="QoS inbound average (KiB/s)", min_value=1)
    outbound_kbps = forms.IntegerField(required=False, label="QoS outbound average (KiB/s)", min_value=1)

    @classmethod
    def initial_for(cls, network: VirtualNetwork) -> dict:
        details = network.details
        ipv4 = next((ip for ip in details.get("ips", []) if ip.get("family") == "ipv4"), None)
        first_range = (ipv4 or {}).get("ranges") or [[None, None]]
        return {"ipv4_dhcp_start": first_range[0][0], "ipv4_dhcp_end": first_range[0][1],
                "domain": details.get("domain"), "mtu": details.get("mtu"),
                "inbound_kbps": details.get("inbound"), "outbound_kbps": details.get("outbound")}

    def ipv4_subnet(self):
        return next((subnet for subnet in self.subnets() if subnet.version == 4), None)

    def clean_domain(self) -> str:
        value = self.cleaned_data["domain"].strip()
        return clean_hostname(value) if value else ""

    def clean(self) -> dict:
        data = super().clean()
        if not self.network.persistent:
            raise ValidationError("The network is transient: it has no definition to change.")
        routed = self.network.mode in ROUTED_MODES
        if not routed and any(data.get(name) for name in ("ipv4_dhcp_start", "ipv4_dhcp_end", "domain", "mtu")):
            raise ValidationError("Bridge and macvtap networks have no DHCP, DNS or MTU of their own; only QoS.")
        mtu = data.get("mtu")
        if mtu is not None and not MTU_MIN <= mtu <= MTU_MAX:
            self.add_error("mtu", f"The MTU must be between {MTU_MIN} and {MTU_MAX}.")
        data["dhcp_range"] = self._clean_range(data)
        return data

    def _clean_range(self, data: dict) -> list[str] | None:
        start_text, end_text = data.get("ipv4_dhcp_start", "").strip(), data.get("ipv4_dhcp_end", "").strip()
        if not start_text and not end_text:
            return None
        if not (start_text and end_text):
            self.add_error("ipv4_dhcp_end", "Give both ends of the DHCP range, or neither.")
            return None
        subnet = self.ipv4_subnet()
        if subnet is None:
            self.add_error("ipv4_dhcp_start", "The network has no IPv4 subnet to give addresses from.")
            return None
        try:
            start = parse_address(start_text, version=4, label="DHCP range start")
            end = parse_address(end_text, version=4, label="DHCP range end")
            require_host_address(start, subnet, label="DHCP range start")
            require_host_address(end, subnet, label="DHCP range end")
        except ValidationError as exc:
            self.add_error("ipv4_dhcp_start", exc)
            return None
        if start > end:
            self.add_error("ipv4_dhcp_start", f"The DHCP range is reversed: {start} comes after {end}.")
            return None
        gateway = next((gateway for gateway in self.gateways() if gateway in subnet), None)
        if gateway is not None and start <= gateway <= end:
            self.add_error("ipv4_dhcp_start", f"The DHCP range {start}-{end} holds the gateway {gateway}.")
            return None
        return [str(start), str(end)]
