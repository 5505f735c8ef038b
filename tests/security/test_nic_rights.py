"""Row 7 of issue 14: a grant on one VM lets its user set a NIC's link and model (and remove a
NIC), never choose a network, a MAC or a filter (the host's); a MAC another VM of the host has is
refused for everyone, administrators too, without naming that VM. Pages and API alike."""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from domains.models import Domain
from hosts.models import Host
from networking.models import NetworkFilter, VirtualNetwork
from operations.choices import OperationState
from operations.models import Operation
from tests.api.conftest import token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_ready")]

OWN_MAC = "52:54:00:aa:00:01"
SECRET_MAC = "52:54:00:aa:00:02"
BOTH = {"live": "on", "persistent": "on"}


@pytest.fixture
def setting():
    host = Host.objects.create(name=f"nics-{uuid.uuid4().hex[:8]}", transport="test", address="default")
    cached = {"host": host, "synced_at": timezone.now()}
    for name in ("default", "other"):
        VirtualNetwork.objects.create(uuid=str(uuid.uuid4()), name=name, **cached)
    NetworkFilter.objects.create(uuid=str(uuid.uuid4()), name="clean-traffic", **cached)
    nic = {"type": "network", "source": "default", "model": "virtio", "filter": "clean-traffic"}
    mine = Domain.objects.create(host=host, uuid=str(uuid.uuid4()), name="mine", state=5, persistent=True,
                                 synced_at=timezone.now(), details={"interfaces": [{**nic, "mac": OWN_MAC}]})
    Domain.objects.create(host=host, uuid=str(uuid.uuid4()), name="secret-neighbour", state=5, persistent=True,
                          synced_at=timezone.now(), details={"interfaces": [{**nic, "mac": SECRET_MAC}]})
    users = get_user_model()
    vm_operator = users.objects.create_user(f"vmop-{host.pk}", password="x")
    Grant.objects.create(user=vm_operator, domain=mine, role=Role.OPERATOR)
    host_operator = users.objects.create_user(f"hostop-{host.pk}", password="x")
    Grant.objects.create(user=host_operator, host=host, role=Role.OPERATOR)
    admin = users.objects.create_superuser(f"admin-{host.pk}", password="x")
    return {"host": host, "domain": mine, "vm_operator": vm_operator, "host_operator": host_operator, "admin": admin}


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(name: str, domain: Domain) -> str:
    return reverse(f"domains:config_nic_{name}", args=[domain.pk])


def api(route: str, domain: Domain) -> str:
    return f"/api/v1/vms/{domain.pk}/nics/{route}/"


def queued(domain: Domain) -> int:
    return Operation.objects.filter(target_type="domain", target_id=domain.pk).count()


def accepted(response, status: int = 302) -> bool:
    """The change was queued; it is then marked done (no worker here) so the next one may queue."""
    Operation.objects.filter(state=OperationState.PENDING).update(state=OperationState.SUCCEEDED)
    return response.status_code == status


@pytest.mark.parametrize("route,body", [
    ("attach", {"network": "default", "model": "virtio", "mac": "", **BOTH}),
    ("filter", {"mac": OWN_MAC, "filter": "", **BOTH}),
    ("filter", {"mac": OWN_MAC, "filter": "clean-traffic", **BOTH}),
])
def test_it_refuses_a_vm_scoped_operator_new_nics_and_filters(setting, route, body):
    domain = setting["domain"]
    client = page_client(setting["vm_operator"])
    assert client.get(page(route, domain)).status_code == 403
    assert client.post(page(route, domain), body).status_code == 403
    api_route = {"attach": "add", "filter": "filter"}[route]
    response = token_client(setting["vm_operator"]).post(api(api_route, domain), body, format="json")
    assert response.status_code == 403 and "operator's right on the host" in response.json()["detail"]
    assert queued(domain) == 0


def test_it_refuses_a_vm_scoped_operator_another_network_on_page_and_api(setting):
    domain = setting["domain"]
    body = {"mac": OWN_MAC, "network": "other", "persistent": "on"}
    response = page_client(setting["vm_operator"]).post(page("change", domain), body)
    assert response.status_code == 400
    assert "needs an operator's right on the host" in response.context["form"].errors["network"][0]
    response = token_client(setting["vm_operator"]).post(api("change", domain), body, format="json")
    assert response.status_code == 400 and "operator's right on the host" in str(response.json())
    assert queued(domain) == 0


