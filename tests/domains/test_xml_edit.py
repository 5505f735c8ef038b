"""The XML pages: every user reads the live and the inactive XML (never a password); superusers define
edited XML that the allowlist accepts, and anything it refuses defines nothing."""
from __future__ import annotations

import libvirt
import pytest
from django.urls import reverse
from lxml import etree

from accounts.models import Grant, Role
from domains.models import Domain
from operations.models import Operation
from tests.domains.helpers import LOCAL, cached
from tests import stack
from tests.domains.test_config import define_guest, succeeded
from virt import devices
from virt.errors import InvalidArgument

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

INACTIVE = libvirt.VIR_DOMAIN_XML_INACTIVE
SECURE = libvirt.VIR_DOMAIN_XML_SECURE
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
PASSWORD = "Vnc-S3c!"  # VNC allows 8 characters at most


@pytest.fixture
def local_host(local_libvirt):
    from hosts.services import host_register_local

    host, _ = host_register_local()
    return host


def refresh_xml(client, domain: Domain) -> Operation:
    response = client.post(reverse("domains:config_xml_refresh", args=[domain.pk]))
    assert response.status_code == 302
    operation = Operation.objects.filter(target_id=domain.pk, kind="domain.refresh").latest("created_at")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=30, message="refresh")
    domain.refresh_from_db()
    return succeeded(Operation.objects.get(pk=operation.pk))


def post_xml(client, domain: Domain, xml: str):
    return client.post(reverse("domains:config_xml_edit", args=[domain.pk]), {"xml": xml})


@pytest.fixture
def viewer(client, django_user_model, local_host):
    """A signed-in viewer of the local host."""
    user = django_user_model.objects.create_user("viewer", password="x")
    Grant.objects.create(user=user, host=local_host, role=Role.VIEWER)
    client.force_login(user)
    return client


def test_it_shows_every_user_the_live_and_inactive_xml_without_passwords(celery_worker, local_host, guests, viewer,
                                                                         admin_client):
    guest = define_guest(guests, start=True, vnc_password=PASSWORD)
    domain = cached(local_host, guest)
    page = viewer.get(reverse("domains:config_xml", args=[domain.pk])).content.decode()
    assert "Not read yet: press Refresh XML." in page

    refresh_xml(admin_client, domain)  # an operation: for operators
    assert domain.xml_inactive == guest.XMLDesc(INACTIVE) and domain.xml_live == guest.XMLDesc(0)
    page = viewer.get(reverse("domains:config_xml", args=[domain.pk])).content.decode()
    assert 'id="xml-inactive"' in page and 'id="xml-live"' in page
    assert f"&lt;name&gt;{guest.name()}&lt;/name&gt;" in page
    assert PASSWORD in guest.XMLDesc(SECURE) and PASSWORD not in page and "passwd" not in page
    assert 'data-action="edit_xml"' not in page


def test_it_defines_xml_a_superuser_edited_and_keeps_the_console_password(celery_worker, local_host, guests,
                                                                         admin_client):
    guest = define_guest(guests, vnc_password=PASSWORD)
    domain = cached(local_host, guest)
    refresh_xml(admin_client, domain)
    form = admin_client.get(reverse("domains:config_xml_edit", args=[domain.pk])).context["form"]
    root = etree.fromstring(form.initial["xml"])
    root.find("memory").text, root.find("memory").attrib["unit"] = "48", "MiB"
    root.find("currentMemory").text, root.find("currentMemory").attrib["unit"] = "48", "MiB"

    response = post_xml(admin_client, domain, etree.tostring(root, encoding="unicode"))
    assert response.status_code == 302
    operation = Operation.objects.get(kind="domain.define_xml")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=30, message="define")
    assert succeeded(Operation.objects.get(pk=operation.pk)).message == "Defined"
    defined = etree.fromstring(guest.XMLDesc(INACTIVE | SECURE))
    assert defined.findtext("memory") == str(48 * 1024)
    assert defined.find("devices/graphics").get("passwd") == PASSWORD
    domain.refresh_from_db()
    assert domain.memory_kib == 48 * 1024 and "<memory unit='KiB'>49152</memory>" in domain.xml_inactive


def test_it_refuses_the_xml_editor_to_users_who_are_not_superusers(local_host, guests, client, django_user_model):
    domain = cached(local_host, define_guest(guests))
    operator = django_user_model.objects.create_user("operator", password="x")
    Grant.objects.create(user=operator, host=local_host, role=Role.OPERATOR)
    client.force_login(operator)
    assert client.get(reverse("domains:config_xml_edit", args=[domain.pk])).status_code == 403
    assert post_xml(client, domain, domain_xml(domain)).status_code == 403
    assert not Operation.objects.exists()


