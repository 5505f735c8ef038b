"""Changing a VM: disks, NICs, vCPUs, memory, CD-ROM media, boot order, title and description,
and defining XML a user edited.

A change applies live (to the running guest), persistently (to its definition), or both; a live
change is only made when the VM is running. Device XML is built with the virt.xml classes.
"""
from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import libvirt

from virt.errors import InvalidArgument, NotFound, OperationInvalid, lookup_or_none, raises_typed, tolerating
from virt.volumes import find_volume, volume_format
from virt.xml.base import parse_trusted, parse_untrusted
from virt.xml.domain import TAGS_NS, TAGS_PREFIX, Disk, Domain, Interface, TagList
from virt.xml.storage import PoolXML
from virt.xml.policy import HostContext, PolicyViolation, nvram_path, require_allowed, volume_paths

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE
CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
TARGET_PREFIX = {"virtio": "vd", "sata": "sd", "scsi": "sd", "usb": "sd", "ide": "hd"}
# Volume formats QEMU reads as disk images; anything else (iso, none) is given as raw.
IMAGE_FORMATS = frozenset({"raw", "qcow2", "qcow", "qed", "vmdk", "vdi", "vpc", "vhdx"})
_SCOPE_WORDS = {LIVE | CONFIG: "live and persistently", LIVE: "live only", CONFIG: "persistently (from the next start)"}


# ---------------------------------------------------------------------------------------------
# Where a change applies


@raises_typed
def affect_flags(domain: libvirt.virDomain, *, live: bool, persistent: bool) -> int:
    """The AFFECT flags for what the user ticked; live is dropped when the VM is not running."""
    flags = 0
    if live and domain.isActive():
        flags |= LIVE
    if persistent:
        if not domain.isPersistent():
            raise OperationInvalid("The VM is transient: it has no definition to change persistently.")
        flags |= CONFIG
    if not flags:
        raise OperationInvalid("The VM is not running, so a live-only change has nothing to act on; "
                               "choose 'persistent' to change its definition.")
    return flags


def scope_words(flags: int) -> str:
    return _SCOPE_WORDS[flags & (LIVE | CONFIG)]


def _scopes(flags: int) -> list[int]:
    return [scope for scope in (LIVE, CONFIG) if flags & scope]


def _document(domain: libvirt.virDomain, scope: int) -> Domain:
    """The live or the persistent definition, as a model (no passwords: not XML_SECURE)."""
    return Domain.from_libvirt(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if scope == CONFIG else 0))


# ---------------------------------------------------------------------------------------------
# Disks


@dataclass(frozen=True)
class PoolVolume:
    pool: str
    name: str
    path: str
    format: str  # as libvirt reports it (probed): a disk is defined with vmsite's record instead
    is_block: bool
    key: str = ""
    handle: libvirt.virStorageVol | None = None

    @property
    def label(self) -> str:
        return f"{self.pool}/{self.name}"


@raises_typed
def find_pool_volume(conn: libvirt.virConnect, *, pool_name: str, volume_name: str) -> PoolVolume:
    """A volume of one of the host's pools; a path is never taken from the user."""
    volume = find_volume(conn, pool_name, volume_name)
    kind = volume.info()[0]
    if kind not in (libvirt.VIR_STORAGE_VOL_FILE, libvirt.VIR_STORAGE_VOL_BLOCK):
        raise InvalidArgument(f"{pool_name}/{volume_name} is not a file or block volume, so it cannot be a disk.")
    return PoolVolume(pool=pool_name, name=volume_name, path=volume.path(), format=volume_format(volume),
                      is_block=kind == libvirt.VIR_STORAGE_VOL_BLOCK, key=volume.key(), handle=volume)


def disk_format(fmt: str) -> str:
    """The driver type a disk of this volume format gets: an ISO or a block device is read as raw."""
    return fmt if fmt in IMAGE_FORMATS else "raw"


