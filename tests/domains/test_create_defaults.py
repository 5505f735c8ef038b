"""The wizard on a host with no storage pool and no network (a fresh harness host): an administrator
is offered the host's default pool and NAT network in place, and gets them without losing what was
typed; anyone else is told whom to ask, and cannot make them by posting."""
import ipaddress

import libvirt
import pytest
from django.urls import reverse
from django.utils import timezone
from lxml import etree
from playwright.sync_api import expect

from accounts.models import Grant, Role
from domains.models import Domain
from domains.host_defaults import free_subnet
from hosts.models import Host
from inventory.reconcile import host_reconcile
from networking.models import VirtualNetwork
from operations.choices import OperationState
from operations.models import Operation
from tests.hosts.test_registration import connect_result, finished, register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# A network that holds libvirt's usual subnet, so the offer must take the next free /24.
TAKEN_XML = ("<network><name>taken</name><bridge name='vmsiteoffer0'/>"
             "<ip address='192.168.122.1' prefix='24'/></network>")


@pytest.fixture
def bare(harness):
    """A harness host with no pool and one stopped network (on 192.168.122.0/24)."""
    host = harness()
    libvirt.open(host.tcp_uri).networkDefineXML(TAKEN_XML)
    yield host
    # Bridges and their addresses live in the machine's one network namespace: take them down.
    conn = libvirt.open(host.tcp_uri)
    for network in conn.listAllNetworks():
        if network.isActive():
            network.destroy()


@pytest.fixture
def bare_host(bare, celery_worker, admin_client) -> Host:
    host = register(admin_client, name=f"bare-{bare.index}", transport="tcp", address=bare.address)
    assert connect_result(host).state == OperationState.SUCCEEDED
    host.refresh_from_db()
    return host


def login(page, server: str, username: str, password: str) -> None:
    page.goto(f"{server}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def test_an_administrator_makes_the_default_pool_and_network_from_the_wizard(page, asgi_server, bare, bare_host,
                                                                             admin_user):
    assert str(free_subnet(bare_host)) == "192.168.123.0/24"
    problems = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("response", lambda response: response.status >= 400 and problems.append(f"{response.status} {response.url}"))
    login(page, asgi_server, "admin", "password")
    page.goto(f"{asgi_server}{reverse('domains:create', args=[bare_host.pk])}")
    page.fill("#id_name", "typed-before")
    page.fill("#id_memory_mib", "96")
    expect(page.locator("#offer-pool")).to_contain_text("has no active storage pool")

    page.click("#offer-pool-button")
    expect(page.locator("#offer-pool-status")).to_contain_text("Done", timeout=60_000)
    expect(page.locator("#id_disk_pool")).to_have_value("default")
    expect(page.locator("#id_disk_source")).to_have_value("new")
    page.click("#offer-network-button")
    expect(page.locator("#offer-network-status")).to_contain_text("Done", timeout=60_000)
    expect(page.locator("#id_nic_network")).to_have_value("default")
    expect(page.locator("#id_nic_kind")).to_have_value("network")
    expect(page.locator("#id_name")).to_have_value("typed-before")
    expect(page.locator("#id_memory_mib")).to_have_value("96")

    conn = libvirt.open(bare.tcp_uri)
    pool = conn.storagePoolLookupByName("default")
    assert pool.isActive() and pool.autostart()
    assert etree.fromstring(pool.XMLDesc(0)).findtext("target/path") == "/var/lib/libvirt/images"
    network = conn.networkLookupByName("default")
    assert network.isActive() and network.autostart()
    ip = etree.fromstring(network.XMLDesc(0)).find("ip")
    assert ipaddress.ip_interface(f"{ip.get('address')}/{ip.get('prefix')}").network == \
        ipaddress.ip_network("192.168.123.0/24")
    assert (ip.find("dhcp/range").get("start"), ip.find("dhcp/range").get("end")) == \
        ("192.168.123.2", "192.168.123.254")
    assert etree.fromstring(network.XMLDesc(0)).find("forward").get("mode") == "nat"

    # A second visit offers nothing more: the host now has both.
    page.goto(f"{asgi_server}{reverse('domains:create', args=[bare_host.pk])}")
    expect(page.locator("#id_disk_pool")).to_have_value("default")
    assert page.locator("[data-offer]").count() == 0
    assert problems == []


def test_a_stopped_default_network_is_started_rather_than_made_again(bare, bare_host, admin_client):
    # Bridge and subnet of this harness host's own (its index): nothing another test or run left can hold them.
    libvirt.open(bare.tcp_uri).networkDefineXML(
        f"<network><name>default</name><bridge name='vmsiteoffer{bare.index}'/><forward mode='nat'/>"
        f"<ip address='10.253.{bare.index}.1' prefix='24'/></network>")
    host_reconcile(host=bare_host)
    assert not VirtualNetwork.objects.get(host=bare_host, name="default").active
    response = admin_client.post(reverse("domains:create_default", args=[bare_host.pk, "network"]))
    assert response.status_code == 202, response.content
    operation = finished(Operation.objects.get(pk=response.json()["operation"]))
    assert operation.kind == "network.start" and operation.state == OperationState.SUCCEEDED, operation.error


def test_others_are_told_whom_to_ask_and_cannot_make_defaults(bare_host, client, django_user_model):
    operator = django_user_model.objects.create_user("host-operator", password="x")
    Grant.objects.create(user=operator, host=bare_host, role=Role.OPERATOR)
    client.force_login(operator)
    page = client.get(reverse("domains:create", args=[bare_host.pk])).content.decode()
    assert "Ask an administrator of vmsite to define and start a storage pool" in page
    assert "Ask an administrator of vmsite to define and start a virtual network" in page
    assert "offer-pool-button" not in page and "offer-network-button" not in page
    before = Operation.objects.count()
    for what in ("pool", "network"):
        response = client.post(reverse("domains:create_default", args=[bare_host.pk, what]))
        assert response.status_code == 403 and "Only an administrator" in response.json()["error"]
    assert client.post(reverse("domains:create_default", args=[bare_host.pk, "toaster"])).status_code == 404

    viewer = django_user_model.objects.create_user("host-viewer", password="x")
    Grant.objects.create(user=viewer, host=bare_host, role=Role.VIEWER)
    client.force_login(viewer)
    assert client.post(reverse("domains:create_default", args=[bare_host.pk, "pool"])).status_code == 403
    assert client.get(reverse("domains:create_choices", args=[bare_host.pk])).status_code == 403

    vm_user = django_user_model.objects.create_user("vm-only", password="x")  # the smallest grant: one VM
    vm = Domain.objects.create(host=bare_host, uuid="6f1c2d3e-0000-4000-8000-00000000beef", name="granted-vm",
                               synced_at=timezone.now())
    Grant.objects.create(user=vm_user, domain=vm, role=Role.OPERATOR)
    client.force_login(vm_user)
    assert client.post(reverse("domains:create_default", args=[bare_host.pk, "network"])).status_code == 404
    assert client.get(reverse("domains:create_choices", args=[bare_host.pk])).status_code == 404
    assert Operation.objects.count() == before