def domain_xml(domain: Domain) -> str:
    return libvirt.open(LOCAL).lookupByUUIDString(str(domain.uuid)).XMLDesc(INACTIVE)


def with_qemu_commandline(root: etree._Element) -> None:
    commandline = etree.SubElement(root, f"{{{QEMU_NS}}}commandline", nsmap={"qemu": QEMU_NS})
    etree.SubElement(commandline, f"{{{QEMU_NS}}}arg", value="-monitor")
    etree.SubElement(commandline, f"{{{QEMU_NS}}}arg", value="tcp:127.0.0.1:4444,server,nowait")


def with_hostdev(root: etree._Element) -> None:
    hostdev = etree.SubElement(root.find("devices"), "hostdev", mode="subsystem", type="pci", managed="yes")
    etree.SubElement(etree.SubElement(hostdev, "source"), "address", domain="0x0000", bus="0x00", slot="0x01",
                     function="0x0")


def with_disk_outside_pools(root: etree._Element) -> None:
    disk = etree.SubElement(root.find("devices"), "disk", type="file", device="disk")
    etree.SubElement(disk, "source", file="/etc/shadow")
    etree.SubElement(disk, "target", dev="vdz", bus="virtio")


def with_new_uuid(root: etree._Element) -> None:
    root.find("uuid").text = "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(("change", "message"), [
    (with_qemu_commandline, "<qemu:commandline> is not accepted: it passes options straight to QEMU, bypassing "
                            "libvirt's checks."),
    (with_hostdev, "<hostdev> is not accepted: passing a host's PCI, USB or SCSI device to a VM is not allowed here."),
    (with_disk_outside_pools, "the disk vdz: '/etc/shadow' is not inside one of the host's storage pools."),
    (with_new_uuid, "The UUID must stay"),
])
def test_it_refuses_xml_the_allowlist_does_not_accept_and_defines_nothing(local_host, guests, admin_client, change,
                                                                          message):
    domain = cached(local_host, define_guest(guests))
    before = domain_xml(domain)
    root = etree.fromstring(before)
    change(root)
    response = post_xml(admin_client, domain, etree.tostring(root, encoding="unicode"))
    assert response.status_code == 400
    errors = response.context["form"].errors["xml"]
    assert len(errors) == 1 and errors[0].startswith(message)
    assert 'id="xml-errors"' in response.content.decode()
    assert not Operation.objects.exists() and domain_xml(domain) == before


@pytest.mark.parametrize("prefix", [
    '<!DOCTYPE domain [<!ENTITY secret SYSTEM "file:///etc/shadow">]>',
    '<!DOCTYPE domain SYSTEM "http://127.0.0.1:9/evil.dtd">',
])
def test_it_refuses_xml_with_an_external_entity_and_defines_nothing(local_host, guests, admin_client, prefix):
    domain = cached(local_host, define_guest(guests))
    before = domain_xml(domain)
    xml = prefix + before.replace("<devices>", "<description>&secret;</description><devices>")
    response = post_xml(admin_client, domain, xml)
    assert response.status_code == 400
    assert response.context["form"].errors["xml"] == ["XML with a DOCTYPE or entities is not accepted."]
    assert not Operation.objects.exists() and domain_xml(domain) == before


def test_it_refuses_the_name_of_another_vm(local_host, guests, admin_client):
    other = define_guest(guests)
    domain = cached(local_host, define_guest(guests))
    root = etree.fromstring(domain_xml(domain))
    root.find("name").text = other.name()
    response = post_xml(admin_client, domain, etree.tostring(root, encoding="unicode"))
    assert response.context["form"].errors["xml"] == [f"The host local already has a VM named {other.name()!r}."]
    assert not Operation.objects.exists()


def test_the_worker_checks_the_allowlist_again_before_defining(local_host, guests):
    """The form's pool list is a cache: the worker checks against the host as it is."""
    guest = define_guest(guests)
    domain = cached(local_host, guest)
    before = guest.XMLDesc(INACTIVE)
    root = etree.fromstring(before)
    with_disk_outside_pools(root)
    refusal = "^Refused, nothing was defined: the disk vdz: '/etc/shadow' is not inside"
    with pytest.raises(InvalidArgument, match=refusal):
        devices.define_xml(libvirt.open(LOCAL), guest, xml=etree.tostring(root, encoding="unicode"),
                           emulator=domain.host.capabilities["emulator"])
    assert guest.XMLDesc(INACTIVE) == before