@raises_typed
def attach_disk(conn: libvirt.virConnect, domain: libvirt.virDomain, *, volume: PoolVolume, bus: str,
                readonly: bool, live: bool, persistent: bool, shareable: bool = False) -> str:
    """Attach a volume found with find_pool_volume; its `format` is the one the disk is defined with."""
    flags = affect_flags(domain, live=live, persistent=persistent)
    documents = [_document(domain, scope) for scope in _scopes(flags)]
    for document in documents:
        for disk in document.disks:
            if disk.source == volume.path:
                raise OperationInvalid(f"{volume.label} is already attached to this VM as {disk.target_dev}.")
    disk = Disk.new()
    disk.device = "disk"
    _set_source(disk, volume)
    disk.target_dev = _free_target(documents, bus)
    disk.target_bus = bus
    disk.readonly = readonly
    disk.shareable = shareable
    _attach_device(domain, disk.to_xml(), flags)
    return f"Attached {volume.label} as {disk.target_dev} ({bus}), {scope_words(flags)}"


def _attach_device(domain: libvirt.virDomain, xml: str, flags: int) -> None:
    try:
        domain.attachDeviceFlags(xml, flags)
    except libvirt.libvirtError as exc:
        if "No more available PCI slots" in (exc.get_error_message() or ""):  # libvirt has no code of its own for it
            raise OperationInvalid("The running VM has no free PCI slot for this device (a q35 VM needs a spare "
                                   "PCIe root port for each device plugged in live). Add it to the definition "
                                   "only: it appears at the next start.") from exc
        raise


@raises_typed
def detach_disk(domain: libvirt.virDomain, *, target_dev: str, live: bool, persistent: bool) -> str:
    return _detach(domain, live=live, persistent=persistent,
                   find=lambda document: _disk_by_target(document, target_dev),
                   missing=f"The VM has no disk {target_dev}.", done=f"Detached {target_dev}",
                   pending="; the running guest has not released it yet (a virtio or SCSI disk needs the guest "
                           "OS to answer the unplug request)")


def _detach(domain: libvirt.virDomain, *, live: bool, persistent: bool, find, missing: str, done: str,
            pending: str) -> str:
    """Detach the device `find` picks from each copy (live, persistent) that has it."""
    flags = affect_flags(domain, live=live, persistent=persistent)
    scopes = []
    for scope in _scopes(flags):
        device = find(_document(domain, scope))
        if device is not None:
            domain.detachDeviceFlags(device.to_xml(), scope)
            scopes.append(scope)
    if not scopes:
        raise NotFound(missing)
    message = f"{done}, {scope_words(sum(scopes))}"
    if LIVE in scopes and find(_document(domain, LIVE)) is not None:
        message += pending
    return message


@raises_typed
def change_media(conn: libvirt.virConnect, domain: libvirt.virDomain, *, target_dev: str,
                 volume: PoolVolume | None, live: bool, persistent: bool) -> str:
    """Insert a pool volume (found with find_pool_volume) into a CD-ROM or floppy drive, or eject
    the medium when no volume is given."""
    flags = affect_flags(domain, live=live, persistent=persistent)
    for scope in _scopes(flags):
        drive = _disk_by_target(_document(domain, scope), target_dev)
        if drive is None:
            raise NotFound(f"The VM has no drive {target_dev}.")
        if drive.device not in ("cdrom", "floppy"):
            raise InvalidArgument(f"{target_dev} is a {drive.device}, not a CD-ROM or floppy drive.")
        update_media(domain, _with_media(drive, volume).to_xml(), scope)
    what = f"Inserted {volume.label} into" if volume else "Ejected the medium of"
    return f"{what} {target_dev}, {scope_words(flags)}"


TRAY_ATTEMPTS = 3
TRAY_RETRY_SECONDS = 0.5
_TRAY_NOT_OPEN = re.compile(r"Tray of device .* is not open")


def update_media(domain: libvirt.virDomain, xml: str, scope: int) -> None:
    """A media change: libvirt opens the drive's tray, waits for QEMU to say it is open, removes
    the medium and inserts the new one. On a loaded host QEMU has refused the removal with "Tray of
    device ... is not open" right after that (twice in whole test runs); the tray is open by then,
    and the same change again goes through."""
    for attempt in range(1, TRAY_ATTEMPTS + 1):
        try:
            domain.updateDeviceFlags(xml, scope)
            return
        except libvirt.libvirtError as exc:
            if attempt == TRAY_ATTEMPTS or not _TRAY_NOT_OPEN.search(str(exc)):
                raise
        time.sleep(TRAY_RETRY_SECONDS)


