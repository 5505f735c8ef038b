"""Changing a VM through its pages, a real worker and the real libvirtd, checked in libvirt's own XML."""
from __future__ import annotations

import os

import libvirt
import pytest
from django.urls import reverse
from lxml import etree

from accounts.models import Grant, Role
from domains.models import Domain
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.models import Operation
from tests.domains.helpers import LOCAL, cached
from tests import stack
from tests.guests import TEST_GUEST_PREFIX, small_guest_xml
from virt import devices
from virt.errors import InvalidArgument, OperationInvalid

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LIVE, CONFIG = libvirt.VIR_DOMAIN_AFFECT_LIVE, libvirt.VIR_DOMAIN_AFFECT_CONFIG
BOTH = {"live": "on", "persistent": "on"}



@pytest.fixture
def isolated_network(local_libvirt):
    """A transient network with no forward and no addresses: nothing can route or answer on it."""
    conn = libvirt.open(LOCAL)
    name = f"{TEST_GUEST_PREFIX}net-{os.urandom(3).hex()}"
    network = etree.Element("network")
    etree.SubElement(network, "name").text = name
    etree.SubElement(network, "bridge", stp="on", delay="0")
    created = conn.networkCreateXML(etree.tostring(network, encoding="unicode"))
    yield name
    try:
        created.destroy()
    except libvirt.libvirtError:
        pass


def define_guest(guests, *, start: bool = False, acpi: bool = False, max_vcpus: int | None = None,
                 cdrom: bool = False, vnc_password: str | None = None) -> libvirt.virDomain:
    """A small test guest (tests/guests.py) with the extras a test needs, owned by `guests`."""
    name = f"{TEST_GUEST_PREFIX}{os.urandom(4).hex()}"
    root = etree.fromstring(small_guest_xml(name))
    if acpi:  # PCI hot-plug (NICs, virtio disks) and vCPU hot-plug need ACPI
        root.find("os").addnext(etree.Element("features"))
        etree.SubElement(root.find("features"), "acpi")
    if max_vcpus:
        root.find("vcpu").text = str(max_vcpus)
        root.find("vcpu").set("current", "1")
    if cdrom:
        disk = etree.Element("disk", type="file", device="cdrom")
        etree.SubElement(disk, "driver", name="qemu", type="raw")
        etree.SubElement(disk, "target", dev="hdc", bus="ide")
        etree.SubElement(disk, "readonly")
        root.find("devices").insert(0, disk)
    if vnc_password:
        root.find("devices/graphics").set("passwd", vnc_password)
    domain = libvirt.open(LOCAL).defineXML(etree.tostring(root, encoding="unicode"))
    guests.created.append((LOCAL, name))
    if start:
        domain.create()
    return domain



def submit(client, url_name: str, domain: Domain, data: dict) -> Operation:
    """POST a config form, then wait for the operation it queued."""
    response = client.post(reverse(url_name, args=[domain.pk]), data)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    operation = Operation.objects.filter(target_id=domain.pk).latest("created_at")
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=60,
                     message=f"{operation.kind} to finish")
    operation.refresh_from_db()
    domain.refresh_from_db()
    return operation


def succeeded(operation: Operation) -> Operation:
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return operation


def xml_of(guest: libvirt.virDomain, scope: int) -> etree._Element:
    return etree.fromstring(guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if scope == CONFIG else 0))


def refused(client, url_name: str, domain: Domain, data: dict) -> dict:
    response = client.post(reverse(url_name, args=[domain.pk]), data)
    assert response.status_code == 400
    assert not Operation.objects.exists()
    return response.context["form"].errors


# ---------------------------------------------------------------------------------------------
# Changes that reach libvirt


