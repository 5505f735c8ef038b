"""Small, quiet test guests (TESTING.md): 32 MiB, one vCPU, no disk, VNC on loopback; and guests
that boot a tiny real OS (tests/realguest.py) where what the guest sees matters."""
from __future__ import annotations

import uuid

import libvirt
from lxml import etree

from tests.realguest import GuestShell, RealGuest, guest_image, real_guest_xml

TEST_GUEST_PREFIX = "vmsite-test-"


class GuestFactory:
    """Small, quiet guests (TESTING.md) that the test owns and that are removed afterwards."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []  # (uri, name), also of guests vmsite made for the test
        self.uuids: list[tuple[str, str]] = []  # (uri, uuid) of those defined here: found even if renamed
        self.shells: list[GuestShell] = []

    def define(self, uri: str, *, name: str | None = None, start: bool = False,
               vnc_listen: str = "127.0.0.1", disk_path: str | None = None, balloon: bool = False) -> libvirt.virDomain:
        name = name or f"{TEST_GUEST_PREFIX}{uuid.uuid4().hex[:8]}"
        conn = libvirt.open(uri)
        domain = conn.defineXML(small_guest_xml(name, vnc_listen=vnc_listen, disk_path=disk_path, balloon=balloon))
        self.created.append((uri, name))
        self.uuids.append((uri, domain.UUIDString()))
        if start:
            domain.create()
        return domain

    def real(self, uri: str, *, start: bool = True, vnc_listen: str = "127.0.0.1", **options) -> RealGuest:
        """A guest that boots a tiny real OS (tests/realguest.py), with a shell on its serial
        console; started and answering unless start=False. Options: see real_guest_xml."""
        name = f"{TEST_GUEST_PREFIX}{uuid.uuid4().hex[:8]}"
        domain = libvirt.open(uri).defineXML(real_guest_xml(name, guest_image(), vnc_listen=vnc_listen, **options))
        self.created.append((uri, name))
        self.uuids.append((uri, domain.UUIDString()))
        guest = RealGuest(uri=uri, domain=domain, shell=GuestShell(uri, domain.UUIDString()),
                          nics=tuple(options.get("nics", ())))
        self.shells.append(guest.shell)
        if start:
            guest.start()
        return guest

    def cleanup(self) -> None:
        for shell in self.shells:
            shell.close()
        for uri, uuid_string in self.uuids:
            _remove(uri, lambda conn: conn.lookupByUUIDString(uuid_string))
        for uri, name in self.created:
            _remove(uri, lambda conn: conn.lookupByName(name))


def _remove(uri: str, find) -> None:
    try:
        domain = find(libvirt.open(uri))
    except libvirt.libvirtError:
        return  # already gone
    if domain.isActive():
        domain.destroy()
    if domain.isPersistent():
        domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


def small_guest_xml(name: str, *, vnc_listen: str = "127.0.0.1", disk_path: str | None = None,
                    lean: bool = False, balloon: bool = False) -> str:
    """A diskless 32 MiB guest that stays in SeaBIOS: enough for lifecycle and console tests.

    It runs under TCG even where /dev/kvm is usable: it never runs an OS, and SeaBIOS is cheap to
    emulate. Measured on this 2-core machine (nested KVM): a start under KVM took 3.3 s of CPU, a full
    core for its first 3 s, against 0.44 s under TCG, and the suite starts about a hundred of them.

    lean=True (for benchmarks that run hundreds of guests, bench/listener.py) leaves out what only
    a screen needs: no video device (the VGA's 16 MiB of video RAM, which its BIOS touches) and no
    USB controller; under TCG, a 1 MiB translation cache. VNC stays, so the VM keeps its console
    endpoint; it shows no picture. balloon=True gives it a virtio balloon device (else none)."""
    domain = etree.Element("domain", type="qemu")
    etree.SubElement(domain, "name").text = name
    etree.SubElement(domain, "memory", unit="MiB").text = "32"
    etree.SubElement(domain, "vcpu").text = "1"
    os_element = etree.SubElement(domain, "os")
    etree.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
    etree.SubElement(os_element, "boot", dev="hd")
    if lean:
        tcg = etree.SubElement(etree.SubElement(domain, "features"), "tcg")
        etree.SubElement(tcg, "tb-cache", unit="MiB").text = "1"
    devices = etree.SubElement(domain, "devices")
    if lean:
        etree.SubElement(devices, "controller", type="usb", model="none")
        etree.SubElement(etree.SubElement(devices, "video"), "model", type="none")
    if disk_path:
        disk = etree.SubElement(devices, "disk", type="file", device="disk")
        etree.SubElement(disk, "driver", name="qemu", type="qcow2")
        etree.SubElement(disk, "source", file=disk_path)
        etree.SubElement(disk, "target", dev="vda", bus="virtio")
    graphics = etree.SubElement(devices, "graphics", type="vnc", autoport="yes", listen=vnc_listen)
    etree.SubElement(graphics, "listen", type="address", address=vnc_listen)
    etree.SubElement(devices, "memballoon", model="virtio" if balloon else "none")
    return etree.tostring(domain, encoding="unicode")


class ScratchPool:
    """A dir storage pool in a temporary folder, owned by one test and removed after it."""

    def __init__(self, uri: str, path: str) -> None:
        self.conn = libvirt.open(uri)
        self.name = f"{TEST_GUEST_PREFIX}pool-{uuid.uuid4().hex[:8]}"
        pool = etree.Element("pool", type="dir")
        etree.SubElement(pool, "name").text = self.name
        etree.SubElement(etree.SubElement(pool, "target"), "path").text = path
        self.pool = self.conn.storagePoolCreateXML(etree.tostring(pool, encoding="unicode"), 0)

    def create_volume(self, name: str, *, capacity_mib: int = 16, fmt: str = "qcow2") -> libvirt.virStorageVol:
        volume = etree.Element("volume")
        etree.SubElement(volume, "name").text = name
        etree.SubElement(volume, "capacity", unit="MiB").text = str(capacity_mib)
        etree.SubElement(etree.SubElement(volume, "target"), "format", type=fmt)
        return self.pool.createXML(etree.tostring(volume, encoding="unicode"), 0)

    def remove(self) -> None:
        try:
            for volume in self.pool.listAllVolumes():
                volume.delete(0)
            self.pool.destroy()
        except libvirt.libvirtError:
            pass
