"""The allowlist for hand-edited domain XML: each rule refuses with a message that names the problem."""
from __future__ import annotations

import pytest
from lxml import etree

from tests.virt.helpers import sample
from virt.xml import parse_untrusted
from virt.xml.policy import HostContext, PolicyViolation, check_domain_xml, require_allowed

UUID = "0b3e3c4e-2a8e-4c7f-9d55-3f4b1d7c9a10"  # new-domain.xml's
EMULATOR = "/usr/bin/qemu-system-x86_64"
CONTEXT = HostContext(uuid=UUID, pools={"default": "/var/lib/libvirt/images", "iso": "/srv/iso"}, emulator=EMULATOR)
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"


def document(xml: str = "") -> etree._Element:
    root = parse_untrusted(xml or sample("new-domain.xml"))
    emulator = etree.Element("emulator")
    emulator.text = EMULATOR
    root.find("devices").insert(0, emulator)
    return root


def add(parent_path: str, xml: str):
    def change(root: etree._Element) -> None:
        root.find(parent_path).append(etree.fromstring(xml))
    return change


def set_attribute(path: str, name: str, value: str):
    def change(root: etree._Element) -> None:
        root.find(path).set(name, value)
    return change


def set_text(path: str, value: str):
    def change(root: etree._Element) -> None:
        root.find(path).text = value
    return change


def test_it_accepts_a_domain_whose_sources_are_all_in_pools():
    assert check_domain_xml(document(), CONTEXT) == []


def test_it_accepts_namespaced_metadata_and_an_empty_cdrom():
    root = document()
    root.insert(3, etree.fromstring('<metadata><app:note xmlns:app="https://example.org/app">x</app:note></metadata>'))
    root.find("devices/disk[@device='cdrom']").remove(root.find("devices/disk[@device='cdrom']/source"))
    assert check_domain_xml(root, CONTEXT) == []


