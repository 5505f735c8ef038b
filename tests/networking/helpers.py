"""What the networking integration tests share: names, cleanup, and waiting for operations."""
from __future__ import annotations

import os
import subprocess

import libvirt
from django.urls import reverse

from operations.choices import OperationState
from operations.models import Operation
from tests import stack

LOCAL = "qemu:///system"
PREFIX = "vmsite-net-"  # every libvirt object these tests make on the shared libvirtd


def unique_name(kind: str = "") -> str:
    return f"{PREFIX}{kind}{os.urandom(3).hex()}"


class NetworkCleanup:
    """Networks the test made (or had vmsite make), removed by name afterwards."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, name: str) -> str:
        assert name.startswith(PREFIX)
        self.names.append(name)
        return name

    def remove_all(self) -> None:
        conn = libvirt.open(LOCAL)
        for name in self.names:
            try:
                network = conn.networkLookupByName(name)
            except libvirt.libvirtError:
                continue
            persistent = network.isPersistent()  # a transient network is gone once destroyed
            if network.isActive():
                network.destroy()
            if persistent:
                network.undefine()
        conn.close()


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", LOCAL, *args], check=True, capture_output=True, text=True).stdout


def wait_for(operation: Operation, timeout: float = 60) -> Operation:
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=timeout,
                     message=f"{operation.kind} #{operation.pk} to finish")
    operation.refresh_from_db()
    return operation


def succeeded(operation: Operation) -> Operation:
    operation = wait_for(operation)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return operation


def post_and_wait(client, url: str, data: dict | None = None) -> Operation:
    before = Operation.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = client.post(url, data or {})
    assert response.status_code == 302, getattr(response, "context", None) and response.context.get("form").errors
    return wait_for(Operation.objects.filter(pk__gt=before).latest("pk"))


def network_url(name: str, *args) -> str:
    return reverse(name, args=args)


def define_guest(guests, *, start: bool = False) -> "libvirt.virDomain":
    """A small quiet guest (tests/guests.py) with ACPI, for PCI hot-plug of NICs; `guests` removes it."""
    from lxml import etree

    from tests.guests import small_guest_xml

    name = unique_name("vm-")
    root = etree.fromstring(small_guest_xml(name))
    root.find("os").addnext(etree.Element("features"))
    etree.SubElement(root.find("features"), "acpi")
    domain = libvirt.open(LOCAL).defineXML(etree.tostring(root, encoding="unicode"))
    guests.created.append((LOCAL, name))
    guests.uuids.append((LOCAL, domain.UUIDString()))
    if start:
        domain.create()
    return domain


def isolated_network(conn: "libvirt.virConnect", cleanup: NetworkCleanup, subnet_octet: int) -> str:
    """A started isolated network in 10.251.<octet>.0/24, defined directly (not through vmsite)."""
    name = cleanup.add(unique_name())
    network = conn.networkDefineXML(
        f"<network><name>{name}</name><ip address='10.251.{subnet_octet}.1' prefix='24'/></network>")
    network.create()
    return name
