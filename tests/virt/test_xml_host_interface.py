"""Host interface and net node-device XML: libvirt's descriptions are read, new ones built in its order."""
from __future__ import annotations

from tests.virt.helpers import canonical
from virt.xml.host_interface import HostInterfaceXML, NetDeviceXML


def test_it_reads_a_bridge_with_its_addresses_and_members():
    xml = HostInterfaceXML.from_libvirt("""<interface type='bridge' name='br0'>
      <start mode='onboot'/><mtu size='1500'/>
      <protocol family='ipv4'><dhcp/></protocol>
      <protocol family='ipv6'><ip address='2001:db8::1' prefix='64'/></protocol>
      <bridge stp='off' delay='0.01'><interface type='ethernet' name='eth2'><mac address='aa:bb:cc:00:00:01'/>
      </interface><interface type='bond' name='bond0'/></bridge></interface>""")
    assert (xml.type, xml.name, xml.start_mode, xml.mtu, xml.bridge_stp) == ("bridge", "br0", "onboot", 1500, "off")
    assert [(p.family, p.dhcp, [(ip.address, ip.prefix) for ip in p.addresses]) for p in xml.protocols] == [
        ("ipv4", True, []), ("ipv6", False, [("2001:db8::1", 64)])]
    assert xml.members == ["eth2", "bond0"] and list(xml.bond_members) == []


def test_it_builds_a_vlan_in_libvirts_element_order():
    xml = HostInterfaceXML.new()
    xml.vlan_tag = 42
    xml.vlan_parent = "eth1"
    xml.mtu = 1400
    xml.type, xml.name, xml.start_mode = "vlan", "eth1.42", "onboot"
    assert canonical(xml.to_xml()) == canonical(
        "<interface type='vlan' name='eth1.42'><start mode='onboot'/><mtu size='1400'/>"
        "<vlan tag='42'><interface name='eth1'/></vlan></interface>")


def test_it_reads_the_net_capability_of_a_node_device():
    device = NetDeviceXML.from_libvirt("""<device><name>net_eth0_52_54_00_aa_bb_cc</name>
      <capability type='net'><interface>eth0</interface><address>52:54:00:AA:BB:CC</address>
      <link speed='1000' state='up'/><capability type='80203'/></capability></device>""")
    assert (device.interface, device.address, device.link_speed, device.link_state) == (
        "eth0", "52:54:00:AA:BB:CC", 1000, "up")
