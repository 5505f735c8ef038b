"""Host interfaces: listing from the interface and node-device APIs; define, commit and rollback
against libvirt's test driver; the read-only message against the real libvirtd (Debian's libvirt
cannot define interfaces)."""
from __future__ import annotations

import libvirt
import pytest
from django.urls import reverse
from django.utils.html import escape

from inventory.reconcile import host_reconcile
from networking.models import HostInterface
from operations.models import Operation
from tests.networking.helpers import wait_for
from virt.errors import NotFound, OperationInvalid
from virt.interfaces import (
    READ_ONLY_MESSAGE, InterfaceSpec, build_interface, changes_supported, define_interface, delete_interface,
    in_transaction, list_interfaces,
)

pytestmark = pytest.mark.django_db


def names(conn: libvirt.virConnect) -> list[str]:
    return sorted(interface.name() for interface in conn.listAllInterfaces(0))


def test_it_lists_interfaces_with_kind_mac_addresses_and_members(test_conn):
    listed = {summary.name: summary for summary in list_interfaces(test_conn)}
    assert listed["eth1"].kind == "ethernet" and listed["eth1"].mac == "aa:bb:cc:dd:ee:ff"
    assert listed["eth1"].details["addresses"] == ["192.0.2.5/24"] and listed["eth1"].details["mtu"] == 1500
    assert listed["br0"].kind == "bridge" and listed["br0"].details["members"] == ["eth2"]


@pytest.mark.parametrize("spec,xml", [
    (InterfaceSpec(kind="bridge", name="br1", members=("eth1",), ipv4="dhcp"),
     '<interface type="bridge" name="br1"><start mode="onboot"/><protocol family="ipv4"><dhcp/></protocol>'
     '<bridge stp="off" delay="0"><interface type="ethernet" name="eth1"/></bridge></interface>'),
    (InterfaceSpec(kind="vlan", name="eth1.42", vlan=42, parent="eth1", ipv4="10.251.9.2/24", mtu=1400),
     '<interface type="vlan" name="eth1.42"><start mode="onboot"/><mtu size="1400"/><protocol family="ipv4">'
     '<ip address="10.251.9.2" prefix="24"/></protocol><vlan tag="42"><interface name="eth1"/></vlan></interface>'),
    (InterfaceSpec(kind="bond", name="bond0", members=("eth1", "eth2"), bond_mode="802.3ad"),
     '<interface type="bond" name="bond0"><start mode="onboot"/><bond mode="802.3ad">'
     '<interface type="ethernet" name="eth1"/><interface type="ethernet" name="eth2"/></bond></interface>'),
])
def test_it_builds_bridge_vlan_and_bond_xml(spec, xml):
    from lxml import etree
    assert etree.canonicalize(build_interface(spec), strip_text=True) == etree.canonicalize(xml, strip_text=True)


def test_the_probe_says_supported_and_leaves_alone_a_transaction_someone_else_has_open(test_conn):
    test_conn.changeBegin(0)  # an admin's change in progress (or a concurrent reconcile's probe)
    try:
        assert changes_supported(test_conn)
        test_conn.changeRollback(0)  # still ours to end: the probe did not roll it back
    finally:
        try:
            test_conn.changeRollback(0)
        except Exception:
            pass


def test_it_defines_and_commits_a_bridge_a_vlan_and_a_bond_on_the_test_driver(test_conn):
    assert changes_supported(test_conn)
    assert define_interface(test_conn, InterfaceSpec(kind="bridge", name="br1", members=("eth1",))) == \
        "Defined the bridge br1 and started it (committed)"
    define_interface(test_conn, InterfaceSpec(kind="vlan", name="eth1.42", vlan=42, parent="eth1"))
    define_interface(test_conn, InterfaceSpec(kind="bond", name="bond0", members=("eth1",)), start=False)
    assert names(test_conn) == ["bond0", "br0", "br1", "eth1", "eth1.42"]
    assert test_conn.interfaceLookupByName("br1").isActive()
    # Committed: a later rollback does not take them back.
    test_conn.changeBegin(0)
    test_conn.changeRollback(0)
    assert names(test_conn) == ["bond0", "br0", "br1", "eth1", "eth1.42"]
    assert delete_interface(test_conn, "bond0") == "Deleted the interface bond0 (committed)"
    assert "bond0" not in names(test_conn)


def test_it_rolls_back_every_step_when_one_fails(test_conn):
    def define_then_fail(conn):
        conn.interfaceDefineXML(build_interface(InterfaceSpec(kind="bridge", name="br7")), 0)
        assert "br7" in names(conn)
        raise RuntimeError("a later step failed")

    with pytest.raises(RuntimeError):
        in_transaction(test_conn, define_then_fail)
    assert names(test_conn) == ["br0", "eth1"]
    test_conn.changeBegin(0)  # no transaction was left open
    test_conn.changeRollback(0)


