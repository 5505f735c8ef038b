"""Checks of networking input shared by the forms: names, subnets, addresses, VLAN ids.
Each raises ValidationError with words that say what is wrong and what to write instead."""
from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import ValidationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NETWORK_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
# Linux interface names: at most 15 bytes (IFNAMSIZ 16 with the NUL), no '/', no white space; vmsite
# also refuses every shell and XML metacharacter.
INTERFACE_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
INTERFACE_NAME_MAX = 15
HOSTNAME_RE = re.compile(r"\A(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\Z")
MAC_RE = re.compile(r"\A([0-9a-f]{2}:){5}[0-9a-f]{2}\Z")
VLAN_MIN, VLAN_MAX = 1, 4094


def clean_network_name(value: str) -> str:
    if not NETWORK_NAME_RE.match(value):
        raise ValidationError(f"{value!r} is not a usable network name: use 1 to 64 letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit.")
    return value


def clean_interface_name(value: str, *, what: str = "bridge") -> str:
    if len(value) > INTERFACE_NAME_MAX:
        raise ValidationError(f"{value!r} is {len(value)} characters long: Linux {what} names have at most "
                              f"{INTERFACE_NAME_MAX}.")
    if "/" in value or any(char.isspace() for char in value):
        raise ValidationError(f"{value!r} contains '/' or a space, which a Linux {what} name cannot hold.")
    if not INTERFACE_NAME_RE.match(value):
        raise ValidationError(f"{value!r} is not a usable {what} name: use letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit.")
    return value


def clean_vlan_id(value: int) -> int:
    if not VLAN_MIN <= value <= VLAN_MAX:
        raise ValidationError(f"VLAN id {value} is outside {VLAN_MIN}-{VLAN_MAX}.")
    return value


def parse_subnet(value: str, *, version: int) -> IPNetwork:
    """'10.251.1.0/24' (host bits must be zero) as a network of the given IP version."""
    family = "IPv4" if version == 4 else "IPv6"
    example = "10.251.1.0/24" if version == 4 else "fd00:251:1::/64"
    if "/" not in value:
        raise ValidationError(f"{value!r} is not a subnet in CIDR form: write the address and prefix, like {example}.")
    try:
        subnet = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            raise ValidationError(f"{value!r} has host bits set: write the subnet's first address, like "
                                  f"{ipaddress.ip_network(value, strict=False)}.") from None
        raise ValidationError(f"{value!r} is not a valid {family} subnet in CIDR form (like {example}).") from None
    if subnet.version != version:
        raise ValidationError(f"{value!r} is not an {family} subnet (like {example}).")
    usable_max = 30 if version == 4 else 126
    if subnet.prefixlen > usable_max or subnet.prefixlen < (8 if version == 4 else 8):
        raise ValidationError(f"A /{subnet.prefixlen} {family} subnet is not usable here: give a prefix between "
                              f"/8 and /{usable_max}.")
    return subnet


def parse_address(value: str, *, version: int | None = None, label: str = "address") -> IPAddress:
    if "%" in value:  # ipaddress takes any text after '%' as an IPv6 zone; libvirt's XML takes none
        raise ValidationError(f"{value!r} is not an IP address: write it without a zone ('%...').")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError(f"{value!r} is not an IP address.") from None
    if version is not None and address.version != version:
        raise ValidationError(f"The {label} {value} is not an IPv{version} address.")
    return address


def require_host_address(address: IPAddress, subnet: IPNetwork, *, label: str) -> None:
    """address lies in subnet and is neither its network nor (IPv4) its broadcast address."""
    if address not in subnet:
        raise ValidationError(f"The {label} {address} is outside the subnet {subnet}.")
    if address == subnet.network_address:
        raise ValidationError(f"The {label} {address} is the subnet's network address; use an address inside it.")
    if subnet.version == 4 and address == subnet.broadcast_address:
        raise ValidationError(f"The {label} {address} is the subnet's broadcast address; use an address inside it.")


def clean_mac(value: str) -> str:
    mac = value.strip().lower()
    if not MAC_RE.match(mac):
        raise ValidationError(f"{value!r} is not a MAC address: write six pairs of hex digits like 52:54:00:12:34:56.")
    if int(mac[:2], 16) & 1:
        raise ValidationError(f"{value} is a multicast address: the first octet must be even (52:54:00:... is safe).")
    return mac


def clean_hostname(value: str) -> str:
    if len(value) > 253 or not HOSTNAME_RE.match(value):
        raise ValidationError(f"{value!r} is not a host name: use letters, digits and '-', in labels separated by "
                              "dots.")
    return value