def _with_media(drive: Disk, volume: PoolVolume | None) -> Disk:
    changed = drive.copy()
    for attribute in ("source_file", "source_dev", "source_pool", "source_volume"):
        setattr(changed, attribute, None)
    if volume is None:
        changed.type = "file"
        changed.driver_type = None
    else:
        _set_source(changed, volume)
    return changed


def _set_source(disk: Disk, volume: PoolVolume) -> None:
    disk.type = "block" if volume.is_block else "file"
    disk.driver_name = "qemu"
    disk.driver_type = disk_format(volume.format)
    if volume.is_block:
        disk.source_dev = volume.path
    else:
        disk.source_file = volume.path


def _disk_by_target(document: Domain, target_dev: str) -> Disk | None:
    return next((disk for disk in document.disks if disk.target_dev == target_dev), None)


def _free_target(documents: list[Domain], bus: str) -> str:
    prefix = TARGET_PREFIX[bus]
    used = {disk.target_dev for document in documents for disk in document.disks}
    letters = "abcdefghijklmnopqrstuvwxyz"
    for name in [*letters, *(a + b for a in letters for b in letters)]:
        if prefix + name not in used:
            return prefix + name
    raise OperationInvalid(f"No free {bus} disk name is left on this VM.")


# ---------------------------------------------------------------------------------------------
# Network interfaces


def random_mac() -> str:
    """A MAC in QEMU's locally administered range 52:54:00, as libvirt itself picks them."""
    return "52:54:00:" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(3))


MAC_TAKEN = "The MAC {mac} is already used by another VM on this host: choose another."


