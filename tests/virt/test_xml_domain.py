from __future__ import annotations

import uuid

import libvirt
import pytest
from lxml import etree

from virt.xml import Disk, Domain, Interface, summarize_domain, to_kib
from virt.xml.domain import METADATA_NS, METADATA_PREFIX, TemplateMark
from tests.virt.helpers import canonical, sample

WEB1_UUID = uuid.UUID("6695eb01-f6a4-8304-79aa-97f2502e193f")


def _web1(conn: libvirt.virConnect, flags: int = 0) -> Domain:
    return Domain.from_libvirt(conn.lookupByName("web1").XMLDesc(flags))


def test_it_reads_the_test_drivers_domain(test_conn):
    domain = _web1(test_conn)
    assert (domain.type, domain.name, domain.uuid) == ("test", "web1", str(WEB1_UUID))
    assert domain.title == 'Web & "front" ünïcode'
    assert domain.description == "Serves <html>"
    assert (domain.memory, domain.current_memory) == (524288, 262144)
    assert (domain.max_vcpus, domain.current_vcpus) == (2, 1)
    assert (domain.os_type, domain.arch, domain.machine) == ("hvm", "x86_64", "pc")
    assert domain.boot_devices == ["cdrom", "hd"]
    assert (domain.cpu_mode, domain.cpu_model, domain.firmware) == ("custom", "qemu64", None)


def test_it_reads_the_test_drivers_devices(test_conn):
    domain = _web1(test_conn)
    disk, cdrom = domain.disks
    assert (disk.type, disk.device, disk.driver_type, disk.source_file) == (
        "file", "disk", "qcow2", "/var/lib/libvirt/images/web1.qcow2")
    assert (cdrom.source_pool, cdrom.source_volume, cdrom.source) == (
        "isos", "debian.iso", "isos/debian.iso")
    assert (cdrom.target_dev, cdrom.target_bus, cdrom.readonly, disk.readonly) == (
        "sda", "sata", True, False)
    network, bridge = domain.interfaces
    assert (network.type, network.source, network.mac, network.model) == (
        "network", "default", "52:54:00:aa:bb:cc", "virtio")
    assert (bridge.source, bridge.link_state) == ("br0", "down")
    graphics = domain.graphics[0]
    assert (graphics.type, graphics.port, graphics.autoport, graphics.listen_address) == (
        "vnc", 5901, False, "127.0.0.1")
    assert (domain.serials[0].type, domain.serials[0].target_port) == ("pty", 0)
    assert (domain.consoles[0].target_type, domain.consoles[0].target_port) == ("serial", 0)


def test_it_summarizes_a_domain_without_its_password(test_conn):
    xml = test_conn.lookupByName("web1").XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)
    assert "s3cret" in xml
    summary = summarize_domain(xml)
    assert (summary.name, summary.uuid, summary.vcpus, summary.max_vcpus) == (
        "web1", WEB1_UUID, 1, 2)
    assert (summary.memory_kib, summary.current_memory_kib) == (524288, 262144)
    assert [(d.target, d.device, d.source, d.format, d.bus) for d in summary.disks] == [
        ("vda", "disk", "/var/lib/libvirt/images/web1.qcow2", "qcow2", "virtio"),
        ("sda", "cdrom", "isos/debian.iso", "raw", "sata"),
    ]
    assert [(i.type, i.source, i.model) for i in summary.interfaces] == [
        ("network", "default", "virtio"), ("bridge", "br0", "e1000")]
    assert [(g.type, g.listen, g.port) for g in summary.graphics] == [("vnc", "127.0.0.1", 5901)]
    assert "s3cret" not in repr(summary)


def test_it_tells_whether_graphics_have_a_password(test_conn):
    assert _web1(test_conn, libvirt.VIR_DOMAIN_XML_SECURE).graphics[0].has_password
    assert not _web1(test_conn).graphics[0].has_password  # libvirt leaves it out without SECURE
    assert not hasattr(Domain.new().graphics.add(), "password")


@pytest.mark.parametrize(("amount", "unit", "kib"), [
    (1, "b", 1), (2048, "bytes", 2), (5, "KiB", 5), (5, "k", 5), (1024, "KB", 1000),
    (512, "MiB", 524288), (1, "M", 1024), (1, "MB", 977), (2, "GiB", 2097152), (1, "T", 1024**3),
])
def test_it_reads_memory_in_any_unit_as_kib(amount, unit, kib):
    memory = etree.Element("memory", unit=unit)
    memory.text = str(amount)
    domain = Domain.new()
    domain.element.append(memory)
    assert domain.memory == kib


def test_it_writes_memory_in_kib():
    domain = Domain.from_xml("<domain><memory unit='GiB'>1</memory></domain>")
    domain.memory = to_kib(512, "MiB")
    assert etree.tostring(domain.element.find("memory")) == b'<memory unit="KiB">524288</memory>'


