"""Small, quiet test guests (TESTING.md): 32 MiB, one vCPU, no disk, VNC on loopback."""
from __future__ import annotations

import os
import uuid

import libvirt
from lxml import etree

TEST_GUEST_PREFIX = "vmsite-test-"


class GuestFactory:
    """Small, quiet guests (TESTING.md) that the test owns and that are removed afterwards."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []

    def define(self, uri: str, *, name: str | None = None, start: bool = False,
               vnc_listen: str = "127.0.0.1") -> libvirt.virDomain:
        name = name or f"{TEST_GUEST_PREFIX}{uuid.uuid4().hex[:8]}"
        conn = libvirt.open(uri)
        domain = conn.defineXML(small_guest_xml(name, vnc_listen=vnc_listen))
        self.created.append((uri, name))
        if start:
            domain.create()
        return domain

    def cleanup(self) -> None:
        for uri, name in self.created:
            try:
                conn = libvirt.open(uri)
                domain = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            if domain.isActive():
                domain.destroy()
            if domain.isPersistent():
                domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


def small_guest_xml(name: str, *, vnc_listen: str = "127.0.0.1") -> str:
    """A diskless 32 MiB guest that stays in SeaBIOS: enough for lifecycle and console tests."""
    domain_type = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"
    domain = etree.Element("domain", type=domain_type)
    etree.SubElement(domain, "name").text = name
    etree.SubElement(domain, "memory", unit="MiB").text = "32"
    etree.SubElement(domain, "vcpu").text = "1"
    os_element = etree.SubElement(domain, "os")
    etree.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
    etree.SubElement(os_element, "boot", dev="hd")
    devices = etree.SubElement(domain, "devices")
    graphics = etree.SubElement(devices, "graphics", type="vnc", autoport="yes", listen=vnc_listen)
    etree.SubElement(graphics, "listen", type="address", address=vnc_listen)
    etree.SubElement(devices, "memballoon", model="none")
    return etree.tostring(domain, encoding="unicode")