def test_it_refuses_members_the_host_does_not_have_and_leaves_nothing(test_conn):
    with pytest.raises(NotFound, match="no interface 'eth9'"):
        define_interface(test_conn, InterfaceSpec(kind="bridge", name="br1", members=("eth9",)))
    assert names(test_conn) == ["br0", "eth1"]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_defines_a_vlan_through_the_page_and_a_worker(celery_worker, test_host, admin_client):
    test_host.refresh_from_db()
    assert test_host.capabilities.get("interface_define") is True
    response = admin_client.post(reverse("networking:interface_add"), {
        "host": test_host.pk, "kind": "vlan", "name": "eth1.42", "vlan": "42", "parent": "eth1",
        "bond_mode": "active-backup", "start": "on"})
    assert response.status_code == 302, response.context and response.context["form"].errors
    operation = wait_for(Operation.objects.get(kind="network.interface_define"))
    assert operation.message == "Defined the vlan eth1.42 and started it (committed)", operation.error
    row = HostInterface.objects.get(host=test_host, name="eth1.42")
    assert (row.kind, row.active, row.details["vlan"], row.details["parent"]) == ("vlan", True, 42, "eth1")


@pytest.mark.parametrize("fields,field,message", [
    ({"kind": "vlan", "name": "eth1.0", "vlan": "0", "parent": "eth1"}, "vlan", "VLAN id 0 is outside 1-4094."),
    ({"kind": "vlan", "name": "eth1.4095", "vlan": "4095", "parent": "eth1"}, "vlan", "VLAN id 4095 is outside"),
    ({"kind": "vlan", "name": "eth9.5", "vlan": "5", "parent": "eth9"}, "parent", "has no interface 'eth9'"),
    ({"kind": "bridge", "name": "br-with-a-long-name"}, "name", "at most 15"),
    ({"kind": "bridge", "name": "br/1"}, "name", "contains '/' or a space"),
    ({"kind": "bridge", "name": "br 1"}, "name", "contains '/' or a space"),
    ({"kind": "bridge", "name": "br;ls"}, "name", "not a usable interface name"),
    ({"kind": "bridge", "name": "br1", "members": "eth9"}, "members", "has no interface 'eth9'"),
    ({"kind": "bridge", "name": "br1", "ipv4": "10.251.9.2"}, "ipv4", "Give the prefix too"),
    ({"kind": "bond", "name": "bond0"}, "members", "A bond needs at least one member."),
])
def test_it_refuses_bad_interface_input(test_host, admin_client, fields, field, message):
    response = admin_client.post(reverse("networking:interface_add"),
                                 {"host": test_host.pk, "bond_mode": "active-backup", **fields})
    assert response.status_code == 400 and not Operation.objects.exists()
    assert message in " ".join(response.context["form"].errors[field])


# ---------------------------------------------------------------------------------------------
# The real libvirtd


@pytest.fixture
def local_fresh(local_host):
    host_reconcile(host=local_host, fresh=True)
    local_host.refresh_from_db()
    return local_host


def test_it_lists_the_real_hosts_interfaces_and_says_they_are_read_only(local_fresh, admin_client):
    assert local_fresh.capabilities["interface_define"] is False
    eth0 = libvirt.open("qemu:///system").interfaceLookupByName("eth0")
    row = HostInterface.objects.get(host=local_fresh, name="eth0")
    assert row.mac == eth0.MACString() and row.active
    page = admin_client.get(reverse("networking:interfaces")).content.decode()
    assert escape(READ_ONLY_MESSAGE) in page
    response = admin_client.post(reverse("networking:interface_add"), {
        "host": local_fresh.pk, "kind": "bridge", "name": "vmsnetbr0", "bond_mode": "active-backup"})
    assert response.status_code == 400 and READ_ONLY_MESSAGE in response.context["form"].non_field_errors()
    assert not Operation.objects.exists()


def test_it_refuses_early_on_the_real_libvirtd_and_changes_nothing(local_libvirt):
    conn = libvirt.open(local_libvirt)
    before = names(conn)
    assert not changes_supported(conn)
    with pytest.raises(OperationInvalid, match="read-only"):
        define_interface(conn, InterfaceSpec(kind="bridge", name="vmsnetbr0"))
    assert names(conn) == before


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_edits_and_deletes_a_bridge_through_the_pages(celery_worker, test_host, admin_client):
    bridge = HostInterface.objects.get(host=test_host, name="br0")
    form = admin_client.get(reverse("networking:interface_add") + f"?from={bridge.pk}").context["form"]
    assert (form.initial["kind"], form.initial["name"], form.initial["members"]) == ("bridge", "br0", "eth2")
    response = admin_client.post(reverse("networking:interface_add"), {
        "host": test_host.pk, "kind": "bridge", "name": "br0", "members": "eth2 eth1", "stp": "on",
        "bond_mode": "active-backup", "mtu": "9000"})
    assert response.status_code == 302
    operation = wait_for(Operation.objects.get(kind="network.interface_define"))
    assert operation.message == "Changed the bridge br0 (committed)", operation.error
    bridge.refresh_from_db()
    assert (bridge.details["members"], bridge.details["mtu"]) == (["eth2", "eth1"], 9000)

    assert admin_client.post(reverse("networking:interface_delete", args=[bridge.pk])).status_code == 302
    operation = wait_for(Operation.objects.get(kind="network.interface_delete"))
    assert operation.message == "Deleted the interface br0 (committed)", operation.error
    assert not HostInterface.objects.filter(host=test_host, name="br0").exists()