def test_it_attaches_a_pool_volume_live_and_persistently_then_detaches_it(celery_worker, local_host, guests,
                                                                         admin_client, scratch_pool):
    path = scratch_pool.create_volume("data.qcow2").path()
    guest = define_guest(guests, start=True)
    domain = cached(local_host, guest)
    operation = succeeded(submit(admin_client, "domains:config_disk_attach", domain,
                                 {"pool": scratch_pool.name, "volume": "data.qcow2", "bus": "usb", **BOTH}))
    assert operation.message == f"Attached {scratch_pool.name}/data.qcow2 as sda (usb), live and persistently"
    for scope in (LIVE, CONFIG):
        disk = xml_of(guest, scope).find(f"devices/disk/source[@file='{path}']/..")
        assert disk.find("target").attrib == {"dev": "sda", "bus": "usb"}
        assert disk.find("driver").get("type") == "qcow2"
    assert path in domain.xml_live and path in domain.xml_inactive
    assert [disk["target"] for disk in domain.details["disks"]] == ["sda"]

    operation = succeeded(submit(admin_client, "domains:config_disk_detach", domain, {"target": "sda", **BOTH}))
    assert operation.message == "Detached sda, live and persistently"
    assert path not in guest.XMLDesc(0) and path not in guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert path not in domain.xml_live and domain.details["disks"] == []


def test_it_says_clearly_when_the_volume_is_not_in_the_pool(celery_worker, local_host, guests, admin_client,
                                                            scratch_pool):
    guest = define_guest(guests)
    domain = cached(local_host, guest)
    before = guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    operation = submit(admin_client, "domains:config_disk_attach", domain,
                       {"pool": scratch_pool.name, "volume": "missing.qcow2", "bus": "virtio", "persistent": "on"})
    assert operation.state == OperationState.FAILED
    assert operation.error == f"The pool {scratch_pool.name!r} has no volume named 'missing.qcow2'."
    assert guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before


def test_it_adds_a_nic_without_boot_rom_on_an_isolated_network(celery_worker, isolated_network, local_host, guests,
                                                                admin_client):
    guest = define_guest(guests, start=True, acpi=True)
    domain = cached(local_host, guest)
    mac = "52:54:00:5e:10:01"
    operation = succeeded(submit(admin_client, "domains:config_nic_attach", domain, {
        "network": isolated_network, "model": "virtio", "mac": mac.upper(), "no_boot_rom": "on", **BOTH}))
    assert operation.message == f"Added a virtio NIC {mac} on {isolated_network}, live and persistently"
    for scope in (LIVE, CONFIG):
        nic = xml_of(guest, scope).find(f"devices/interface/mac[@address='{mac}']/..")
        assert nic.get("type") == "network" and nic.find("source").get("network") == isolated_network
        assert nic.find("rom").get("enabled") == "no"
    assert domain.details["interfaces"][0]["mac"] == mac

    # Removed from the definition only: PCI unplug from the running guest would wait for an OS.
    succeeded(submit(admin_client, "domains:config_nic_detach", domain, {"mac": mac, "persistent": "on"}))
    assert xml_of(guest, CONFIG).find("devices/interface") is None
    assert xml_of(guest, LIVE).find(f"devices/interface/mac[@address='{mac}']") is not None


def test_it_sets_vcpus_live_and_persistently_within_the_maximum(celery_worker, local_host, guests, admin_client):
    guest = define_guest(guests, start=True, acpi=True, max_vcpus=2)
    domain = cached(local_host, guest)
    operation = succeeded(submit(admin_client, "domains:config_vcpus", domain, {"vcpus": "2", **BOTH}))
    assert operation.message == "vCPUs set to 2, live and persistently"
    assert guest.vcpusFlags(LIVE) == 2 and guest.vcpusFlags(CONFIG) == 2
    assert domain.vcpus == 2

    errors = refused_after(admin_client, "domains:config_vcpus", domain, {"vcpus": "3", **BOTH})
    assert errors["vcpus"] == ["3 vCPUs is more than this VM's maximum of 2; raise the maximum (persistent) first."]


def test_it_sets_memory_and_its_maximum_persistently(celery_worker, local_host, guests, admin_client):
    guest = define_guest(guests)
    domain = cached(local_host, guest)
    operation = succeeded(submit(admin_client, "domains:config_memory", domain,
                                 {"memory_mib": "48", "maximum_mib": "64", "persistent": "on"}))
    assert operation.message == "Memory set to 48 MiB (maximum 64 MiB), persistently (from the next start)"
    config = xml_of(guest, CONFIG)
    assert config.findtext("memory") == str(64 * 1024) and config.findtext("currentMemory") == str(48 * 1024)
    assert domain.memory_kib == 48 * 1024 and domain.details["memory_kib"] == 64 * 1024
    page = admin_client.get(reverse("domains:detail", args=[domain.pk])).content.decode()
    assert "48 MiB (max 64)" in page
    host_reconcile(host=local_host)  # the bulk read stores the same current amount, not the maximum
    domain.refresh_from_db()
    assert domain.memory_kib == 48 * 1024


