"""The network XML model and builder, checked as XML and against libvirt's test driver."""
from __future__ import annotations

import libvirt
import pytest
from lxml import etree

from virt.errors import AlreadyExists, InvalidArgument, NotFound
from virt.networks import (
    NetworkSpec, PortGroupSpec, StaticHostSpec, SubnetSpec, add_dns_host, add_static_host, build_network, define,
    read_state, remove_static_host, set_autostart, start, stop, undefine,
)
from virt.xml.network import Network, summarize_network


def canonical(xml: str) -> str:
    return etree.canonicalize(xml, strip_text=True)


V4 = SubnetSpec("10.251.1.1", 24, "10.251.1.10", "10.251.1.20")


def test_it_builds_a_nat_network_with_dhcp_dns_mtu_domain_and_qos():
    spec = NetworkSpec(name="lab", mode="nat", bridge="virbr51", forward_dev="eth0", ipv4=V4,
                       ipv6=SubnetSpec("fd00:251:1::1", 64, "fd00:251:1::10", "fd00:251:1::20"),
                       domain="lab.example", mtu=1400, dns_hosts=(("10.251.1.5", "db"),),
                       static_hosts=(StaticHostSpec("52:54:00:00:00:01", "10.251.1.50", "web"),),
                       inbound_kbps=1000, outbound_kbps=500)
    assert canonical(build_network(spec).to_xml()) == canonical("""
      <network><name>lab</name><forward mode="nat" dev="eth0"/><bridge name="virbr51" stp="on" delay="0"/>
        <mtu size="1400"/><domain name="lab.example" localOnly="yes"/>
        <dns><host ip="10.251.1.5"><hostname>db</hostname></host></dns>
        <bandwidth><inbound average="1000"/><outbound average="500"/></bandwidth>
        <ip address="10.251.1.1" prefix="24"><dhcp><range start="10.251.1.10" end="10.251.1.20"/>
          <host mac="52:54:00:00:00:01" ip="10.251.1.50" name="web"/></dhcp></ip>
        <ip family="ipv6" address="fd00:251:1::1" prefix="64"><dhcp>
          <range start="fd00:251:1::10" end="fd00:251:1::20"/></dhcp></ip>
      </network>""")


@pytest.mark.parametrize("mode,forward", [("route", '<forward mode="route"/>'), ("open", '<forward mode="open"/>'),
                                          ("isolated", "")])
def test_it_builds_routed_open_and_isolated_networks(mode, forward):
    xml = build_network(NetworkSpec(name="n", mode=mode, ipv4=SubnetSpec("10.251.2.1", 24))).to_xml()
    assert canonical(xml) == canonical(f"""<network><name>n</name>{forward}<bridge stp="on" delay="0"/>
        <ip address="10.251.2.1" prefix="24"/></network>""")
    assert Network.from_xml(xml).mode == mode


def test_it_builds_a_bridge_network_with_open_vswitch_port_groups():
    spec = NetworkSpec(name="ovs", mode="bridge", bridge="ovsbr0", openvswitch=True,
                       portgroups=(PortGroupSpec("web", 10, True, 1000, 500), PortGroupSpec("db", 20)))
    assert canonical(build_network(spec).to_xml()) == canonical("""
      <network><name>ovs</name><forward mode="bridge"/><bridge name="ovsbr0"/><virtualport type="openvswitch"/>
        <portgroup name="web" default="yes"><vlan><tag id="10"/></vlan>
          <bandwidth><inbound average="1000"/><outbound average="500"/></bandwidth></portgroup>
        <portgroup name="db"><vlan><tag id="20"/></vlan></portgroup></network>""")


@pytest.mark.parametrize("macvtap_mode", ["bridge", "private", "vepa", "passthrough"])
def test_it_builds_macvtap_networks_in_every_mode(macvtap_mode):
    document = build_network(NetworkSpec(name="m", mode="macvtap", forward_dev="eth0", macvtap_mode=macvtap_mode))
    assert canonical(document.to_xml()) == canonical(
        f'<network><name>m</name><forward mode="{macvtap_mode}"><interface dev="eth0"/></forward></network>')
    assert document.summary().mode == "macvtap" and document.summary().forward_dev == "eth0"


def test_it_summarizes_a_network_with_a_netmask_as_libvirt_writes_it():
    summary = summarize_network("""<network><name>default</name><uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid>
      <forward mode='nat'/><bridge name='virbr0' stp='on' delay='0'/>
      <ip address='192.168.122.1' netmask='255.255.255.0'><dhcp><range start='192.168.122.2' end='192.168.122.254'/>
      </dhcp></ip></network>""")
    assert (summary.mode, summary.bridge) == ("nat", "virbr0")
    assert [(ip.family, ip.address, ip.prefix, ip.ranges) for ip in summary.ips] == [
        ("ipv4", "192.168.122.1", 24, (("192.168.122.2", "192.168.122.254"),))]