@raises_typed
def other_domain_descriptions(conn: libvirt.virConnect, *, except_uuid: str | None) -> list[str]:
    """The XML of every VM of the host but one: the live and the persistent definition of a running
    persistent VM (both may hold a device), the one definition of any other."""
    descriptions: list[str] = []
    for other in conn.listAllDomains():
        if other.UUIDString() == except_uuid:
            continue
        with tolerating(libvirt.VIR_ERR_NO_DOMAIN):  # gone since the listing
            descriptions.append(other.XMLDesc(0))
            if other.isPersistent() and other.isActive():
                descriptions.append(other.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return descriptions


@raises_typed
def macs_in_use(conn: libvirt.virConnect, *, except_uuid: str | None = None) -> set[str]:
    """Every MAC the host's VMs have, running or defined (both definitions of each), but one VM's."""
    macs: set[str] = set()
    for description in other_domain_descriptions(conn, except_uuid=except_uuid):
        macs.update((nic.mac or "").lower() for nic in Domain.from_libvirt(description).interfaces)
    macs.discard("")
    return macs


@raises_typed
def require_free_macs(conn: libvirt.virConnect, macs: list[str], *, except_uuid: str | None = None) -> None:
    """Refuse a MAC another VM of the host has, whether or not the asking user may see that VM
    (so the message names no VM)."""
    taken = macs_in_use(conn, except_uuid=except_uuid)
    for mac in macs:
        if mac.lower() in taken:
            raise OperationInvalid(MAC_TAKEN.format(mac=mac.lower()))


@raises_typed
def free_random_mac(conn: libvirt.virConnect) -> str:
    taken = macs_in_use(conn)
    while (mac := random_mac()) in taken:
        pass
    return mac


@raises_typed
def attach_nic(conn: libvirt.virConnect, domain: libvirt.virDomain, *, network: str, model: str, mac: str | None,
               boot_rom: bool, live: bool, persistent: bool) -> str:
    require_network(conn, network)
    flags = affect_flags(domain, live=live, persistent=persistent)
    mac = (mac or free_random_mac(conn)).lower()
    for scope in _scopes(flags):
        if _nic_by_mac(_document(domain, scope), mac) is not None:
            raise OperationInvalid(f"The VM already has a NIC with the MAC {mac}.")
    require_free_macs(conn, [mac], except_uuid=domain.UUIDString())
    nic = Interface.new()
    nic.type = "network"
    nic.mac = mac  # one MAC for the live and the persistent copy
    nic.source_network = network
    nic.model = model
    if not boot_rom:
        nic.rom_enabled = False
    _attach_device(domain, nic.to_xml(), flags)
    return f"Added a {model} NIC {mac} on {network}, {scope_words(flags)}"


@raises_typed
def detach_nic(domain: libvirt.virDomain, *, mac: str, live: bool, persistent: bool) -> str:
    return _detach(domain, live=live, persistent=persistent, find=lambda document: _nic_by_mac(document, mac),
                   missing=f"The VM has no NIC with the MAC {mac}.", done=f"Removed the NIC {mac}",
                   pending="; the running guest has not released it yet (PCI unplug needs the guest OS to answer)")


@raises_typed
def require_network(conn: libvirt.virConnect, network: str) -> None:
    if lookup_or_none(conn.networkLookupByName, network) is None:
        raise NotFound(f"The host has no network named {network!r}.", code=libvirt.VIR_ERR_NO_NETWORK)


# Keeps the filter as it is (None means: remove it).
KEEP = object()


@raises_typed
def update_nic(conn: libvirt.virConnect, domain: libvirt.virDomain, *, mac: str, network: str | None = None,
               model: str | None = None, link_state: str | None = None, filter_name=KEEP,
               filter_parameters: dict[str, str] | None = None, live: bool, persistent: bool) -> str:
    """Change one NIC in place (virDomainUpdateDeviceFlags): its network, model, link state or
    nwfilter. A running guest cannot change a NIC's model; that applies to the definition only."""
    if network:
        require_network(conn, network)
    flags = affect_flags(domain, live=live, persistent=persistent)
    changes = []
    for scope in _scopes(flags):
        nic = _nic_by_mac(_document(domain, scope), mac)
        if nic is None:
            raise NotFound(f"The VM has no NIC with the MAC {mac}" + (" while it runs." if scope == LIVE else "."))
        changed = nic.copy()
        if model and model != nic.model:
            if scope == LIVE:
                raise OperationInvalid(f"A running VM's NIC cannot change model ({nic.model} to {model}): choose "
                                       "persistent only, and it applies from the next start.")
            changed.model = model
            changes.append(f"model {model}")
        if network and (nic.type != "network" or nic.source_network != network):
            changed.source_bridge = changed.source_dev = changed.source_mode = None
            changed.type = "network"
            changed.source_network = network
            changes.append(f"network {network}")
        if link_state:
            changed.link_state = link_state
            changes.append(f"link {link_state}")
        if filter_name is not KEEP:
            changed.set_filter(filter_name, filter_parameters)
            changes.append(f"filter {filter_name}" if filter_name else "no filter")
        domain.updateDeviceFlags(changed.to_xml(), scope)
    if not changes:
        return f"The NIC {mac} already had those settings"
    return f"NIC {mac}: {', '.join(dict.fromkeys(changes))}, {scope_words(flags)}"


def _nic_by_mac(document: Domain, mac: str) -> Interface | None:
    return next((nic for nic in document.interfaces if (nic.mac or "").lower() == mac.lower()), None)


# ---------------------------------------------------------------------------------------------
# vCPUs and memory


@raises_typed
def set_vcpus(domain: libvirt.virDomain, *, count: int, maximum: int | None, live: bool, persistent: bool) -> str:
    """Set the vCPU count within the VM's maximum; a new maximum applies to the definition only.
    Everything is checked before anything changes."""
    _check_new_maximum(maximum, count, persistent=persistent, unit="vCPUs", what="vCPU maximum")
    flags = affect_flags(domain, live=live, persistent=persistent)
    for scope in _scopes(flags):
        if scope == CONFIG and maximum is not None:
            limit = maximum
        else:
            limit = domain.vcpusFlags(scope | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
        if count > limit:
            raise InvalidArgument(f"{count} vCPUs is more than the {_where(scope)}'s maximum of {limit}.")
    if maximum is not None:
        domain.setVcpusFlags(maximum, CONFIG | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
    domain.setVcpusFlags(count, flags)
    suffix = f" (maximum {maximum})" if maximum is not None else ""
    return f"vCPUs set to {count}{suffix}, {scope_words(flags)}"


@raises_typed
def set_memory(domain: libvirt.virDomain, *, memory_kib: int, maximum_kib: int | None, live: bool,
               persistent: bool) -> str:
    """Set the current memory within the VM's maximum; a new maximum applies to the definition only.
    Everything is checked before anything changes."""
    _check_new_maximum(None if maximum_kib is None else maximum_kib // 1024, memory_kib // 1024,
                       persistent=persistent, unit="MiB", what="memory maximum")
    flags = affect_flags(domain, live=live, persistent=persistent)
    for scope in _scopes(flags):
        if scope == CONFIG:
            limit = maximum_kib if maximum_kib is not None else _document(domain, CONFIG).memory
        else:
            limit = domain.maxMemory()
        if memory_kib > limit:
            raise InvalidArgument(f"{memory_kib // 1024} MiB is more than the {_where(scope)}'s maximum of "
                                  f"{limit // 1024} MiB.")
    if maximum_kib is not None:
        domain.setMemoryFlags(maximum_kib, CONFIG | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
    try:
        domain.setMemoryFlags(memory_kib, flags)
    except libvirt.libvirtError as exc:
        if flags & LIVE and "balloon" in (exc.get_error_message() or ""):
            raise OperationInvalid("The running VM has no memory balloon device: its memory cannot change while it "
                                   "runs. Change its definition only (from the next start).") from exc
        raise
    suffix = f" (maximum {maximum_kib // 1024} MiB)" if maximum_kib is not None else ""
    done = f"Memory set to {memory_kib // 1024} MiB{suffix}, {scope_words(flags)}"
    if flags & LIVE:
        held_kib = _balloon_settled(domain, memory_kib)
        if abs(held_kib - memory_kib) >= 1024:
            done += (f"; the guest still holds {held_kib // 1024} MiB after {BALLOON_WAIT:.0f} s: its OS has no "
                     "balloon driver (or has not answered yet), so the running VM keeps what it has")
    return done


BALLOON_WAIT = 5.0  # seconds a guest's balloon driver gets to reach a new size before we say it has not


def _balloon_settled(domain: libvirt.virDomain, target_kib: int) -> int:
    """The memory the running guest holds (the balloon's actual size), once it reaches target_kib
    or BALLOON_WAIT has passed."""
    deadline = time.monotonic() + BALLOON_WAIT
    while True:
        held_kib = domain.info()[2]
        if abs(held_kib - target_kib) < 1024 or time.monotonic() >= deadline:
            return held_kib
        time.sleep(0.2)


def _check_new_maximum(maximum: int | None, amount: int, *, persistent: bool, unit: str, what: str) -> None:
    if maximum is None:
        return
    if not persistent:
        raise InvalidArgument(f"A new {what} only applies to the definition: choose 'persistent'.")
    if amount > maximum:
        raise InvalidArgument(f"{amount} {unit} is more than the new maximum of {maximum} {unit}.")


def _where(scope: int) -> str:
    return "running VM" if scope == LIVE else "VM's definition"


# ---------------------------------------------------------------------------------------------
# Boot order, title and description


@raises_typed
def set_boot_order(conn: libvirt.virConnect, domain: libvirt.virDomain, *, devices: list[str]) -> str:
    """Rewrite <os><boot dev=.../> in the definition. Per-device boot orders are removed, as libvirt
    refuses a definition that has both."""
    if not domain.isPersistent():
        raise OperationInvalid("The VM is transient: it has no definition to change.")
    document = Domain.from_libvirt(_secure_inactive_xml(domain))
    for device in [*document.disks, *document.interfaces]:
        device.boot_order = None
    document.boot_devices = devices
    conn.defineXML(document.to_xml())
    return f"Boot order set to {', '.join(devices)} (from the next start)"


@raises_typed
def set_metadata(domain: libvirt.virDomain, *, title: str, description: str, live: bool, persistent: bool) -> str:
    """Set (or, when empty, remove) the title and the description."""
    flags = affect_flags(domain, live=live, persistent=persistent)
    domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_TITLE, title or None, None, None, flags)
    domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, description or None, None, None, flags)
    return f"Title and description saved, {scope_words(flags)}"


@raises_typed
def set_tags(domain: libvirt.virDomain, *, tags: list[str]) -> str:
    """Replace vmsite's tags in the domain's <metadata> (no tags: the element goes), in its
    definition and, while it runs, in the running VM, so both read the same."""
    flags = affect_flags(domain, live=True, persistent=bool(domain.isPersistent()))
    if tags:
        element = TagList.new()
        element.names = tags
        domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, element.to_xml(), TAGS_PREFIX, TAGS_NS, flags)
        return f"Tags set: {', '.join(tags)}"
    domain.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, TAGS_NS, flags)
    return "Tags removed"


