from __future__ import annotations

import libvirt
import pytest

from virt.xml import Capabilities, CPUModel, CPUTopology, DomainCapabilities, NUMACell
from tests.virt.helpers import sample

# samples/capabilities.xml and samples/domcapabilities.xml: virsh capabilities and
# domcapabilities of a real libvirtd 9.0 with QEMU 7.2 (KVM on an AMD host).


def test_it_reads_the_test_drivers_capabilities(test_conn):
    caps = Capabilities.from_xml(test_conn.getCapabilities())
    assert caps.cpu_arch == "i686"
    assert [(guest.os_type, guest.arch, guest.wordsize, guest.domain_types)
            for guest in caps.guests] == [
        ("hvm", "i686", 32, ("test",)), ("xen", "i686", 32, ("test",))]
    assert caps.guests[0].emulator == "/usr/bin/test-hv"


def test_it_reads_none_for_what_the_test_driver_leaves_out(test_conn):
    caps = Capabilities.from_xml(test_conn.getCapabilities())
    assert (caps.host_uuid, caps.cpu_model, caps.topology, caps.cells) == (None, None, None, ())


def test_it_reads_a_real_hosts_capabilities():
    caps = Capabilities.from_xml(sample("capabilities.xml"))
    assert caps.host_uuid == "34d3fa2b-89ce-4c5c-84f3-f57b8d734c55"
    assert (caps.cpu_arch, caps.cpu_model, caps.cpu_vendor) == ("x86_64", "kvm64", "AMD")
    assert caps.topology == CPUTopology(sockets=1, dies=1, cores=2, threads=1)
    assert caps.cells == (NUMACell(id=0, memory_kib=6645972, cpu_count=2),)


def test_it_reads_a_real_hosts_guests_and_machine_types():
    guest = Capabilities.from_xml(sample("capabilities.xml")).guests[1]
    assert (guest.os_type, guest.arch, guest.wordsize) == ("hvm", "x86_64", 64)
    assert guest.emulator == "/usr/bin/qemu-system-x86_64"
    assert guest.domain_types == ("qemu", "kvm")
    machines = {machine.name: machine for machine in guest.machines}
    assert (machines["q35"].canonical, machines["q35"].max_cpus) == ("pc-q35-7.2", 288)
    assert machines["pc-q35-7.2"].canonical is None
    assert machines["pc-i440fx-1.5"].deprecated and not machines["pc"].deprecated


def test_it_finds_domain_capabilities_unsupported_by_the_test_driver(test_conn):
    # Why the domain capabilities tests read a captured document instead.
    with pytest.raises(libvirt.libvirtError) as caught:
        test_conn.getDomainCapabilities()
    assert caught.value.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT


def test_it_reads_a_real_hosts_domain_capabilities():
    caps = DomainCapabilities.from_xml(sample("domcapabilities.xml"))
    assert (caps.emulator, caps.domain_type, caps.machine, caps.arch, caps.max_vcpus) == (
        "/usr/bin/qemu-system-x86_64", "kvm", "pc-i440fx-7.2", "x86_64", 255)
    assert caps.firmware == ("efi",)
    assert caps.loader_paths == ("/usr/share/OVMF/OVMF_CODE_4M.fd",)
    assert caps.loader_types == ("rom", "pflash")
    assert not caps.secure_boot


def test_it_reads_a_real_hosts_cpu_modes():
    caps = DomainCapabilities.from_xml(sample("domcapabilities.xml"))
    assert caps.cpu_modes == ("host-passthrough", "maximum", "host-model", "custom")
    assert caps.host_model == "EPYC-Milan"
    assert CPUModel(name="pentium3", usable=True, vendor="unknown") in caps.custom_models
    assert CPUModel(name="EPYC-Milan", usable=False, vendor="AMD") in caps.custom_models


def test_it_reads_a_real_hosts_devices():
    caps = DomainCapabilities.from_xml(sample("domcapabilities.xml"))
    assert "cdrom" in caps.disk_devices
    assert caps.disk_buses == ("ide", "fdc", "scsi", "virtio", "usb", "sata")
    assert caps.graphics_types == ("sdl", "vnc", "spice", "egl-headless", "dbus")
    assert "virtio" in caps.video_models and "qxl" in caps.video_models


def test_it_reads_secure_boot_when_the_loader_offers_it():
    xml = sample("domcapabilities.xml").replace(
        "<enum name='secure'>\n        <value>no</value>",
        "<enum name='secure'>\n        <value>yes</value>\n        <value>no</value>")
    assert DomainCapabilities.from_xml(xml).secure_boot


def test_it_reads_nothing_from_unsupported_parts():
    caps = DomainCapabilities.from_xml(
        "<domainCapabilities><os supported='no'><enum name='firmware'><value>efi</value></enum>"
        "</os><cpu><mode name='host-model' supported='no'/></cpu></domainCapabilities>")
    assert (caps.firmware, caps.loader_paths, caps.secure_boot) == ((), (), False)
    assert (caps.cpu_modes, caps.host_model, caps.custom_models) == ((), None, ())
    assert (caps.max_vcpus, caps.emulator, caps.disk_buses) == (None, None, ())