def test_it_leaves_unknown_parts_of_a_network_in_place_when_editing():
    document = Network.from_xml("<network><name>n</name><dnsmasq:options xmlns:dnsmasq='urn:x'/>"
                                "<ip address='10.251.3.1' prefix='24'/></network>")
    document.mtu = 9000
    assert "dnsmasq:options" in document.to_xml() and '<mtu size="9000"/>' in document.to_xml()


def test_it_refuses_a_bad_mac_in_a_static_host():
    document = build_network(NetworkSpec(name="n", mode="isolated", ipv4=SubnetSpec("10.251.4.1", 24)))
    with pytest.raises(ValueError, match="multicast"):
        document.ips[0].hosts.add().mac = "01:00:5e:00:00:01"


def test_it_defines_starts_stops_and_undefines_on_the_test_driver(test_conn):
    network = define(test_conn, build_network(NetworkSpec(name="lab", mode="nat", ipv4=V4)), autostart=True)
    assert (network.isActive(), network.autostart()) == (0, 1)
    assert start(network) == "Started" and start(network) == "Already active"
    assert set_autostart(network, enabled=False) == "Autostart off" and not network.autostart()
    state = read_state(network)
    assert (state.active, state.mode, state.leases) == (True, "nat", None)  # the test driver has no leases
    assert stop(network) == "Stopped" and stop(network) == "Already stopped"
    assert undefine(network) == "Deleted the network lab"
    with pytest.raises(libvirt.libvirtError):
        test_conn.networkLookupByName("lab")


def test_it_refuses_a_subnet_overlapping_a_network_already_on_the_host(test_conn):
    # 'outside' (10.251.200.0/24) was not made by vmsite: it is on the host all the same.
    with pytest.raises(InvalidArgument, match=r"10.251.200.128/25 overlaps 10.251.200.0/24 of the network outside"):
        define(test_conn, build_network(NetworkSpec(name="n", mode="isolated",
                                                    ipv4=SubnetSpec("10.251.200.129", 25))))
    assert [n.name() for n in test_conn.listAllNetworks()] == ["outside"]


def test_it_refuses_a_name_already_used(test_conn):
    with pytest.raises(AlreadyExists, match="already has a network named 'outside'"):
        define(test_conn, build_network(NetworkSpec(name="outside", mode="isolated")))


def test_it_adds_and_removes_static_leases_and_dns_entries_live(test_conn):
    network = test_conn.networkLookupByName("outside")
    message = add_static_host(network, StaticHostSpec("52:54:00:aa:00:02", "10.251.200.6", "web2"))
    assert message == "Added the static lease 52:54:00:aa:00:02 → 10.251.200.6, live and persistently"
    hosts = [(h.mac, h.ip, h.name) for h in Network.from_libvirt(network.XMLDesc(0)).ips[0].hosts]
    assert hosts == [("52:54:00:aa:00:01", "10.251.200.5", "web1"), ("52:54:00:aa:00:02", "10.251.200.6", "web2")]
    with pytest.raises(AlreadyExists, match="already gives 10.251.200.6"):
        add_static_host(network, StaticHostSpec("52:54:00:aa:00:03", "10.251.200.6"))
    with pytest.raises(AlreadyExists, match="already has a static lease for 52:54:00:aa:00:02"):
        add_static_host(network, StaticHostSpec("52:54:00:aa:00:02", "10.251.200.7"))
    with pytest.raises(InvalidArgument, match="in none of the network's subnets"):
        add_static_host(network, StaticHostSpec("52:54:00:aa:00:04", "10.251.201.7"))
    assert remove_static_host(network, mac="52:54:00:aa:00:02").startswith("Removed the static lease")
    with pytest.raises(NotFound):
        remove_static_host(network, mac="52:54:00:aa:00:02")
    add_dns_host(network, ip="10.251.200.8", hostname="db")
    assert [(h.ip, h.hostnames) for h in Network.from_libvirt(network.XMLDesc(0)).dns_hosts] == [
        ("10.251.200.8", ["db"])]


def test_it_defines_and_starts_an_ipv6_network_on_the_test_driver(test_conn):
    spec = NetworkSpec(name="v6", mode="isolated",
                       ipv6=SubnetSpec("fd00:251:44::1", 64, "fd00:251:44::100", "fd00:251:44::1ff"))
    network = define(test_conn, build_network(spec), start=True)
    [subnet] = read_state(network).details["ips"]
    assert subnet == {"family": "ipv6", "address": "fd00:251:44::1", "prefix": 64,
                      "ranges": [["fd00:251:44::100", "fd00:251:44::1ff"]], "hosts": []}