# ---------------------------------------------------------------------------------------------
# XML


@raises_typed
def read_xml(domain: libvirt.virDomain) -> tuple[str, str]:
    """(inactive, live) XML, each empty when it does not exist; without passwords (no XML_SECURE)."""
    inactive = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) if domain.isPersistent() else ""
    live = domain.XMLDesc(0) if domain.isActive() else ""
    return inactive, live


@raises_typed
def pool_paths(conn: libvirt.virConnect) -> dict[str, str]:
    """Every storage pool of the host by name, with its target path ('' for pools without one)."""
    paths = {}
    for pool in conn.listAllStoragePools(0):
        paths[pool.name()] = (PoolXML.from_libvirt(pool.XMLDesc(0)).target_path or "").strip()
    return paths


@raises_typed
def host_context(conn: libvirt.virConnect, domain: libvirt.virDomain, *, emulator: str | None) -> HostContext:
    """What the allowlist compares a VM's edited XML with: the host's pools, the VM's own volumes and
    NVRAM file, and the volumes the host's other VMs use (both definitions of each)."""
    pools = pool_paths(conn)
    own = parse_trusted(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    used_elsewhere: dict[str, bool] = {}
    for description in other_domain_descriptions(conn, except_uuid=domain.UUIDString()):
        for path, writes in volume_paths(parse_trusted(description), pools).items():
            used_elsewhere[path] = used_elsewhere.get(path, False) or writes
    return HostContext(uuid=domain.UUIDString(), pools=pools, emulator=emulator, name=domain.name(),
                       nvram=nvram_path(own), own_paths=frozenset(volume_paths(own, pools)),
                       used_elsewhere=used_elsewhere)


@raises_typed
def define_xml(conn: libvirt.virConnect, domain: libvirt.virDomain, *, xml: str, emulator: str | None) -> str:
    """Define user-edited XML for this VM, once the allowlist accepts it against the host as it is now."""
    document = Domain(parse_untrusted(xml))
    try:
        require_allowed(document.element, host_context(conn, domain, emulator=emulator))
    except PolicyViolation as exc:
        raise InvalidArgument(f"Refused, nothing was defined: {exc}") from None
    require_free_macs(conn, [nic.mac for nic in document.interfaces if nic.mac], except_uuid=domain.UUIDString())
    _keep_passwords(document, Domain.from_libvirt(_secure_inactive_xml(domain)))
    conn.defineXML(document.to_xml())
    if domain.isActive():
        return "Defined; the running VM uses the new definition from its next start"
    return "Defined"


def _secure_inactive_xml(domain: libvirt.virDomain) -> str:
    """The definition with its console passwords, for a read-modify-define inside the worker only."""
    return domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)


def _keep_passwords(document: Domain, current: Domain) -> None:
    """The XML users see has no console passwords; a console of the same type keeps its password."""
    protected = {graphics.type: graphics for graphics in current.graphics if graphics.has_password}
    for graphics in document.graphics:
        if not graphics.has_password and graphics.type in protected:
            graphics.copy_password_from(protected[graphics.type])