@pytest.mark.parametrize(("attribute", "value"), [
    ("memory", -1), ("memory", 0), ("current_memory", -1024), ("max_vcpus", 0),
    ("current_vcpus", 0), ("uuid", "not-a-uuid"), ("firmware", "uefi"), ("cpu_mode", "host"),
])
def test_it_refuses_invalid_domain_values(attribute, value):
    domain = Domain.from_xml("<domain><memory>1024</memory><vcpu>1</vcpu></domain>")
    with pytest.raises(ValueError, match=f"Domain.{attribute}"):
        setattr(domain, attribute, value)
    assert (domain.memory, domain.max_vcpus) == (1024, 1)


def test_it_refuses_an_unknown_boot_device():
    with pytest.raises(ValueError, match="'usb' is not one of"):
        Domain.new().boot_devices = ["hd", "usb"]


def test_it_refuses_an_unknown_memory_unit():
    with pytest.raises(ValueError, match="unknown memory unit"):
        to_kib(1, "XiB")


@pytest.mark.parametrize("mac", [
    "52:54:00:12:34", "52:54:00:12:34:5g", "52-54-00-12-34-56", "525400123456",
    "52:54:00:12:34:56\n", " 52:54:00:12:34:56", "01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff",
])
def test_it_refuses_a_bad_or_multicast_mac(mac):
    nic = Interface.new()
    with pytest.raises(ValueError, match="Interface.mac"):
        nic.mac = mac
    assert nic.mac is None


def test_it_accepts_a_unicast_mac_in_either_case():
    nic = Interface.new()
    nic.mac = "52:54:00:AB:cd:EF"
    assert nic.mac == "52:54:00:AB:cd:EF"


def test_it_refuses_invalid_device_values():
    with pytest.raises(ValueError, match="Disk.device"):
        Disk.new().device = "tape"
    with pytest.raises(ValueError, match="Disk.boot_order"):
        Disk.new().boot_order = 0
    with pytest.raises(ValueError, match="Graphics.port"):
        Domain.new().graphics.add().port = 70000


def test_it_keeps_listen_attribute_and_element_together():
    graphics = Domain.new().graphics.add()
    graphics.listen_address = "0.0.0.0"
    assert graphics.element.get("listen") == "0.0.0.0"
    assert graphics.element.find("listen").attrib == {"type": "address", "address": "0.0.0.0"}
    graphics.listen_address = None
    assert etree.tostring(graphics.element) == b"<graphics/>"


def test_it_sets_and_clears_a_graphics_password():
    graphics = Domain.new().graphics.add()
    graphics.set_password("pa<ss")
    assert graphics.has_password
    graphics.set_password(None)
    assert not graphics.has_password


def test_it_emits_a_new_domain(test_conn):
    domain = Domain.new()
    domain.type, domain.name, domain.title = "test", "db1", "Database"
    domain.uuid = "0b3e3c4e-2a8e-4c7f-9d55-3f4b1d7c9a10"
    domain.memory, domain.current_memory = to_kib(1, "GiB"), to_kib(512, "MiB")
    domain.max_vcpus, domain.current_vcpus = 4, 2
    domain.os_type, domain.arch, domain.machine = "hvm", "x86_64", "pc"
    domain.boot_devices = ["hd", "network"]
    _add_disk(domain, "disk", "/var/lib/libvirt/images/db1.qcow2", "qcow2", "vda", "virtio")
    cdrom = _add_disk(domain, "cdrom", "/srv/iso/debian.iso", "raw", "sda", "sata")
    cdrom.readonly = True
    nic = domain.interfaces.add()
    nic.type, nic.source_network, nic.model = "network", "default", "virtio"
    nic.mac = "52:54:00:12:34:56"
    graphics = domain.graphics.add()
    graphics.type, graphics.port, graphics.autoport = "vnc", -1, True
    graphics.listen_address = "127.0.0.1"
    serial = domain.serials.add()
    serial.type, serial.target_port = "pty", 0

    assert canonical(domain.to_xml()) == canonical(sample("new-domain.xml"))
    defined = Domain.from_libvirt(test_conn.defineXML(domain.to_xml()).XMLDesc(0))
    assert (defined.name, defined.memory, defined.boot_devices) == (
        "db1", 1048576, ["hd", "network"])


def _add_disk(domain: Domain, device: str, path: str, fmt: str, target: str, bus: str) -> Disk:
    disk = domain.disks.add()
    disk.type, disk.device = "file", device
    disk.driver_name, disk.driver_type, disk.source_file = "qemu", fmt, path
    disk.target_dev, disk.target_bus = target, bus
    return disk


def test_it_keeps_what_it_does_not_model_in_place():
    original = sample("unknown-parts.xml")
    domain = Domain.from_xml(original)
    domain.name = "renamed"
    domain.memory = to_kib(2, "GiB")
    domain.disks[0].source_file = "/images/new.qcow2"
    domain.interfaces[0].mac = "52:54:00:00:00:02"

    edited = Domain.from_xml(domain.to_xml()).element
    before = Domain.from_xml(original).element
    assert [node.tag for node in edited.iter()] == [node.tag for node in before.iter()]
    assert edited.find("metadata/{https://vmsite.example/meta}owner").text == "ops"
    assert edited.find("features/hyperv/relaxed").get("state") == "on"
    assert "a comment libvirt keeps" in domain.to_xml()
    assert (edited.findtext("name"), edited.findtext("memory")) == ("renamed", "2097152")