def test_it_says_when_a_running_guest_does_not_take_a_memory_change(celery_worker, local_host, guests,
                                                                     admin_client):
    name = f"{TEST_GUEST_PREFIX}{os.urandom(4).hex()}"
    root = etree.fromstring(small_guest_xml(name))
    root.find("memory").text = "64"
    root.find("devices/memballoon").set("model", "virtio")  # a balloon device, but SeaBIOS has no driver for it
    guest = libvirt.open(LOCAL).defineXML(etree.tostring(root, encoding="unicode"))
    guests.created.append((LOCAL, name))
    guest.create()
    domain = cached(local_host, guest)
    assert "64 MiB (max 64)" in admin_client.get(reverse("domains:detail", args=[domain.pk])).content.decode()

    operation = succeeded(submit(admin_client, "domains:config_memory", domain, {"memory_mib": "48", **BOTH}))
    assert operation.message == ("Memory set to 48 MiB, live and persistently; the guest still holds 64 MiB after "
                                 "5 s: its OS has no balloon driver (or has not answered yet), so the running VM "
                                 "keeps what it has")
    assert domain.memory_kib == 64 * 1024  # what the running guest has, as libvirt reports it


def test_it_refuses_a_live_memory_change_without_a_balloon_device(local_host, guests, admin_client):
    guest = define_guest(guests, start=True)  # <memballoon model='none'/>
    domain = cached(local_host, guest)
    errors = refused(admin_client, "domains:config_memory", domain, {"memory_mib": "16", **BOTH})
    assert errors["memory_mib"] == ["This VM has no memory balloon device, so its memory cannot change while it "
                                    "runs: untick 'live' to change its definition (from the next start)."]
    page = admin_client.get(reverse("domains:detail", args=[domain.pk])).content.decode()
    assert "32 MiB (max 32)" in page and "no balloon device: a change applies from the next start" in page


def test_it_inserts_and_ejects_cdrom_media_live_and_persistently(celery_worker, local_host, guests, admin_client,
                                                                 scratch_pool):
    path = scratch_pool.create_volume("installer.iso", capacity_mib=1, fmt="raw").path()
    guest = define_guest(guests, start=True, cdrom=True)
    domain = cached(local_host, guest)
    operation = succeeded(submit(admin_client, "domains:config_media", domain, {
        "target": "hdc", "pool": scratch_pool.name, "volume": "installer.iso", **BOTH}))
    assert operation.message == f"Inserted {scratch_pool.name}/installer.iso into hdc, live and persistently"
    for scope in (LIVE, CONFIG):
        assert xml_of(guest, scope).find("devices/disk[@device='cdrom']/source").get("file") == path

    operation = succeeded(submit(admin_client, "domains:config_media", domain, {"target": "hdc", **BOTH}))
    assert operation.message == "Ejected the medium of hdc, live and persistently"
    for scope in (LIVE, CONFIG):
        assert xml_of(guest, scope).find("devices/disk[@device='cdrom']/source[@file]") is None


def test_it_sets_the_boot_order(celery_worker, local_host, guests, admin_client):
    guest = define_guest(guests, cdrom=True)
    domain = cached(local_host, guest)
    operation = succeeded(submit(admin_client, "domains:config_boot_order", domain,
                                 {"first": "cdrom", "second": "hd", "third": "network"}))
    assert operation.message == "Boot order set to cdrom, hd, network (from the next start)"
    assert [boot.get("dev") for boot in xml_of(guest, CONFIG).iterfind("os/boot")] == ["cdrom", "hd", "network"]


