"""VM NICs on the VM page: add to a running guest, link down and up live, move to another network,
change model, remove; through the pages, a real worker and the real libvirtd. The guests have no NIC
boot ROM and send nothing."""
from __future__ import annotations

import libvirt
import pytest
from django.urls import reverse
from lxml import etree

from domains.models import Domain
from inventory.reconcile import host_reconcile
from networking.models import Lease, VirtualNetwork
from operations.choices import OperationState
from operations.models import Operation
from tests.networking.helpers import LOCAL, NetworkCleanup, define_guest, isolated_network, post_and_wait, succeeded

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
MAC = "52:54:00:fb:10:01"
BOTH = {"live": "on", "persistent": "on"}


@pytest.fixture
def cleanup():
    networks = NetworkCleanup()
    yield networks
    networks.remove_all()


def nic_xml(guest: libvirt.virDomain, *, inactive: bool) -> etree._Element:
    root = etree.fromstring(guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0))
    return root.find(f"devices/interface/mac[@address='{MAC}']/..")


def domiflink(guest: libvirt.virDomain, *flags: str) -> str:
    import subprocess
    return subprocess.run(["virsh", "-c", LOCAL, "domif-getlink", guest.name(), MAC, *flags], check=True,
                          capture_output=True, text=True).stdout


def test_it_adds_a_nic_to_a_running_guest_and_sets_its_link_live(celery_worker, local_host, guests, cleanup,
                                                                  admin_client):
    conn = libvirt.open(LOCAL)
    first = isolated_network(conn, cleanup, 21)
    second = isolated_network(conn, cleanup, 22)
    guest = define_guest(guests, start=True)
    host_reconcile(host=local_host)
    domain = Domain.objects.get(host=local_host, uuid=guest.UUIDString())
    url = lambda name: reverse(name, args=[domain.pk])  # noqa: E731

    operation = succeeded(post_and_wait(admin_client, url("domains:config_nic_attach"), {
        "network": first, "model": "virtio", "mac": MAC, "no_boot_rom": "on", **BOTH}))
    assert operation.message == f"Added a virtio NIC {MAC} on {first}, live and persistently"
    for inactive in (False, True):
        assert nic_xml(guest, inactive=inactive).find("rom").get("enabled") == "no"

    operation = succeeded(post_and_wait(admin_client, url("domains:config_nic_link"),
                                        {"mac": MAC, "state": "down", **BOTH}))
    assert operation.message == f"NIC {MAC}: link down, live and persistently"
    assert "down" in domiflink(guest) and "down" in domiflink(guest, "--config")
    page = admin_client.get(reverse("domains:detail", args=[domain.pk])).content.decode()
    assert "Link up</button>" in page  # the button offers the opposite

    succeeded(post_and_wait(admin_client, url("domains:config_nic_link"), {"mac": MAC, "state": "up", "live": "on"}))
    assert "up" in domiflink(guest) and "down" in domiflink(guest, "--config")  # live only this time

    operation = succeeded(post_and_wait(admin_client, url("domains:config_nic_change"),
                                        {"mac": MAC, "network": second, **BOTH}))
    assert operation.message == f"NIC {MAC}: network {second}, live and persistently"
    for inactive in (False, True):
        assert nic_xml(guest, inactive=inactive).find("source").get("network") == second
    network = VirtualNetwork.objects.get(host=local_host, name=second)
    nics = admin_client.get(reverse("networking:detail", args=[network.pk])).context["attached"]
    assert [(nic["domain"].pk, nic["mac"]) for nic in nics] == [(domain.pk, MAC)]

    # A running guest's NIC cannot change model: the form says so, and persistent-only works.
    response = admin_client.post(url("domains:config_nic_change"), {"mac": MAC, "model": "e1000", **BOTH})
    assert response.status_code == 400 and "cannot change model" in str(response.context["form"].errors)
    operation = succeeded(post_and_wait(admin_client, url("domains:config_nic_change"),
                                        {"mac": MAC, "model": "e1000", "persistent": "on"}))
    assert operation.message == f"NIC {MAC}: model e1000, persistently (from the next start)"
    assert nic_xml(guest, inactive=True).find("model").get("type") == "e1000"
    assert nic_xml(guest, inactive=False).find("model").get("type") == "virtio"

    succeeded(post_and_wait(admin_client, url("domains:config_nic_detach"), {"mac": MAC, "persistent": "on"}))
    assert nic_xml(guest, inactive=True) is None


def test_it_shows_a_nics_leased_address_on_the_vm_page(local_host, guests, cleanup, admin_client):
    conn = libvirt.open(LOCAL)
    name = isolated_network(conn, cleanup, 23)
    guest = define_guest(guests)
    xml = (f"<interface type='network'><mac address='{MAC}'/><source network='{name}'/><model type='virtio'/>"
           "<link state='down'/><rom enabled='no'/></interface>")
    guest.attachDeviceFlags(xml, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    host_reconcile(host=local_host)
    domain = Domain.objects.get(host=local_host, uuid=guest.UUIDString())
    domain.refresh_from_db()
    # The guest sends nothing, so no lease can come from dnsmasq: store one as a reconcile would.
    network = VirtualNetwork.objects.get(host=local_host, name=name)
    Lease.objects.create(network=network, mac=MAC, ip="10.251.23.50", prefix=24, hostname="vm")
    response = admin_client.get(reverse("domains:detail", args=[domain.pk]))
    [nic] = response.context["nics"]
    assert (nic["source"], nic["mac"], nic["model"], nic["link"], nic["addresses"]) == (
        name, MAC, "virtio", "down", ["10.251.23.50"])
    assert not Operation.objects.exists()


def test_it_refuses_bad_nic_changes(local_host, guests, cleanup, admin_client):
    guest = define_guest(guests)
    host_reconcile(host=local_host)
    domain = Domain.objects.get(host=local_host, uuid=guest.UUIDString())
    url = reverse("domains:config_nic_link", args=[domain.pk])
    response = admin_client.post(url, {"mac": MAC, "state": "down", "persistent": "on"})
    assert response.status_code == 400 and "The VM has no NIC with the MAC" in str(response.context["form"].errors)
    response = admin_client.post(reverse("domains:config_nic_change", args=[domain.pk]), {"persistent": "on"})
    assert response.status_code == 400
    assert not Operation.objects.filter(state=OperationState.PENDING).exists()