def test_it_edits_libvirts_xml_and_libvirt_takes_it_back(test_conn):
    domain = _web1(test_conn, libvirt.VIR_DOMAIN_XML_SECURE)
    domain.title = "<new> & 'improved'"
    domain.max_vcpus = 4
    domain.interfaces[1].link_state = "up"
    domain.disks.remove(domain.disks[1])
    test_conn.defineXML(domain.to_xml())

    again = _web1(test_conn, libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    assert (again.title, again.max_vcpus, again.interfaces[1].link_state) == (
        "<new> & 'improved'", 4, "up")
    assert [disk.target_dev for disk in again.disks] == ["vda"]
    assert again.graphics[0].has_password


def test_it_emits_one_device_on_its_own(test_conn):
    disk = _web1(test_conn).disks[0]
    assert canonical(disk.to_xml()) == canonical(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source file='/var/lib/libvirt/images/web1.qcow2'/>"
        "<target dev='vda' bus='virtio'/></disk>")


def test_it_writes_a_direct_kernel_boot_an_agent_channel_and_a_balloon_that_libvirt_keeps(test_conn):
    domain = _web1(test_conn, libvirt.VIR_DOMAIN_XML_INACTIVE)
    domain.kernel = "/var/cache/vmsite/guest/vmlinux"
    domain.initrd = "/var/cache/vmsite/guest/initrd.gz"
    domain.cmdline = "console=ttyS0 guest_ip=192.0.2.10/24"
    channel = domain.channels.add()
    channel.type = "unix"
    channel.target_type = "virtio"
    channel.target_name = "org.qemu.guest_agent.0"
    domain.memballoon_model = "virtio"
    test_conn.defineXML(domain.to_xml())

    again = _web1(test_conn, libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert (again.kernel, again.initrd, again.cmdline) == (
        "/var/cache/vmsite/guest/vmlinux", "/var/cache/vmsite/guest/initrd.gz", "console=ttyS0 guest_ip=192.0.2.10/24")
    assert [(c.type, c.target_type, c.target_name) for c in again.channels] == [
        ("unix", "virtio", "org.qemu.guest_agent.0")]
    assert again.memballoon_model == "virtio"
    assert [child.tag for child in again.element.find("os")][:4] == ["type", "kernel", "initrd", "cmdline"]
    with pytest.raises(ValueError, match="memballoon_model"):
        again.memballoon_model = "xen"


def test_the_template_mark_set_through_libvirts_metadata_is_read_and_removed(test_conn):
    guest = test_conn.lookupByName("web1")
    assert not _web1(test_conn, libvirt.VIR_DOMAIN_XML_INACTIVE).is_template
    guest.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, TemplateMark.new().to_xml(), METADATA_PREFIX, METADATA_NS,
                      libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    marked = _web1(test_conn, libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert marked.is_template
    marked.is_template = False
    assert not Domain.from_libvirt(marked.to_xml()).is_template and METADATA_NS not in marked.to_xml()


def test_it_writes_firmware_and_cpu_features_where_libvirt_wants_them():
    domain = Domain.new()
    domain.os_type, domain.boot_devices = "hvm", ["hd"]
    domain.firmware = "efi"
    for name in ("secure-boot", "enrolled-keys"):
        feature = domain.firmware_features.add()
        feature.enabled, feature.name = True, name
    domain.cpu_mode, domain.cpu_model = "custom", "qemu64"
    feature = domain.cpu.features.add()
    feature.policy, feature.name = "disable", "svm"
    assert [child.tag for child in domain.element.find("os")][:2] == ["type", "firmware"]
    assert canonical(domain.cpu.to_xml()) == canonical(
        "<cpu mode='custom'><model>qemu64</model><feature policy='disable' name='svm'/></cpu>")
    assert [(f.name, f.enabled) for f in domain.firmware_features] == [("secure-boot", True), ("enrolled-keys", True)]


def test_it_reads_host_bound_devices_the_agent_channel_and_the_nvram():
    domain = Domain.from_libvirt(
        "<domain><os><type>hvm</type><nvram>/var/lib/libvirt/qemu/nvram/a_VARS.fd</nvram></os><devices>"
        "<hostdev mode='subsystem' type='pci'/><filesystem type='mount'><source dir='/srv/share'/></filesystem>"
        "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>"
        "</devices></domain>")
    assert [(d.mode, d.type) for d in domain.hostdevs] == [("subsystem", "pci")]
    assert [(f.type, f.source_dir) for f in domain.filesystems] == [("mount", "/srv/share")]
    assert domain.guest_agent_connected and domain.cpu is None
    domain.nvram = None
    assert domain.nvram is None and domain.os_type == "hvm"
