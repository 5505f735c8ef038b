"""A NIC's guest addresses: from the guest agent (asked only when the live XML says it is
connected), on libvirt's test driver, which answers the agent call with an address per NIC."""
from __future__ import annotations

from virt.domains import agent_addresses

CONNECTED = ("<domain><devices><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' "
             "state='connected'/></channel></devices></domain>")


def test_it_reads_the_agents_addresses_by_mac_when_the_agent_is_connected(test_conn):
    domain = test_conn.lookupByName("web1")
    assert agent_addresses(domain, CONNECTED) == {"52:54:00:aa:00:01": ["10.251.200.11/24"]}


def test_it_does_not_ask_without_a_connected_agent(test_conn):
    domain = test_conn.lookupByName("web1")
    assert agent_addresses(domain, domain.XMLDesc(0)) is None
    assert agent_addresses(domain, CONNECTED.replace("connected", "disconnected")) is None
