"""The allowlist for domain XML that a user edited by hand, checked before it is defined.

Each rule looks at one part of the document and returns the refusals it finds, each in words
that name the element and say why. The model (virt.xml.domain) has no policy; this module is the
policy, and the form and the worker both run it.
"""
from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from lxml import etree

QEMU_NAMESPACE = "http://libvirt.org/schemas/domain/qemu/1.0"
# Where libvirt keeps the files it creates for guests (sockets, NVRAM, logs, channels).
LIBVIRT_STATE_DIR = "/var/lib/libvirt"
LIBVIRT_LOG_DIR = "/var/log/libvirt"
FIRMWARE_DIR = "/usr/share"
CHARDEV_PATH_TYPES = ("file", "pipe", "unix")


class PolicyViolation(ValueError):
    """The XML breaks one or more rules; `refusals` holds one message per broken rule."""

    def __init__(self, refusals: list[str]) -> None:
        super().__init__("; ".join(refusals))
        self.refusals = refusals


@dataclass(frozen=True)
class HostContext:
    """What the rules compare the document with."""

    uuid: str  # the VM being edited: the document must keep it
    pools: Mapping[str, str]  # storage pool name -> target path on the host
    emulator: str | None  # the host's emulator from its capabilities; None when unknown


Rule = Callable[[etree._Element, HostContext], Iterator[str]]


def check_domain_xml(root: etree._Element, context: HostContext) -> list[str]:
    """Every refusal for this document, in document order per rule; empty means allowed."""
    if root.tag != "domain":
        return [f"The document's root must be <domain>, not <{_name(root)}>."]
    return [refusal for rule in RULES for refusal in rule(root, context)]


def require_allowed(root: etree._Element, context: HostContext) -> None:
    refusals = check_domain_xml(root, context)
    if refusals:
        raise PolicyViolation(refusals)


# ---------------------------------------------------------------------------------------------
# The rules


def same_uuid(root: etree._Element, context: HostContext) -> Iterator[str]:
    uuid = (root.findtext("uuid") or "").strip().lower()
    if uuid != context.uuid.lower():
        shown = uuid or "none"
        yield (f"The UUID must stay {context.uuid} (the XML has {shown}): a different UUID would define "
               "another VM instead of changing this one.")


def no_foreign_namespaces(root: etree._Element, context: HostContext) -> Iterator[str]:
    """QEMU pass-through (qemu:commandline, qemu:capabilities...) runs arbitrary QEMU options on the host;
    other namespaces belong inside <metadata> only."""
    for element in _elements_outside_metadata(root):
        namespace = etree.QName(element).namespace
        if namespace == QEMU_NAMESPACE:
            yield (f"<qemu:{etree.QName(element).localname}> is not accepted: it passes options straight to "
                   "QEMU, bypassing libvirt's checks.")
        elif namespace:
            yield f"<{_name(element)}> is not accepted: elements of other namespaces belong inside <metadata>."
        for attribute in element.attrib:
            if etree.QName(attribute).namespace:
                yield f"The attribute {attribute} on <{_name(element)}> is not accepted: it is in another namespace."


def no_host_devices(root: etree._Element, context: HostContext) -> Iterator[str]:
    for _hostdev in root.iter("hostdev"):
        yield "<hostdev> is not accepted: passing a host's PCI, USB or SCSI device to a VM is not allowed here."
    for interface in root.iterfind("devices/interface[@type='hostdev']"):
        yield "<interface type='hostdev'> is not accepted: it passes a host's network card to the VM."


def disk_sources_in_pools(root: etree._Element, context: HostContext) -> Iterator[str]:
    for disk in root.iterfind("devices/disk"):
        label = f"the disk {_target_of(disk, 'dev')}"
        # The disk's own source, then those of its backing chain, each typed by its holder.
        for holder in [disk, *disk.iter("backingStore")]:
            kind = holder.get("type", "file")
            if kind in ("network", "nvme", "vhostuser"):
                yield f"{label}: disks of type '{kind}' are not accepted; use a volume of one of the host's pools."
                continue
            for source in holder.iterfind("source"):
                yield from _source_refusals(source, label, context,
                                            attribute={"file": "file", "block": "dev", "dir": "dir"}.get(kind))


def filesystem_sources_in_pools(root: etree._Element, context: HostContext) -> Iterator[str]:
    for filesystem in root.iterfind("devices/filesystem"):
        kind = filesystem.get("type", "mount")
        label = f"the filesystem {_target_of(filesystem, 'dir')}"
        attribute = {"mount": "dir", "file": "file", "block": "dev"}.get(kind)
        if attribute is None and kind != "ram":
            yield f"{label}: filesystems of type '{kind}' are not accepted."
            continue
        for source in filesystem.iter("source"):
            yield from _source_refusals(source, label, context, attribute=attribute)


def no_interface_scripts(root: etree._Element, context: HostContext) -> Iterator[str]:
    for interface in root.iterfind("devices/interface"):
        for tag in ("script", "downscript"):
            if interface.find(tag) is not None:
                yield (f"<{tag}> in <interface type='{interface.get('type')}'> is not accepted: it runs a program "
                       "on the host as libvirt's user.")