@pytest.mark.parametrize(("change", "expected"), [
    (add(".", f'<qemu:commandline xmlns:qemu="{QEMU_NS}"><qemu:arg value="-monitor"/></qemu:commandline>'),
     "<qemu:commandline> is not accepted: it passes options straight to QEMU"),
    (add(".", f'<qemu:capabilities xmlns:qemu="{QEMU_NS}"><qemu:del capability="sandbox"/></qemu:capabilities>'),
     "<qemu:capabilities> is not accepted"),
    (add("devices", '<x:thing xmlns:x="https://example.org/x"/>'),
     "elements of other namespaces belong inside <metadata>"),
    (add("devices", "<hostdev mode='subsystem' type='pci'><source><address bus='0x01'/></source></hostdev>"),
     "<hostdev> is not accepted"),
    (add("devices", "<interface type='hostdev'><source><address type='pci' bus='0x01'/></source></interface>"),
     "<interface type='hostdev'> is not accepted"),
    (set_attribute("devices/disk/source", "file", "/etc/shadow"),
     "the disk vda: '/etc/shadow' is not inside one of the host's storage pools"),
    (set_attribute("devices/disk/source", "file", "/var/lib/libvirt/images/../../../../etc/shadow"),
     "is not inside one of the host's storage pools"),
    (set_attribute("devices/disk/source", "file", "relative.qcow2"), "is not inside one of the host's storage pools"),
    (set_attribute("devices/disk/source", "file", "/var/lib/libvirt/imagesX/a.qcow2"),
     "is not inside one of the host's storage pools"),
    (add("devices", "<disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vdb'/></disk>"),
     "the disk vdb: '/dev/sda' is not inside"),
    (add("devices", "<disk type='network' device='disk'><source protocol='http' name='x'><host name='10.0.0.1'/>"
                    "</source><target dev='vdc'/></disk>"),
     "the disk vdc: disks of type 'network' are not accepted"),
    (add("devices/disk", "<backingStore type='file'><format type='raw'/><source file='/root/secret'/></backingStore>"),
     "the disk vda: '/root/secret' is not inside"),
    (add("devices", "<disk type='volume' device='disk'><source pool='nosuch' volume='a'/><target dev='vdd'/></disk>"),
     "the storage pool 'nosuch' does not exist on this host"),
    (add("devices", "<filesystem type='mount'><source dir='/'/><target dir='root'/></filesystem>"),
     "<filesystem type='mount'> (the filesystem root) is not accepted: it shares files of the host"),
    (add("devices", "<interface type='bridge'><source bridge='br0'/><script path='/tmp/evil.sh'/></interface>"),
     "<script> in <interface type='bridge'> is not accepted"),
    (set_text("devices/emulator", "/tmp/fake-qemu"), "<emulator> must be the host's /usr/bin/qemu-system-x86_64"),
    (add("devices", "<serial type='file'><source path='/etc/cron.d/x'/><target port='1'/></serial>"),
     "<serial type='file'>: the path '/etc/cron.d/x' must be a file in /var/log/libvirt/qemu/ whose name starts "
     f"with this VM's UUID ({UUID})"),
    (add("devices", "<channel type='unix'><source mode='bind' path='/run/evil.sock'/></channel>"),
     "<channel type='unix'>: the path '/run/evil.sock' is not accepted: leave the path out"),
    (add("devices", "<serial type='pty'><log file='/etc/motd'/><target port='2'/></serial>"),
     "the log file '/etc/motd' must be a file in /var/log/libvirt/qemu/"),
    (add("devices", "<parallel type='dev'><source path='/dev/parport0'/></parallel>"),
     "<parallel type='dev'> is not accepted"),
    (add("os", "<kernel>/boot/vmlinuz</kernel>"), "<os><kernel>: '/boot/vmlinuz' is not a volume"),
    (add("os", "<initrd>/etc/shadow</initrd>"), "<os><initrd>: '/etc/shadow' is not a volume"),
    (add("os", "<loader readonly='yes' type='pflash'>/home/x/OVMF.fd</loader>"),
     "<os><loader>: '/home/x/OVMF.fd' must be a firmware file inside /usr/share/"),
    (add(".", "<seclabel type='none'/>"), "<seclabel> may only be type='dynamic'"),
    (set_text("uuid", "11111111-2222-3333-4444-555555555555"), f"The UUID must stay {UUID}"),
])
def test_it_refuses_each_violation_with_its_own_message(change, expected):
    root = document()
    change(root)
    refusals = check_domain_xml(root, CONTEXT)
    assert len(refusals) == 1 and expected in refusals[0], refusals
    with pytest.raises(PolicyViolation):
        require_allowed(root, CONTEXT)


def test_it_refuses_a_missing_uuid():
    root = document()
    root.remove(root.find("uuid"))
    assert check_domain_xml(root, CONTEXT) == [f"The UUID must stay {UUID} (the XML has none): a different UUID "
                                               "would define another VM instead of changing this one."]


def test_it_lists_every_violation_at_once():
    root = document()
    add(".", f'<qemu:commandline xmlns:qemu="{QEMU_NS}"/>')(root)
    add("devices", "<hostdev mode='subsystem' type='usb'/>")(root)
    set_attribute("devices/disk/source", "file", "/etc/passwd")(root)
    assert len(check_domain_xml(root, CONTEXT)) == 3


def test_it_refuses_an_emulator_when_the_hosts_is_unknown():
    refusals = check_domain_xml(document(), HostContext(uuid=UUID, pools=CONTEXT.pools, emulator=None))
    assert refusals == ["<emulator> is not accepted: the host's emulator is not known yet; remove it and "
                        "libvirt chooses."]


def test_it_refuses_a_root_other_than_domain():
    assert check_domain_xml(etree.fromstring("<network/>"), CONTEXT) == [
        "The document's root must be <domain>, not <network>."]