def test_it_round_trips_title_and_description_with_markup_and_unicode(celery_worker, local_host, guests,
                                                                      admin_client):
    guest = define_guest(guests, start=True)
    domain = cached(local_host, guest)
    title = "<b>web</b> & \"front\" 'end' — ünïcødé ✓ 𝄞"
    description = "line one <script>alert(1)</script>\nline two &amp; ]]> it's \"quoted\""
    succeeded(submit(admin_client, "domains:config_metadata", domain,
                     {"title": title, "description": description, **BOTH}))
    for scope in (LIVE, CONFIG):
        assert guest.metadata(libvirt.VIR_DOMAIN_METADATA_TITLE, None, scope) == title
        assert guest.metadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, None, scope) == description
    assert domain.details["title"] == title and domain.details["description"] == description
    page = admin_client.get(reverse("domains:detail", args=[domain.pk])).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    succeeded(submit(admin_client, "domains:config_metadata", domain, {"title": "", "description": "", **BOTH}))
    assert xml_of(guest, CONFIG).find("title") is None and xml_of(guest, LIVE).find("description") is None


def refused_after(client, url_name: str, domain: Domain, data: dict) -> dict:
    """Like refused(), when earlier operations on the VM exist: no new one may appear."""
    count = Operation.objects.count()
    response = client.post(reverse(url_name, args=[domain.pk]), data)
    assert response.status_code == 400 and Operation.objects.count() == count
    return response.context["form"].errors


def test_the_worker_checks_the_maxima_before_changing_anything(local_host, guests):
    """The form's maxima come from the cache; the worker checks the VM as it is, and changes nothing
    when one part of the request is refused."""
    guest = define_guest(guests)
    before = guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    with pytest.raises(InvalidArgument, match=r"^2 vCPUs is more than the VM's definition's maximum of 1\.$"):
        devices.set_vcpus(guest, count=2, maximum=None, live=False, persistent=True)
    with pytest.raises(InvalidArgument, match=r"^3 vCPUs is more than the new maximum of 2 vCPUs\.$"):
        devices.set_vcpus(guest, count=3, maximum=2, live=False, persistent=True)
    with pytest.raises(InvalidArgument, match=r"^64 MiB is more than the VM's definition's maximum of 32 MiB\.$"):
        devices.set_memory(guest, memory_kib=64 * 1024, maximum_kib=None, live=False, persistent=True)
    with pytest.raises(OperationInvalid, match="The VM is not running, so a live-only change has nothing to act on"):
        devices.set_memory(guest, memory_kib=16 * 1024, maximum_kib=None, live=True, persistent=False)
    assert guest.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) == before


# ---------------------------------------------------------------------------------------------
# Bad input: a clear error, and nothing queued


@pytest.fixture
def shut_off_vm(local_host, guests) -> Domain:
    return cached(local_host, define_guest(guests))


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"memory_mib": "0"}, "memory_mib", "Memory must be at least 1 MiB."),
    ({"memory_mib": "-64"}, "memory_mib", "Memory must be at least 1 MiB."),
    ({"memory_mib": "lots"}, "memory_mib", "Give a whole number of MiB."),
    ({"memory_mib": "64"}, "memory_mib", "64 MiB is more than this VM's maximum of 32 MiB; raise the maximum "
                                         "(persistent) first."),
    ({"memory_mib": "64", "maximum_mib": "32"}, "memory_mib", "64 MiB is more than the new maximum of 32 MiB."),
])
def test_it_refuses_bad_memory(shut_off_vm, admin_client, data, field, message):
    errors = refused(admin_client, "domains:config_memory", shut_off_vm, {**data, "persistent": "on"})
    assert errors[field] == [message]


def test_it_refuses_memory_above_the_hosts(shut_off_vm, admin_client):
    host_mib = shut_off_vm.host.memory_kib // 1024
    errors = refused(admin_client, "domains:config_memory", shut_off_vm,
                     {"memory_mib": str(host_mib + 1), "maximum_mib": str(host_mib + 1), "persistent": "on"})
    expected = f"{host_mib + 1} MiB is more than the host {shut_off_vm.host} has ({host_mib} MiB)."
    assert errors["memory_mib"] == [expected] and errors["maximum_mib"] == [expected]


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"vcpus": "0"}, "vcpus", "A VM needs at least 1 vCPU."),
    ({"vcpus": "2"}, "vcpus", "2 vCPUs is more than this VM's maximum of 1; raise the maximum (persistent) first."),
    ({"vcpus": "2", "maximum": "1"}, "vcpus", "2 vCPUs is more than the new maximum of 1."),
])
def test_it_refuses_bad_vcpus(shut_off_vm, admin_client, data, field, message):
    errors = refused(admin_client, "domains:config_vcpus", shut_off_vm, {**data, "persistent": "on"})
    assert errors[field] == [message]


