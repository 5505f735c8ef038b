"""DHCP leases read from the real libvirtd and shown on the network's and the VM's pages.

The guests send nothing (TESTING.md), so dnsmasq never leases an address here: the test writes the
lease into the status file that dnsmasq's lease helper keeps for the test's own network, which is
what libvirt's virNetworkGetDHCPLeases reads."""
from __future__ import annotations

import json
import time
from pathlib import Path

import libvirt
import pytest
from django.urls import reverse

from domains.models import Domain
from inventory.reconcile import host_reconcile
from networking.models import Lease, VirtualNetwork
from tests.networking.helpers import LOCAL, NetworkCleanup, define_guest, unique_name

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
MAC = "52:54:00:fb:43:01"


@pytest.fixture
def network_with_a_lease():
    cleanup = NetworkCleanup()
    name = cleanup.add(unique_name())
    network = libvirt.open(LOCAL).networkCreateXML(
        f"<network><name>{name}</name><ip address='10.251.43.1' prefix='24'><dhcp>"
        "<range start='10.251.43.100' end='10.251.43.150'/></dhcp></ip></network>")
    expiry = int(time.time()) + 3600
    Path(f"/var/lib/libvirt/dnsmasq/{network.bridgeName()}.status").write_text(json.dumps(
        [{"ip-address": "10.251.43.120", "mac-address": MAC, "hostname": "vm1", "expiry-time": expiry}]))
    yield name, expiry
    cleanup.remove_all()  # destroying the network removes its status file too


def test_it_stores_leases_on_reconcile_and_shows_them_on_both_pages(local_host, network_with_a_lease, guests,
                                                                    admin_client):
    name, expiry = network_with_a_lease
    guest = define_guest(guests)
    guest.attachDeviceFlags(f"<interface type='network'><mac address='{MAC}'/><source network='{name}'/>"
                            "<rom enabled='no'/></interface>", libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    host_reconcile(host=local_host)
    network = VirtualNetwork.objects.get(host=local_host, name=name)
    [lease] = Lease.objects.filter(network=network)
    assert (lease.mac, lease.ip, lease.prefix, lease.hostname, int(lease.expiry.timestamp())) == (
        MAC, "10.251.43.120", 24, "vm1", expiry)

    page = admin_client.get(reverse("networking:detail", args=[network.pk]))
    assert list(page.context["leases"]) == [lease]
    assert b"10.251.43.120/24" in page.content and b"vm1" in page.content
    assert [nic["mac"] for nic in page.context["attached"]] == [MAC]
    domain = Domain.objects.get(host=local_host, uuid=guest.UUIDString())
    vm_page = admin_client.get(reverse("domains:detail", args=[domain.pk]))
    assert vm_page.context["nics"][0]["addresses"] == ["10.251.43.120"]

    # A reconcile that finds nothing new rewrites nothing.
    seq = network.seq
    diffs = host_reconcile(host=local_host)
    assert diffs["networks"].changed == 0
    network.refresh_from_db()
    assert network.seq == seq and Lease.objects.get(network=network).pk == lease.pk
