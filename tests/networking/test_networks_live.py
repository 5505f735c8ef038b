"""Networks through the pages, a real worker and the real libvirtd, checked with virsh.

Subnets are in 10.251.0.0/16 (this suite's range on the shared machine); no test sends a packet.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse
from lxml import etree

from networking.models import VirtualNetwork
from operations.choices import OperationState
from tests.networking.helpers import NetworkCleanup, post_and_wait, succeeded, unique_name, virsh

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cleanup():
    networks = NetworkCleanup()
    yield networks
    networks.remove_all()


def create(client, local_host, cleanup, **fields) -> VirtualNetwork:
    name = cleanup.add(fields.pop("name", unique_name()))
    data = {"host": local_host.pk, "name": name, "macvtap_mode": "bridge", **fields}
    operation = post_and_wait(client, reverse("networking:add"), data)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return VirtualNetwork.objects.get(host=local_host, name=name)


def live_xml(name: str, *flags: str) -> etree._Element:
    return etree.fromstring(virsh("net-dumpxml", name, *flags))


@pytest.mark.parametrize("mode,subnet,forward", [("nat", "10.251.11.0/24", "nat"),
                                                 ("isolated", "10.251.12.0/24", None),
                                                 ("route", "10.251.13.0/24", "route")])
def test_it_defines_starts_stops_and_deletes_a_network(celery_worker, local_host, admin_client, cleanup, mode,
                                                       subnet, forward):
    base = subnet.rsplit(".", 1)[0]
    network = create(admin_client, local_host, cleanup, mode=mode, ipv4_subnet=subnet,
                     ipv4_dhcp_start=f"{base}.100", ipv4_dhcp_end=f"{base}.150", domain="lab.example",
                     mtu="1400", dns_hosts=f"{base}.7 db", start_now="on", autostart="on")
    info = virsh("net-info", network.name)
    assert "Active:         yes" in info and "Autostart:      yes" in info and "Persistent:     yes" in info
    xml = live_xml(network.name)
    assert (xml.find("forward").get("mode") if xml.find("forward") is not None else None) == forward
    assert xml.find("ip").attrib == {"address": f"{base}.1", "prefix": "24"}
    assert xml.find("ip/dhcp/range").attrib == {"start": f"{base}.100", "end": f"{base}.150"}
    assert xml.find("mtu").get("size") == "1400" and xml.find("domain").get("name") == "lab.example"
    assert xml.findtext("dns/host/hostname") == "db"
    assert (network.active, network.autostart, network.mode, network.subnets) == (True, True, mode, [f"{base}.1/24"])
    assert network.bridge == xml.find("bridge").get("name")

    detail = admin_client.get(reverse("networking:detail", args=[network.pk]))
    assert detail.status_code == 200 and f"{base}.1/24".encode() in detail.content

    succeeded(post_and_wait(admin_client, reverse("networking:action", args=[network.pk, "stop"])))
    assert "Active:         no" in virsh("net-info", network.name)
    network.refresh_from_db()
    assert not network.active

    succeeded(post_and_wait(admin_client, reverse("networking:action", args=[network.pk, "autostart_off"])))
    assert "Autostart:      no" in virsh("net-info", network.name)

    succeeded(post_and_wait(admin_client, reverse("networking:action", args=[network.pk, "start"])))
    assert "Active:         yes" in virsh("net-info", network.name)

    operation = post_and_wait(admin_client, reverse("networking:delete", args=[network.pk]),
                              {"confirm_name": network.name})
    assert succeeded(operation).message == f"Deleted the network {network.name}"
    assert network.name not in virsh("net-list", "--all", "--name").split()
    assert not VirtualNetwork.objects.filter(pk=network.pk).exists()


def test_it_adds_and_removes_a_static_lease_live_without_a_restart(celery_worker, local_host, admin_client, cleanup):
    network = create(admin_client, local_host, cleanup, mode="isolated", ipv4_subnet="10.251.14.0/24",
                     ipv4_dhcp_start="10.251.14.100", ipv4_dhcp_end="10.251.14.150", start_now="on")
    dnsmasq_pid = Path(f"/run/libvirt/network/{network.name}.pid").read_text().strip()
    hostsfile = Path(f"/var/lib/libvirt/dnsmasq/{network.name}.hostsfile")

    operation = succeeded(post_and_wait(admin_client, reverse("networking:lease_add", args=[network.pk]),
                                        {"mac": "52:54:00:fb:00:01", "ip": "10.251.14.20", "hostname": "web"}))
    assert operation.message == "Added the static lease 52:54:00:fb:00:01 → 10.251.14.20, live and persistently"
    for flags in ((), ("--inactive",)):
        host = live_xml(network.name, *flags).find("ip/dhcp/host")
        assert host.attrib == {"mac": "52:54:00:fb:00:01", "name": "web", "ip": "10.251.14.20"}
    assert "52:54:00:fb:00:01,10.251.14.20,web" in hostsfile.read_text()  # dnsmasq was told, live
    network.refresh_from_db()
    assert network.details["ips"][0]["hosts"] == [{"mac": "52:54:00:fb:00:01", "ip": "10.251.14.20", "name": "web"}]

    # The same MAC again is refused by the form, before anything is queued.
    response = admin_client.post(reverse("networking:lease_add", args=[network.pk]),
                                 {"mac": "52:54:00:fb:00:01", "ip": "10.251.14.21"})
    assert response.status_code == 400

    succeeded(post_and_wait(admin_client, reverse("networking:lease_remove", args=[network.pk]),
                            {"mac": "52:54:00:fb:00:01"}))
    for flags in ((), ("--inactive",)):
        assert live_xml(network.name, *flags).find("ip/dhcp/host") is None
    assert "52:54:00:fb:00:01" not in hostsfile.read_text()
    operation = succeeded(post_and_wait(admin_client, reverse("networking:dns_add", args=[network.pk]),
                                        {"ip": "10.251.14.30", "hostname": "db"}))
    assert operation.message == "Added the DNS entry db → 10.251.14.30, live and persistently"
    for flags in ((), ("--inactive",)):
        assert live_xml(network.name, *flags).findtext("dns/host[@ip='10.251.14.30']/hostname") == "db"
    assert "10.251.14.30\tdb" in Path(f"/var/lib/libvirt/dnsmasq/{network.name}.addnhosts").read_text()
    succeeded(post_and_wait(admin_client, reverse("networking:dns_remove", args=[network.pk]),
                            {"ip": "10.251.14.30"}))
    assert live_xml(network.name).find("dns/host") is None

    # Never restarted: the same dnsmasq serves the network.
    assert Path(f"/run/libvirt/network/{network.name}.pid").read_text().strip() == dnsmasq_pid
    assert "Active:         yes" in virsh("net-info", network.name)


def test_it_refuses_in_the_worker_a_subnet_that_overlaps_a_network_made_meanwhile(celery_worker, local_host,
                                                                                   admin_client, cleanup):
    """The form checks the cached rows; the worker checks the host as it is when it acts."""
    from tests.networking.helpers import LOCAL
    import libvirt

    other = cleanup.add(unique_name("raw-"))
    conn = libvirt.open(LOCAL)
    conn.networkDefineXML(f"<network><name>{other}</name><ip address='10.251.15.1' prefix='24'/></network>")
    name = cleanup.add(unique_name())
    operation = post_and_wait(admin_client, reverse("networking:add"), {
        "host": local_host.pk, "name": name, "mode": "isolated", "macvtap_mode": "bridge",
        "ipv4_subnet": "10.251.15.128/25"})
    assert operation.state == OperationState.FAILED
    assert operation.error == (f"Refused, nothing was defined: 10.251.15.128/25 overlaps 10.251.15.0/24 of the "
                               f"network {other}.")
    assert name not in virsh("net-list", "--all", "--name").split()


def test_it_edits_a_running_network_live_where_libvirt_can_and_says_what_waits(celery_worker, local_host,
                                                                               admin_client, cleanup):
    network = create(admin_client, local_host, cleanup, mode="nat", ipv4_subnet="10.251.16.0/24",
                     ipv4_dhcp_start="10.251.16.100", ipv4_dhcp_end="10.251.16.150", start_now="on")
    ifindex = Path(f"/sys/class/net/{network.bridge}/ifindex").read_text()
    page = admin_client.get(reverse("networking:edit", args=[network.pk]))
    assert page.context["form"].initial["ipv4_dhcp_start"] == "10.251.16.100"

    operation = succeeded(post_and_wait(admin_client, reverse("networking:edit", args=[network.pk]), {
        "ipv4_dhcp_start": "10.251.16.120", "ipv4_dhcp_end": "10.251.16.200", "mtu": "1400",
        "domain": "lab.example"}))
    assert operation.message == ("Saved; applied live: DHCP range; applies on the network's next start (stop and "
                                 "start it): DNS domain, MTU")
    live, inactive = live_xml(network.name), live_xml(network.name, "--inactive")
    for document in (live, inactive):
        assert document.find("ip/dhcp/range").attrib == {"start": "10.251.16.120", "end": "10.251.16.200"}
        assert len(document.findall("ip/dhcp/range")) == 1
    assert live.find("mtu") is None and inactive.find("mtu").get("size") == "1400"
    assert inactive.find("domain").get("name") == "lab.example"
    # The network was not restarted (libvirt restarts only its dnsmasq to take a new range).
    assert "Active:         yes" in virsh("net-info", network.name)
    assert Path(f"/sys/class/net/{network.bridge}/ifindex").read_text() == ifindex  # the same bridge

    response = admin_client.post(reverse("networking:edit", args=[network.pk]),
                                 {"ipv4_dhcp_start": "10.251.16.200", "ipv4_dhcp_end": "10.251.16.120"})
    assert response.status_code == 400
    assert "reversed" in " ".join(response.context["form"].errors["ipv4_dhcp_start"])
    response = admin_client.post(reverse("networking:edit", args=[network.pk]),
                                 {"ipv4_dhcp_start": "10.251.17.2", "ipv4_dhcp_end": "10.251.17.9"})
    assert "outside the subnet 10.251.16.0/24" in " ".join(response.context["form"].errors["ipv4_dhcp_start"])


@pytest.mark.parametrize("fields,check", [
    ({"mode": "bridge", "bridge": "vmsnetbr0", "openvswitch": "on", "portgroups": "web 10 1000 500\ndb 20"},
     lambda xml: (xml.find("forward").get("mode"), xml.find("bridge").get("name"),
                  xml.find("virtualport").get("type"), [g.get("name") for g in xml.iterfind("portgroup")],
                  xml.find("portgroup/vlan/tag").get("id"), xml.find("portgroup/bandwidth/inbound").get("average"))
     == ("bridge", "vmsnetbr0", "openvswitch", ["web", "db"], "10", "1000")),
    ({"mode": "macvtap", "forward_dev": "eth0", "macvtap_mode": "vepa"},
     lambda xml: (xml.find("forward").get("mode"), xml.find("forward/interface").get("dev")) == ("vepa", "eth0")),
])
def test_libvirt_accepts_the_bridge_and_macvtap_networks_it_builds(celery_worker, local_host, admin_client, cleanup,
                                                                     fields, check):
    """Defined, not started: an Open vSwitch bridge is not installed here, and a started macvtap
    network would hand the host's eth0 to guests."""
    network = create(admin_client, local_host, cleanup, ipv4_subnet="", **fields)
    assert check(live_xml(network.name, "--inactive"))
    assert "Active:         no" in virsh("net-info", network.name)
    assert network.mode == fields["mode"]