def known_emulator(root: etree._Element, context: HostContext) -> Iterator[str]:
    for emulator in root.iterfind("devices/emulator"):
        path = (emulator.text or "").strip()
        if context.emulator is None:
            yield "<emulator> is not accepted: the host's emulator is not known yet; remove it and libvirt chooses."
        elif path != context.emulator:
            yield f"<emulator> must be the host's {context.emulator}, not {path!r}."


def character_devices_in_libvirt_dirs(root: etree._Element, context: HostContext) -> Iterator[str]:
    for device in root.iterfind("devices/*"):
        if device.tag not in ("serial", "parallel", "console", "channel"):
            continue
        kind = device.get("type", "pty")
        label = f"<{device.tag} type='{kind}'>"
        if kind == "dev":
            yield f"{label} is not accepted: it connects the VM to a device of the host."
        if kind in CHARDEV_PATH_TYPES:
            for source in device.iterfind("source"):
                path = source.get("path")
                if path is not None and not _inside(path, LIBVIRT_STATE_DIR):
                    yield f"{label}: the path {path!r} must be inside {LIBVIRT_STATE_DIR}/."
        for log in device.iterfind("log"):
            path = log.get("file")
            if path is not None and not _inside(path, LIBVIRT_LOG_DIR):
                yield f"{label}: the log file {path!r} must be inside {LIBVIRT_LOG_DIR}/."


def boot_files_in_place(root: etree._Element, context: HostContext) -> Iterator[str]:
    """A kernel or initrd is read into the guest's memory: it must be a pool volume, never any host file."""
    for tag in ("kernel", "initrd", "dtb"):
        for element in root.iterfind(f"os/{tag}"):
            path = (element.text or "").strip()
            if not _in_a_pool(path, context):
                yield f"<os><{tag}>: {path!r} is not a volume of one of the host's storage pools."
    for element in root.iterfind("os/loader"):
        path = (element.text or "").strip()
        if path and not _inside(path, FIRMWARE_DIR):
            yield f"<os><loader>: {path!r} must be a firmware file inside {FIRMWARE_DIR}/."
    for element in root.iterfind("os/nvram"):
        path = (element.text or "").strip()
        if path and not _inside(path, LIBVIRT_STATE_DIR):
            yield f"<os><nvram>: {path!r} must be inside {LIBVIRT_STATE_DIR}/."
        template = element.get("template")
        if template is not None and not _inside(template, FIRMWARE_DIR):
            yield f"<os><nvram template=...>: {template!r} must be inside {FIRMWARE_DIR}/."


def confined_by_security_driver(root: etree._Element, context: HostContext) -> Iterator[str]:
    for seclabel in root.iterfind("seclabel"):
        if seclabel.get("type", "dynamic") != "dynamic" or seclabel.get("relabel") == "no":
            yield ("<seclabel> may only be type='dynamic' with relabelling on: anything else changes the "
                   "user or the confinement QEMU runs with on the host.")


RULES: tuple[Rule, ...] = (
    same_uuid,
    no_foreign_namespaces,
    no_host_devices,
    disk_sources_in_pools,
    filesystem_sources_in_pools,
    no_interface_scripts,
    known_emulator,
    character_devices_in_libvirt_dirs,
    boot_files_in_place,
    confined_by_security_driver,
)


# ---------------------------------------------------------------------------------------------
# Helpers


def _source_refusals(source: etree._Element, label: str, context: HostContext, *,
                     attribute: str | None) -> Iterator[str]:
    if source.get("pool") is not None:
        if source.get("pool") not in context.pools:
            yield f"{label}: the storage pool {source.get('pool')!r} does not exist on this host."
        return
    path = source.get(attribute) if attribute else None
    if path is None:
        return  # an empty CD-ROM drive, or a source with no path (RAM filesystem)
    if not _in_a_pool(path, context):
        yield f"{label}: {path!r} is not inside one of the host's storage pools."


def _in_a_pool(path: str, context: HostContext) -> bool:
    return any(_inside(path, folder) for folder in context.pools.values() if folder)


def _inside(path: str, folder: str) -> bool:
    """True for an absolute path, without '..', that lies below folder."""
    if not path.startswith("/") or ".." in path.split("/"):
        return False
    folder = posixpath.normpath(folder)
    return posixpath.normpath(path).startswith(folder.rstrip("/") + "/")


def _elements_outside_metadata(root: etree._Element) -> Iterator[etree._Element]:
    """Every element outside <metadata>, in document order; a namespaced one without its children."""
    stack = [root]
    while stack:
        element = stack.pop()
        yield element
        if etree.QName(element).namespace:
            continue  # refused as a whole: its children are not reported again
        stack.extend(child for child in reversed(element) if isinstance(child.tag, str) and child.tag != "metadata")


def _target_of(element: etree._Element, attribute: str) -> str:
    target = element.find("target")
    return target.get(attribute, "(no target)") if target is not None else "(no target)"


def _name(element: etree._Element) -> str:
    qname = etree.QName(element)
    return f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname
