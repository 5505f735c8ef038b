"""The allowlist for domain XML that a user edited by hand, checked before it is defined.

Each rule looks at one part of the document and returns the refusals it finds, each in words
that name the element and say why. The model (virt.xml.domain) has no policy; this module is the
policy, and the form and the worker both run it.
"""
from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from lxml import etree

QEMU_NAMESPACE = "http://libvirt.org/schemas/domain/qemu/1.0"
# Where libvirt keeps the files it creates for guests: NVRAM (one file per VM, named for it) and logs.
NVRAM_DIR = "/var/lib/libvirt/qemu/nvram"
QEMU_LOG_DIR = "/var/log/libvirt/qemu"
FIRMWARE_DIR = "/usr/share"
# What <devices> may hold; anything else is refused, so that a device vmsite does not know cannot
# bring a host path, socket or device past the rules below.
DEVICE_TAGS = frozenset({
    "emulator", "disk", "controller", "interface", "input", "graphics", "video", "sound", "audio", "console",
    "serial", "parallel", "channel", "memballoon", "rng", "watchdog", "tpm", "memory", "filesystem", "hub",
    "panic", "iommu", "vsock", "redirdev", "redirfilter", "smartcard", "crypto",
})
DEVICE_REFUSALS = {
    "hostdev": "passing a host's PCI, USB or SCSI device to a VM is not allowed here",
    "shmem": "it shares memory with other VMs or with a server on the host",
    "lease": "its lock space is a file of the host",
    "pstore": "its store is a file of the host",
    "nvram": "it is a file of the host",
}
CHARDEV_TAGS = ("serial", "parallel", "console", "channel")
# Character device types that reach nothing of the host but a terminal, the console proxy or SPICE;
# unix, tcp and file have their own rules; the rest (dev, pipe, udp, nmdm, ...) are refused.
CHARDEV_HARMLESS_TYPES = frozenset({"pty", "null", "vc", "stdio", "spicevmc", "spiceport", "qemu-vdagent"})
INTERFACE_TYPES = frozenset({"network", "bridge", "direct", "user"})
INPUT_TYPES = frozenset({"mouse", "tablet", "keyboard"})
RNG_SOURCES = frozenset({"/dev/urandom", "/dev/random"})
GRAPHICS_TYPES = frozenset({"vnc", "spice", "egl-headless"})
AUDIO_TYPES = frozenset({"none", "spice"})


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
    name: str = ""  # the VM's name now (its NVRAM file is named for it)
    nvram: str | None = None  # the VM's own NVRAM file now, if it has one
    own_paths: frozenset[str] = frozenset()  # the volumes the VM has now
    # volume paths other VMs of the host use -> whether one of them writes to it
    used_elsewhere: Mapping[str, bool] = field(default_factory=dict)


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


def volume_paths(root: etree._Element, pools: Mapping[str, str]) -> dict[str, bool]:
    """The volumes a domain document's disks use, each with whether the VM writes to it; what a
    HostContext's own_paths and used_elsewhere are made of."""
    context = HostContext(uuid="", pools=pools, emulator=None)
    paths: dict[str, bool] = {}
    for disk in root.iterfind("devices/disk"):
        attribute = {"file": "file", "block": "dev"}.get(disk.get("type", "file"))
        for source in disk.iterfind("source"):
            path = _volume_path(source, context, attribute=attribute)
            if path is not None:
                paths[path] = paths.get(path, False) or disk.find("readonly") is None
    return paths


def nvram_path(root: etree._Element) -> str | None:
    element = root.find("os/nvram")
    if element is None:
        return None
    return (element.text or "").strip() or element.xpath("string(source/@file)") or None


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


def known_devices_only(root: etree._Element, context: HostContext) -> Iterator[str]:
    for device in root.iterfind("devices/*"):
        if not isinstance(device.tag, str) or etree.QName(device).namespace:
            continue  # comments; namespaced elements are refused by no_foreign_namespaces
        if device.tag in DEVICE_REFUSALS:
            yield f"<{device.tag}> is not accepted: {DEVICE_REFUSALS[device.tag]}."
        elif device.tag not in DEVICE_TAGS:
            yield f"<{device.tag}> is not accepted in <devices>: vmsite does not know what it reaches on the host."
    for hostdev in root.iterfind(".//hostdev"):
        if hostdev.getparent().tag != "devices":  # one nested elsewhere (those in <devices> are above)
            yield "<hostdev> is not accepted: passing a host's PCI, USB or SCSI device to a VM is not allowed here."


def disk_sources_in_pools(root: etree._Element, context: HostContext) -> Iterator[str]:
    for disk in root.iterfind("devices/disk"):
        label = f"the disk {_target_of(disk, 'dev')}"
        if disk.get("rawio") == "yes":
            yield f"{label}: rawio='yes' is not accepted: it gives QEMU raw I/O rights on the host."
        for reservations in disk.iter("reservations"):
            if reservations.get("managed") != "yes" or len(reservations):
                yield (f"{label}: <reservations> must be managed='yes' with no <source>: another socket of the "
                       "host is not accepted.")
        # The disk's own source, then those of its backing chain and data file, each typed by its holder.
        for holder in [disk, *disk.iter("backingStore", "dataStore")]:
            kind = holder.get("type", "file")
            if kind in ("network", "nvme", "vhostuser"):
                yield f"{label}: disks of type '{kind}' are not accepted; use a volume of one of the host's pools."
                continue
            for source in holder.iterfind("source"):
                yield from _source_refusals(source, label, context,
                                            attribute={"file": "file", "block": "dev", "dir": "dir"}.get(kind))
                path = _volume_path(source, context, attribute={"file": "file", "block": "dev"}.get(kind))
                writes = holder is disk and disk.find("readonly") is None
                if (path is not None and path in context.used_elsewhere and path not in context.own_paths
                        and (writes or context.used_elsewhere[path])):
                    yield (f"{label}: {path!r} is in use by another VM of this host; a volume may be on two VMs "
                           "only where both read it.")


def no_filesystem_passthrough(root: etree._Element, context: HostContext) -> Iterator[str]:
    """A shared folder gives the guest a folder of the host (a pool's folder holds other VMs' disks),
    and virtiofs runs a helper program of the XML's choosing: only RAM filesystems are accepted."""
    for filesystem in root.iterfind("devices/filesystem"):
        kind = filesystem.get("type", "mount")
        if kind != "ram":
            yield (f"{element_label('filesystem', type=kind)} (the filesystem {_target_of(filesystem, 'dir')}) is not accepted: "
                   "it shares files of the host with the VM.")


def element_label(tag: str, **attributes: object) -> str:
    """How a refusal names an element, as the user wrote it: "<interface type='ethernet'>". Words of
    a message, never XML that is parsed or sent to libvirt."""
    return "<" + " ".join([tag, *(f"{name}='{value}'" for name, value in attributes.items())]) + ">"


def interfaces_on_host_networks(root: etree._Element, context: HostContext) -> Iterator[str]:
    for interface in root.iterfind("devices/interface"):
        kind = interface.get("type")
        label = element_label("interface", type=kind)
        if kind == "hostdev":
            yield f"{label} is not accepted: it passes a host's network card to the VM."
            continue
        if kind not in INTERFACE_TYPES:
            yield (f"{label} is not accepted: only network, bridge, direct and user interfaces are (others use "
                   "host sockets, tap devices or scripts of the XML's choosing).")
            continue
        for tag in ("script", "downscript"):
            if interface.find(tag) is not None:
                yield f"<{tag}> in {label} is not accepted: it runs a program on the host as libvirt's user."
        for backend in interface.iterfind("backend"):
            for attribute in ("tap", "vhost", "logFile"):
                if backend.get(attribute) is not None:
                    yield f"{label}: <backend {attribute}=...> is not accepted: it names a file of the host."
        if interface.find("portForward") is not None:
            yield f"{label}: <portForward> is not accepted: it listens on the host's ports."


def known_emulator(root: etree._Element, context: HostContext) -> Iterator[str]:
    for emulator in root.iterfind("devices/emulator"):
        path = (emulator.text or "").strip()
        if context.emulator is None:
            yield "<emulator> is not accepted: the host's emulator is not known yet; remove it and libvirt chooses."
        elif path != context.emulator:
            yield f"<emulator> must be the host's {context.emulator}, not {path!r}."


def character_devices_reach_nothing_of_the_host(root: etree._Element, context: HostContext) -> Iterator[str]:
    """Serial ports, consoles and channels (and the character device of an egd RNG backend) may be terminals, SPICE channels, a socket libvirt names for this VM, a socket
    listening on the host's loopback only, or a log file of this VM's own."""
    holders = [device for device in root.iterfind("devices/*") if device.tag in CHARDEV_TAGS]
    holders += root.iterfind("devices/rng/backend[@model='egd']")  # redirdev, smartcard: spicevmc only
    for device in holders:
        kind = device.get("type", "pty")
        label = (element_label(device.tag, type=kind) if device.tag != "backend"
                 else "<rng>" + element_label("backend", model="egd", type=kind))
        if kind == "unix":
            for source in device.iterfind("source"):
                if source.get("mode", "bind") != "bind":
                    yield f"{label}: mode='{source.get('mode')}' is not accepted: it connects to a socket of the host."
                elif source.get("path") is not None:
                    yield (f"{label}: the path {source.get('path')!r} is not accepted: leave the path out and "
                           "libvirt makes a socket for this VM.")
        elif kind in ("tcp", "telnet"):
            for source in device.iterfind("source"):
                if source.get("mode", "bind") != "bind":
                    yield f"{label}: mode='{source.get('mode')}' is not accepted: it connects to a service."
                elif not _loopback(source.get("host")):
                    yield (f"{label}: listening on {source.get('host') or 'every address'} is not accepted: "
                           "listen on the host's loopback (127.0.0.1 or ::1) only.")
        elif kind == "file":
            for source in device.iterfind("source"):
                yield from _own_log_refusals(label, "the path", source.get("path"), context)
        elif kind not in CHARDEV_HARMLESS_TYPES:
            yield f"{label} is not accepted: it connects the VM to a device, pipe or address of the host."
        for log in device.iterfind("log"):
            yield from _own_log_refusals(label, "the log file", log.get("file"), context)


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
        if path and element.get("readonly") == "no":
            yield "<os><loader readonly='no'> is not accepted: the VM would write into the host's firmware file."
    for element in root.iterfind("os/nvram"):
        if element.get("type", "file") != "file":
            yield f"<os><nvram type='{element.get('type')}'> is not accepted: NVRAM is a file libvirt keeps."
        for path in [(element.text or "").strip(), *element.xpath("./source/@file")]:
            if path and path not in _own_nvram(context):
                yield (f"<os><nvram>: {path!r} is not this VM's own NVRAM file"
                       + (f" ({', '.join(sorted(_own_nvram(context)))})." if _own_nvram(context) else "."))
        template = element.get("template")
        if template is not None and not _inside(template, FIRMWARE_DIR):
            yield f"<os><nvram template=...>: {template!r} must be inside {FIRMWARE_DIR}/."
    for table in root.iterfind("os/acpi/table"):
        yield "<os><acpi><table> is not accepted: it reads a file of the host into the VM."
    for entry in root.iterfind("sysinfo/entry[@file]"):
        yield f"<sysinfo><entry file=...> ({entry.get('name')}) is not accepted: it reads a file of the host into the VM."


def confined_by_security_driver(root: etree._Element, context: HostContext) -> Iterator[str]:
    for seclabel in root.iterfind("seclabel"):
        if seclabel.get("type", "dynamic") != "dynamic" or seclabel.get("relabel") == "no":
            yield ("<seclabel> may only be type='dynamic' with relabelling on: anything else changes the "
                   "user or the confinement QEMU runs with on the host.")
        for child in seclabel:
            if isinstance(child.tag, str):
                yield (f"<seclabel><{child.tag}> is not accepted: a base label or a label of the XML's choosing "
                       "changes the confinement QEMU runs with on the host.")
    for seclabel in root.iterfind(".//devices//seclabel"):
        yield ("<seclabel> inside a device is not accepted: it changes how libvirt labels (and so who may use) "
               "a file of the host.")


def no_host_device_backends(root: etree._Element, context: HostContext) -> Iterator[str]:
    """Devices whose backend is a device node, a file or a socket of the host."""
    for tpm in root.iterfind("devices/tpm"):
        for backend in tpm.iterfind("backend"):
            if backend.get("type") != "emulator":
                yield (f"<tpm> with <backend type='{backend.get('type')}'> is not accepted: only an emulated TPM "
                       "(type='emulator') is; passthrough gives the VM the host's TPM.")
            elif backend.find("source") is not None:
                yield "<tpm><backend><source> is not accepted: libvirt keeps the emulated TPM's state itself."
    for device in root.iterfind("devices/input"):
        if device.get("type") not in INPUT_TYPES:
            yield (f"<input type='{device.get('type')}'> is not accepted: it reads an input device of the host; "
                   "use a mouse, tablet or keyboard.")
    for backend in root.iterfind("devices/rng/backend"):
        model = backend.get("model")
        if model == "random" and (backend.text or "").strip() not in ("", *RNG_SOURCES):
            yield (f"<rng> with <backend model='random'>{(backend.text or '').strip()}</backend> is not accepted: "
                   f"an RNG reads {' or '.join(sorted(RNG_SOURCES))} only.")
        elif model not in ("random", "builtin", "egd"):
            yield f"<rng> with <backend model='{model}'> is not accepted."
    for memory in root.iterfind("devices/memory"):
        for path in memory.iterfind("source/path"):
            yield (f"<memory model='{memory.get('model')}'> with <source><path> is not accepted: it maps a file of "
                   "the host into the VM.")
    for device in root.iterfind("devices/redirdev"):
        if device.get("type") != "spicevmc":
            yield (f"<redirdev type='{device.get('type')}'> is not accepted: USB redirection comes from the SPICE "
                   "client (type='spicevmc') only.")
    for card in root.iterfind("devices/smartcard"):
        if card.get("mode") != "passthrough" or card.get("type") != "spicevmc":
            yield (f"<smartcard mode='{card.get('mode')}'> is not accepted: smartcards come from the SPICE client "
                   "(mode='passthrough' type='spicevmc') only.")
    for audio in root.iterfind("devices/audio"):
        if audio.get("type") not in AUDIO_TYPES:
            yield (f"<audio type='{audio.get('type')}'> is not accepted: it reaches the host's sound system or "
                   "files; use 'none' or 'spice'.")
    for driver in root.iterfind("devices/video/driver[@name='vhostuser']"):
        yield "<video> with <driver name='vhostuser'> is not accepted: it runs a helper program on the host."


def graphics_on_loopback(root: etree._Element, context: HostContext) -> Iterator[str]:
    """Consoles reach the VM's screen through vmsite's proxy: a screen listening beyond the host's
    loopback, on a socket of the XML's choosing, or on the host's own display is not accepted."""
    for graphics in root.iterfind("devices/graphics"):
        kind = graphics.get("type")
        label = f"<graphics type='{kind}'>"
        if kind not in GRAPHICS_TYPES:
            yield f"{label} is not accepted: use vnc or spice (the console proxy reaches them)."
            continue
        if graphics.get("socket") is not None:
            yield f"{label}: socket=... is not accepted: it names a file of the host."
        if not _loopback(graphics.get("listen"), missing=True):
            yield f"{label}: listen='{graphics.get('listen')}' is not accepted: listen on the host's loopback only."
        for listen in graphics.iterfind("listen"):
            kind = listen.get("type", "address")
            if kind == "network" or (kind == "socket" and listen.get("socket") is not None):
                yield (f"{label}: <listen type='{kind}'> with a {'network' if kind == 'network' else 'socket'} is not "
                       "accepted: listen on an address of the host's loopback.")
            elif kind == "address" and not _loopback(listen.get("address"), missing=True):
                yield (f"{label}: <listen address='{listen.get('address')}'> is not accepted: listen on the host's "
                       "loopback only.")
        for gl in graphics.iter("gl"):
            if gl.get("rendernode") is not None:
                yield f"{label}: <gl rendernode=...> is not accepted: it is a device of the host."


RULES: tuple[Rule, ...] = (
    same_uuid,
    no_foreign_namespaces,
    known_devices_only,
    disk_sources_in_pools,
    no_filesystem_passthrough,
    interfaces_on_host_networks,
    known_emulator,
    character_devices_reach_nothing_of_the_host,
    boot_files_in_place,
    confined_by_security_driver,
    no_host_device_backends,
    graphics_on_loopback,
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


def _volume_path(source: etree._Element, context: HostContext, *, attribute: str | None) -> str | None:
    """The path of the volume a disk source names (a file, a block device, or a pool's volume)."""
    if source.get("pool") is not None and source.get("volume") is not None:
        folder = context.pools.get(source.get("pool"))
        return posixpath.join(folder, source.get("volume")) if folder else None
    path = source.get(attribute) if attribute else None
    return posixpath.normpath(path) if path else None


def _own_nvram(context: HostContext) -> set[str]:
    own = {context.nvram} if context.nvram else set()
    if context.name:
        own.add(f"{NVRAM_DIR}/{context.name}_VARS.fd")
    return own


def _own_log_refusals(label: str, what: str, path: str | None, context: HostContext) -> Iterator[str]:
    """A file a character device writes: only in QEMU's log folder, named for this VM's UUID."""
    if path is None:
        return
    if not (_inside(path, QEMU_LOG_DIR) and posixpath.dirname(posixpath.normpath(path)) == QEMU_LOG_DIR
            and posixpath.basename(path).startswith(context.uuid.lower())):
        yield (f"{label}: {what} {path!r} must be a file in {QEMU_LOG_DIR}/ whose name starts with this VM's UUID "
               f"({context.uuid.lower()}).")


def _loopback(address: str | None, *, missing: bool = False) -> bool:
    """A loopback address (or name); `missing` is the answer when none is given."""
    if not address:
        return missing
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


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
