"""The tests' real guest OS as scripts/test_guest/build.py leaves it in the cache, and the domain
XML tests/realguest.py makes of it (the network rule included). No guest is started here."""
from __future__ import annotations

import gzip
import json

from lxml import etree

from tests.realguest import AGENT_CHANNEL, GuestNic, guest_image, real_guest_xml


def cpio_members(data: bytes) -> dict[str, tuple[int, bytes]]:
    """Name -> (mode, content) of every member of a newc cpio archive."""
    members, offset = {}, 0
    while True:
        assert data[offset:offset + 6] == b"070701", f"no newc header at {offset}"
        fields = [int(data[offset + 6 + 8 * i:offset + 14 + 8 * i], 16) for i in range(13)]
        mode, size, name_size = fields[1], fields[6], fields[11]
        name_start = offset + 110
        name = data[name_start:name_start + name_size - 1].decode()
        if name == "TRAILER!!!":
            return members
        offset = name_start + name_size
        offset += -offset % 4
        members[name] = (mode, data[offset:offset + size])
        offset += size + (-size % 4)


def test_it_builds_a_kernel_and_an_initramfs_with_everything_the_init_runs():
    image = guest_image()
    manifest = json.loads((image.folder / "manifest.json").read_text())
    assert image.folder.name == f"guest-{manifest['key']}"
    assert set(manifest["inputs"]["packages"]) == {"linux-image-amd64", "busybox-static", "qemu-guest-agent"}
    assert open(image.kernel, "rb").read(4) == b"\x7fELF"
    members = cpio_members(gzip.decompress(open(image.initrd, "rb").read()))
    for needed in ("init", "bin/busybox", "bin/sh", "sbin/poweroff", "etc/inittab", "etc/init.d/rcS",
                   "etc/acpi/PWRF/00000080", "usr/sbin/qemu-ga", "dev/console"):
        assert needed in members, needed
    assert any(name.endswith("libglib-2.0.so.0") for name in members)
    assert members["init"][0] & 0o111 and members["etc/acpi/PWRF/00000080"][0] & 0o111
    order = members["etc/modules"][1].decode().split()  # loaded in this order: dependencies first
    for module in order:
        assert f"lib/modules/{module}" in members
    names = [module.rsplit("/", 1)[1] for module in order]
    assert names.index("virtio.ko") < names.index("virtio_pci.ko") < names.index("virtio_blk.ko")
    assert {"virtio_net.ko", "virtio_console.ko", "virtio_balloon.ko", "button.ko", "evdev.ko"} <= set(names)


def test_its_xml_keeps_the_network_rule():
    xml = etree.fromstring(real_guest_xml("vmsite-test-xml", guest_image(), nics=(
        GuestNic(network="isolated", mac="52:54:00:00:00:01", address="192.0.2.10/24"),
        GuestNic(network="isolated", mac="52:54:00:00:00:02"))))
    assert [nic.find("rom").get("enabled") for nic in xml.iterfind("devices/interface")] == ["no", "no"]
    cmdline = xml.findtext("os/cmdline").split()
    assert "ipv6.disable=1" in cmdline and "guest_ip=192.0.2.10/24" in cmdline
    assert xml.find(f"devices/channel/target[@name='{AGENT_CHANNEL}']") is not None
    assert xml.get("type") in ("kvm", "qemu")