def test_it_refuses_more_vcpus_than_the_host_allows(shut_off_vm, admin_client):
    limit = shut_off_vm.host.capabilities["max_vcpus"]  # the hypervisor's limit for the machine type
    errors = refused(admin_client, "domains:config_vcpus", shut_off_vm,
                     {"vcpus": "1", "maximum": str(limit + 1), "persistent": "on"})
    assert errors["maximum"] == [f"{limit + 1} vCPUs is more than the host {shut_off_vm.host} allows ({limit})."]


@pytest.mark.parametrize(("volume", "message"), [
    ("/etc/passwd", "Paths typed by hand are not accepted: pick a pool and give the volume's name in it."),
    ("../../etc/passwd", "Paths typed by hand are not accepted: pick a pool and give the volume's name in it."),
    ("..", "Give a volume's name in the pool (letters, digits, '.', '_', '+' or '-'), not a path."),
    ("disk.qcow2\n", "Give a volume's name in the pool (letters, digits, '.', '_', '+' or '-'), not a path."),
    ("a b", "Give a volume's name in the pool (letters, digits, '.', '_', '+' or '-'), not a path."),
])
def test_it_refuses_disk_paths_typed_by_hand(shut_off_vm, admin_client, scratch_pool, volume, message):
    host_reconcile(host=shut_off_vm.host)  # the scratch pool becomes a choice
    errors = refused(admin_client, "domains:config_disk_attach", shut_off_vm,
                     {"pool": scratch_pool.name, "volume": volume, "bus": "virtio", "persistent": "on"})
    assert errors["volume"] == [message]


def test_it_refuses_a_pool_the_host_does_not_have(shut_off_vm, admin_client):
    errors = refused(admin_client, "domains:config_disk_attach", shut_off_vm,
                     {"pool": "/var/lib/libvirt/images", "volume": "x.qcow2", "bus": "virtio", "persistent": "on"})
    assert errors["pool"][0].startswith("/var/lib/libvirt/images is not a pool offered for this VM")


@pytest.mark.parametrize(("mac", "message"), [
    ("52:54:00:zz:00:01", "'52:54:00:zz:00:01' is not a MAC address: write six pairs of hex digits like "
                          "52:54:00:12:34:56."),
    ("52:54:00:00:01", "'52:54:00:00:01' is not a MAC address: write six pairs of hex digits like 52:54:00:12:34:56."),
    ("52-54-00-00-00-01", "'52-54-00-00-00-01' is not a MAC address: write six pairs of hex digits like "
                          "52:54:00:12:34:56."),
    ("01:00:5e:00:00:01", "01:00:5e:00:00:01 is a multicast address: the first octet must be even "
                          "(52:54:00:... is safe)."),
    ("ff:ff:ff:ff:ff:ff", "ff:ff:ff:ff:ff:ff is a multicast address: the first octet must be even "
                          "(52:54:00:... is safe)."),
])
def test_it_refuses_a_mac_that_is_not_a_unicast_mac(shut_off_vm, admin_client, isolated_network, mac, message):
    host_reconcile(host=shut_off_vm.host)  # the network becomes a choice
    errors = refused(admin_client, "domains:config_nic_attach", shut_off_vm,
                     {"network": isolated_network, "model": "virtio", "mac": mac, "no_boot_rom": "on",
                      "persistent": "on"})
    assert errors["mac"] == [message]


@pytest.mark.parametrize(("data", "message"), [
    ({}, "Choose live, persistent or both."),
    ({"live": "on"}, "The VM is not running: a live-only change has nothing to act on. Choose persistent to "
                     "change its definition."),
])
def test_it_refuses_a_change_with_nowhere_to_apply(shut_off_vm, admin_client, data, message):
    errors = refused(admin_client, "domains:config_metadata", shut_off_vm, {"title": "x", **data})
    assert errors["__all__"] == [message]


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"title": "two\nlines"}, "title", "The title must be a single line; put longer text in the description."),
    ({"description": "bell \x07"}, "description",
     "The text cannot be stored: it contains U+0007, which XML 1.0 cannot represent."),
])
def test_it_refuses_text_libvirt_cannot_hold(shut_off_vm, admin_client, data, field, message):
    errors = refused(admin_client, "domains:config_metadata", shut_off_vm, {**data, "persistent": "on"})
    assert errors[field] == [message]


def test_it_refuses_a_repeated_boot_device(shut_off_vm, admin_client):
    errors = refused(admin_client, "domains:config_boot_order", shut_off_vm, {"first": "hd", "second": "hd"})
    assert errors["__all__"] == ["Each device may appear once in the boot order (hd is repeated)."]


def test_it_offers_the_config_pages_on_the_vm_page(shut_off_vm, admin_client, client, django_user_model):
    page = admin_client.get(reverse("domains:detail", args=[shut_off_vm.pk])).content.decode()
    for action in ("attach_disk", "attach_nic", "set_vcpus", "set_memory", "change_media", "set_boot_order",
                   "set_metadata", "xml"):
        assert f'data-action="{action}"' in page
    viewer = django_user_model.objects.create_user("viewer", password="x")
    Grant.objects.create(user=viewer, host=shut_off_vm.host, role=Role.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("domains:config_vcpus", args=[shut_off_vm.pk])).status_code == 403
    assert client.post(reverse("domains:config_vcpus", args=[shut_off_vm.pk]),
                       {"vcpus": "1", "persistent": "on"}).status_code == 403
    assert not Operation.objects.exists()


# ---------------------------------------------------------------------------------------------
# A q35 VM with no free hot-plug port: refused before anything is queued, in plain words


@pytest.fixture
def full_q35_vm(local_host, guests) -> tuple[libvirt.virDomain, Domain]:
    """A running q35 guest with one PCIe root port, which libvirt gives to its USB controller."""
    name = f"{TEST_GUEST_PREFIX}{os.urandom(4).hex()}"
    root = etree.fromstring(small_guest_xml(name))
    root.find("os/type").set("machine", "q35")
    devices_element = root.find("devices")
    devices_element.insert(0, etree.Element("controller", type="pci", model="pcie-root"))
    devices_element.insert(1, etree.Element("controller", type="pci", model="pcie-root-port"))
    guest = libvirt.open(LOCAL).defineXML(etree.tostring(root, encoding="unicode"))
    guests.created.append((LOCAL, name))
    guest.create()
    return guest, cached(local_host, guest)


def test_it_refuses_a_live_disk_or_nic_a_q35_vm_has_no_port_for(full_q35_vm, admin_client, scratch_pool,
                                                                 isolated_network):
    _guest, domain = full_q35_vm
    assert domain.details["free_hotplug_ports"] == 0
    scratch_pool.create_volume("late.qcow2")
    errors = refused(admin_client, "domains:config_disk_attach", domain,
                     {"pool": scratch_pool.name, "volume": "late.qcow2", "bus": "virtio", **BOTH})
    assert errors["__all__"] == ["This VM has no free PCIe port left to plug a virtio disk into while it runs. "
                                 "Untick 'live' to add it to the definition only (it appears at the next start); "
                                 "VMs made by vmsite's wizard have 14 ports."]
    errors = refused(admin_client, "domains:config_nic_attach", domain,
                     {"network": isolated_network, "model": "virtio", **BOTH})
    assert "no free PCIe port left to plug a NIC into" in errors["__all__"][0]
    errors = refused(admin_client, "domains:config_nic_attach", domain,
                     {"network": isolated_network, "model": "e1000", **BOTH})
    assert errors["model"] == ["An e1000 NIC is a conventional PCI device, which a running q35 VM cannot take: "
                               "choose virtio or e1000e, or untick 'live' to add it at the next start."]


def test_the_worker_says_in_plain_words_when_libvirt_finds_no_pci_slot(full_q35_vm, isolated_network):
    guest, _domain = full_q35_vm
    with pytest.raises(OperationInvalid, match=r"^The running VM has no free PCI slot for this device"):
        devices.attach_nic(guest.connect(), guest, network=isolated_network, model="virtio", mac=None,
                           boot_rom=False, live=True, persistent=False)
