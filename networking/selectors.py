"""Reads for the networking pages: from the database only."""
from __future__ import annotations

from django.db.models import QuerySet

from domains.models import Domain
from networking.models import Lease, VirtualNetwork


def network_list(*, host_id: int | None = None, search: str = "") -> QuerySet[VirtualNetwork]:
    networks = VirtualNetwork.objects.select_related("host").order_by("host__name", "name")
    if host_id:
        networks = networks.filter(host_id=host_id)
    if search:
        networks = networks.filter(name__icontains=search)
    return networks


def attached_nics(network: VirtualNetwork) -> list[dict]:
    """The VM NICs of the network's host that use it: by network name, or by its bridge."""
    attached = []
    for domain in Domain.objects.filter(host_id=network.host_id).only("pk", "name", "state", "details"):
        for nic in domain.details.get("interfaces", []):
            by_name = nic.get("type") == "network" and nic.get("source") == network.name
            by_bridge = nic.get("type") == "bridge" and network.bridge and nic.get("source") == network.bridge
            if by_name or by_bridge:
                attached.append({"domain": domain, **nic})
    return attached


def mac_in_use(*, host_id: int, mac: str, except_domain_id: int | None = None) -> bool:
    """Whether a VM of the host (any VM, seen by the user or not) has a NIC with this MAC."""
    mac = mac.lower()
    for domain_id, details in Domain.objects.filter(host_id=host_id).values_list("pk", "details"):
        if domain_id != except_domain_id and any((nic.get("mac") or "").lower() == mac
                                                 for nic in (details or {}).get("interfaces", [])):
            return True
    return False


def guest_addresses(domain: Domain) -> dict[str, list[str]]:
    """The addresses the host's networks leased to each of the VM's MACs, by MAC."""
    macs = [(nic.get("mac") or "").lower() for nic in domain.details.get("interfaces", []) if nic.get("mac")]
    addresses: dict[str, list[str]] = {}
    for mac, ip in Lease.objects.filter(network__host_id=domain.host_id, mac__in=macs).values_list("mac", "ip"):
        addresses.setdefault(mac, []).append(ip)
    return addresses


def domain_nics(domain: Domain) -> list[dict]:
    """The VM's NICs as the VM page lists them: each with its guest addresses, from the host's DHCP
    leases and from the guest agent when the VM has one."""
    leased = guest_addresses(domain)
    nics = []
    for nic in domain.details.get("interfaces", []):
        mac = (nic.get("mac") or "").lower()
        addresses = list(dict.fromkeys([*leased.get(mac, []), *nic.get("agent_addresses", [])]))
        nics.append({**nic, "addresses": addresses, "link": nic.get("link_state") or "up"})
    return nics