def test_it_lets_a_vm_scoped_operator_set_link_and_model_and_says_what_it_may_not(setting):
    domain = setting["domain"]
    client = page_client(setting["vm_operator"])
    response = client.get(page("change", domain))
    assert "your grant is on this VM only" in response.content.decode()
    assert 'value="other"' not in response.content.decode()  # the host's networks are not listed
    for network in ("other", "no-such-network"):  # an existing and a made-up name: the same answer
        response = client.post(page("change", domain), {"mac": OWN_MAC, "network": network, "persistent": "on"})
        assert response.context["form"].errors["network"][0].startswith("Moving a NIC to another network needs")
    assert accepted(client.post(page("link", domain), {"mac": OWN_MAC, "state": "down", **BOTH}))
    assert accepted(client.post(page("change", domain), {"mac": OWN_MAC, "model": "e1000", "persistent": "on"}))
    assert accepted(token_client(setting["vm_operator"]).post(api("link", domain), {"mac": OWN_MAC, "state": "up",
                                                                                    **BOTH}, format="json"), 202)
    assert list(Operation.objects.filter(target_id=domain.pk).values_list("kind", flat=True).order_by("pk")) == [
        "domain.set_nic_link", "domain.update_nic", "domain.set_nic_link"]
    detail = client.get(reverse("domains:detail", args=[domain.pk])).content.decode()
    assert 'data-action="attach_nic"' not in detail and "?mac=" in detail
    assert page("filter", domain) not in detail
    assert 'id="nic-rights-note"' in detail


@pytest.mark.parametrize("who", ["host_operator", "admin"])
def test_it_lets_host_operators_add_nics_move_them_and_filter_them(setting, who):
    domain = setting["domain"]
    client = page_client(setting[who])
    assert accepted(client.post(page("attach", domain), {"network": "other", "model": "virtio", "mac": "", **BOTH}))
    assert accepted(client.post(page("change", domain), {"mac": OWN_MAC, "network": "other", **BOTH}))
    assert accepted(client.post(page("filter", domain), {"mac": OWN_MAC, "filter": "", **BOTH}))
    detail = client.get(reverse("domains:detail", args=[domain.pk])).content.decode()
    assert 'data-action="attach_nic"' in detail and 'id="nic-rights-note"' not in detail
    assert queued(domain) == 3


@pytest.mark.parametrize("who", ["host_operator", "admin"])
def test_it_refuses_a_mac_another_vm_of_the_host_has_without_naming_it(setting, who):
    domain = setting["domain"]
    body = {"network": "default", "model": "virtio", "mac": SECRET_MAC.upper(), **BOTH}
    response = page_client(setting[who]).post(page("attach", domain), body)
    assert response.status_code == 400
    errors = response.context["form"].errors["mac"][0]
    assert "already used by another VM on this host" in errors and "secret" not in response.content.decode()
    response = token_client(setting[who]).post(api("add", domain), body, format="json")
    assert response.status_code == 400 and "already used by another VM" in str(response.json())
    assert "secret" not in response.content.decode()
    assert queued(domain) == 0


def test_it_refuses_a_taken_mac_in_the_create_wizard_and_the_xml_editor(setting):
    from domains.forms_config import XMLEditForm
    from domains.forms_create import CreateDomainForm

    form = CreateDomainForm({"nic_mac": SECRET_MAC}, host=setting["host"])
    assert not form.is_valid() and "already used by another VM" in str(form.errors["nic_mac"])
    domain = setting["domain"]
    xml = (f"<domain type='qemu'><name>mine</name><uuid>{domain.uuid}</uuid><memory>65536</memory>"
           f"<os><type arch='x86_64'>hvm</type></os><devices><interface type='network'>"
           f"<mac address='{SECRET_MAC}'/><source network='default'/></interface></devices></domain>")
    form = XMLEditForm({"xml": xml}, domain=domain, user=setting["admin"])
    assert not form.is_valid() and "already used by another VM" in str(form.errors["xml"])
    assert "secret" not in str(form.errors)


@pytest.fixture
def test_driver(tmp_path):
    """libvirt's test driver over a private copy of tests/virt/samples/node.xml (web1, with two NICs),
    a second VM defined next to it, and a network for new NICs."""
    import shutil

    import libvirt

    from tests.virt.helpers import SAMPLES

    shutil.copy(SAMPLES / "node.xml", tmp_path / "node.xml")
    conn = libvirt.open(f"test://{tmp_path / 'node.xml'}")
    conn.networkCreateXML("<network><name>spare</name><bridge name='virbr-spare'/></network>")
    other = conn.defineXML("<domain type='test'><name>other</name><memory>65536</memory>"
                           "<os><type arch='x86_64'>hvm</type></os><devices/></domain>")
    yield conn, other
    conn.close()


def test_it_refuses_in_the_worker_a_mac_another_vm_of_the_host_has(test_driver):
    from virt import devices
    from virt.errors import OperationInvalid

    conn, other = test_driver
    with pytest.raises(OperationInvalid) as refused:
        devices.attach_nic(conn, other, network="spare", model="virtio", mac="52:54:00:AA:BB:CC", boot_rom=False,
                           live=False, persistent=True)
    assert str(refused.value) == "The MAC 52:54:00:aa:bb:cc is already used by another VM on this host: choose another."
    assert "web1" not in str(refused.value)
    web1 = conn.lookupByName("web1")
    assert {"52:54:00:aa:bb:cc", "52:54:00:aa:bb:cd"} <= devices.macs_in_use(conn)
    assert not devices.macs_in_use(conn, except_uuid=web1.UUIDString())  # a VM's own MACs are not "taken"
    assert devices.free_random_mac(conn) not in devices.macs_in_use(conn)
