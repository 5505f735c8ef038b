"""Lifecycle of one domain. Each action is idempotent where that makes sense: starting a
running domain, or forcing off one that is off, succeeds and says so."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import libvirt

from virt.errors import NotFound, OperationInvalid, lookup_or_none, raises_typed, translated
from virt.xml.domain import GUEST_AGENT_CHANNEL, summarize_domain
from virt.xml.domain import Domain as DomainXML

Progress = Callable[[int, str], None]

RUNNING_STATES = {libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_PAUSED,
                  libvirt.VIR_DOMAIN_SHUTDOWN, libvirt.VIR_DOMAIN_PMSUSPENDED, libvirt.VIR_DOMAIN_CRASHED}


class ShutdownTimeout(OperationInvalid):
    """The guest did not power off after an ACPI request: it may have no OS, or ignore ACPI."""


@dataclass(frozen=True)
class LiveDomain:
    """A domain as libvirt reports it now: everything the database keeps of it (the stored state
    and its labels are `domains.choices.DomainState`)."""
    uuid: str
    name: str
    state: int
    reason: int
    vcpus: int
    memory_kib: int
    persistent: bool
    autostart: bool
    has_managed_save: bool
    details: dict  # the XML summary (disks, NICs, graphics...), never a password
    tags: list[str] = field(default_factory=list)  # vmsite's tags, from its <metadata>


@raises_typed
def lookup(conn: libvirt.virConnect, uuid: str) -> libvirt.virDomain:
    domain = lookup_or_none(conn.lookupByUUIDString, uuid)
    if domain is None:
        raise NotFound(f"The VM {uuid} no longer exists on this host.", code=libvirt.VIR_ERR_NO_DOMAIN)
    return domain


@raises_typed
def read_state(domain: libvirt.virDomain) -> LiveDomain:
    """Everything the database keeps of one domain, refetched after a change (five round trips)."""
    state, reason = domain.state()
    xml = domain.XMLDesc(0)
    description = summarize_domain(xml)
    persistent = bool(domain.isPersistent())
    return LiveDomain(
        uuid=domain.UUIDString(), name=domain.name(), state=state, reason=reason, vcpus=description.vcpus,
        memory_kib=description.current_memory_kib or description.memory_kib, persistent=persistent,
        autostart=bool(domain.autostart()) if persistent else False,
        has_managed_save=bool(domain.hasManagedSaveImage(0)) if persistent else False,
        details=_with_agent_addresses(_jsonable(description), domain, xml),
        tags=list(description.tags),
    )


_AGENT_UNAVAILABLE = {libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_AGENT_UNSYNCED,
                      libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
                      libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED}


@raises_typed
def agent_addresses(domain: libvirt.virDomain, xml: str) -> dict[str, list[str]] | None:
    """The guest's addresses by MAC as its guest agent reports them; None without a connected agent.
    Asked only when the live XML says the agent is connected, so a VM without one costs nothing."""
    if GUEST_AGENT_CHANNEL not in xml or not DomainXML.from_libvirt(xml).guest_agent_connected:
        return None
    interfaces = lookup_or_none(domain.interfaceAddresses, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0,
                                missing=_AGENT_UNAVAILABLE)
    if interfaces is None:
        return None
    return {(interface.get("hwaddr") or "").lower(): [f"{address['addr']}/{address['prefix']}"
                                                       for address in interface.get("addrs") or []]
            for interface in interfaces.values() if interface.get("hwaddr")}


def _with_agent_addresses(details: dict, domain: libvirt.virDomain, xml: str) -> dict:
    addresses = agent_addresses(domain, xml)
    if addresses is not None:
        for nic in details.get("interfaces", []):
            nic["agent_addresses"] = addresses.get((nic.get("mac") or "").lower(), [])
    return details


@raises_typed
def describe_domain(conn: libvirt.virConnect, uuid: str) -> tuple[dict, bool]:
    """The XML summary of one domain as plain data, and whether vmsite marked it a template."""
    xml = lookup_or_none(lambda: lookup(conn, uuid).XMLDesc(0), missing=(libvirt.VIR_ERR_NO_DOMAIN,))
    if xml is None:  # also when it is undefined between the lookup and the read
        raise NotFound(f"The VM {uuid} no longer exists on this host.", code=libvirt.VIR_ERR_NO_DOMAIN)
    document = DomainXML.from_libvirt(xml)
    return _jsonable(document.summary()), document.is_template


@raises_typed
def refetch(conn: libvirt.virConnect, uuid: str) -> LiveDomain | None:
    """The domain's state now, or None when it is gone from the host."""
    # None also when it is gone between two of the calls
    return lookup_or_none(lambda: read_state(lookup(conn, uuid)), missing=(libvirt.VIR_ERR_NO_DOMAIN,))


@raises_typed
def refetch_run_state(conn: libvirt.virConnect, uuid: str) -> tuple[int, int] | None:
    """Only the domain's run state and its reason (two round trips instead of read_state's six), or
    None when it is gone: all that a pause or a resume changes."""
    found = lookup_or_none(lambda: lookup(conn, uuid).state(), missing=(libvirt.VIR_ERR_NO_DOMAIN,))
    if found is None:
        return None
    state, reason = found
    return state, reason


@raises_typed
def is_persistent(domain: libvirt.virDomain) -> bool:
    with translated():
        return bool(domain.isPersistent())


@raises_typed
def define(conn: libvirt.virConnect, xml: str, *, autostart: bool) -> libvirt.virDomain:
    """Define a new domain from XML built by virt.builder, optionally starting with its host."""
    with translated():
        domain = conn.defineXML(xml)
        if autostart:
            domain.setAutostart(1)
    return domain


def _jsonable(description) -> dict:
    data = dataclasses.asdict(description)
    data["uuid"] = str(data["uuid"]) if data.get("uuid") else None
    return data


@raises_typed
def is_running(domain: libvirt.virDomain) -> bool:
    return domain.state()[0] in RUNNING_STATES


@raises_typed
def start(domain: libvirt.virDomain, *, paused: bool = False) -> str:
    if is_running(domain):
        return "Already running"
    restoring = domain.hasManagedSaveImage(0) if domain.isPersistent() else False
    domain.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED if paused else 0)
    if restoring:
        return "Restored from its saved state" + (", paused" if paused else "")
    return "Started paused" if paused else "Started"


@raises_typed
def shutdown(domain: libvirt.virDomain, *, timeout: float, progress: Progress) -> str:
    """Ask the guest to power off (ACPI) and wait for it, up to `timeout` seconds."""
    if not is_running(domain):
        return "Already shut off"
    domain.shutdown()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(domain):
            return "Shut down"
        elapsed = timeout - (deadline - time.monotonic())
        progress(min(95, 10 + int(85 * elapsed / timeout)), f"Waiting for the guest to power off ({elapsed:.0f} s)")
        time.sleep(0.5)
    raise ShutdownTimeout(
        f"The guest did not shut down within {timeout:.0f} s: it may have no operating system running or "
        "ignore ACPI. It is still running; use Force off to stop it at once."
    )


@raises_typed
def force_off(domain: libvirt.virDomain) -> str:
    if not is_running(domain):
        return "Already off"
    domain.destroy()
    return "Forced off"


@raises_typed
def reboot(domain: libvirt.virDomain) -> str:
    _require_running(domain, "reboot")
    domain.reboot(0)
    return "Reboot requested (ACPI)"


@raises_typed
def reset(domain: libvirt.virDomain) -> str:
    _require_running(domain, "reset")
    domain.reset(0)
    return "Reset"


@raises_typed
def pause(domain: libvirt.virDomain) -> str:
    state = domain.state()[0]
    if state == libvirt.VIR_DOMAIN_PAUSED:
        return "Already paused"
    _require_running(domain, "pause")
    domain.suspend()
    return "Paused"


@raises_typed
def resume(domain: libvirt.virDomain) -> str:
    if domain.state()[0] != libvirt.VIR_DOMAIN_PAUSED:
        _require_running(domain, "resume")
        return "Already running"
    domain.resume()
    return "Resumed"


@raises_typed
def managed_save(domain: libvirt.virDomain) -> str:
    _require_running(domain, "save")
    if not domain.isPersistent():
        raise OperationInvalid("Only a persistent (defined) VM can be saved and restored by libvirt.")
    domain.managedSave(0)
    return "Saved; starting the VM restores it"


@raises_typed
def remove_managed_save(domain: libvirt.virDomain) -> str:
    if not domain.hasManagedSaveImage(0):
        return "No saved state"
    domain.managedSaveRemove(0)
    return "Saved state discarded"


@raises_typed
def set_autostart(domain: libvirt.virDomain, *, enabled: bool) -> str:
    if not domain.isPersistent():
        raise OperationInvalid("A transient VM cannot start with its host: define it first.")
    domain.setAutostart(1 if enabled else 0)
    return "Autostart on" if enabled else "Autostart off"


@raises_typed
def rename(domain: libvirt.virDomain, *, new_name: str) -> str:
    if is_running(domain):
        raise OperationInvalid("Shut the VM off before renaming it.")
    if domain.name() == new_name:
        return "Name unchanged"
    domain.rename(new_name, 0)
    return f"Renamed to {new_name}"


@dataclass(frozen=True)
class DeletePlan:
    volumes: list[str]  # disk images (pool volumes) that go with the VM
    not_in_a_pool: list[str]  # disk sources that are not pool volumes: always kept
    not_its_own: list[str]  # pool volumes the VM does not own, or another VM uses: kept
    nvram: bool
    snapshots: int
    managed_save: bool


VolumeFilter = Callable[[libvirt.virStorageVol], bool]


@raises_typed
def delete_plan(conn: libvirt.virConnect, domain: libvirt.virDomain, *, with_volumes: bool,
                deletable: VolumeFilter) -> DeletePlan:
    """What deleting would remove, found before anything is removed. deletable: whether a pool
    volume of the VM's disks may go with it (the caller's rule: its own, used by no other VM)."""
    persistent = domain.isPersistent()
    sources = [disk.source for disk in summarize_domain(domain.XMLDesc(0)).disks
               if disk.device == "disk" and disk.source] if with_volumes else []
    found = {source: find_disk_volume(conn, source) for source in dict.fromkeys(sources)}
    in_pools = {source: volume for source, volume in found.items() if volume is not None}
    allowed = {source: deletable(volume) for source, volume in in_pools.items()}
    return DeletePlan(
        volumes=[source for source in in_pools if allowed[source]],
        not_in_a_pool=[source for source, volume in found.items() if volume is None],
        not_its_own=[source for source in in_pools if not allowed[source]],
        nvram=persistent and "<nvram" in domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
        snapshots=domain.snapshotNum(0) if persistent else 0,
        managed_save=bool(domain.hasManagedSaveImage(0)) if persistent else False,
    )


@raises_typed
def delete(conn: libvirt.virConnect, domain: libvirt.virDomain, *, with_volumes: bool, progress: Progress,
           deletable: VolumeFilter) -> str:
    """Undefine the VM with its saved state, NVRAM and snapshot metadata; optionally its disk images
    (those `deletable` allows)."""
    plan = delete_plan(conn, domain, with_volumes=with_volumes, deletable=deletable)
    has_disks = any(disk.device == "disk" and disk.source for disk in summarize_domain(domain.XMLDesc(0)).disks)
    if is_running(domain):
        progress(20, "Forcing the VM off")
        domain.destroy()
    if domain.isPersistent():
        domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                             | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
    for index, source in enumerate(plan.volumes):
        progress(50 + 40 * index // len(plan.volumes), f"Deleting {source}")
        volume = find_disk_volume(conn, source)
        if volume is not None:
            volume.delete(0)
    parts = ["Deleted"]
    if plan.volumes:
        parts.append(f"with {', '.join(plan.volumes)}")
    if plan.not_its_own:
        parts.append(f"(kept {', '.join(plan.not_its_own)}: not this VM's own volumes, or in use by another VM)")
    if plan.not_in_a_pool:
        parts.append(f"(kept {', '.join(plan.not_in_a_pool)}: not in a storage pool)")
    elif not with_volumes and has_disks:
        parts.append("(its disk images were kept)")
    return " ".join(parts)


@raises_typed
def find_disk_volume(conn: libvirt.virConnect, source: str) -> libvirt.virStorageVol | None:
    if source.startswith("/"):
        return lookup_or_none(conn.storageVolLookupByPath, source)
    pool_name, _, volume_name = source.partition("/")
    pool = lookup_or_none(conn.storagePoolLookupByName, pool_name)
    return lookup_or_none(pool.storageVolLookupByName, volume_name) if pool is not None else None


def _require_running(domain: libvirt.virDomain, action: str) -> None:
    if not is_running(domain):
        raise OperationInvalid(f"The VM is not running, so it cannot {action}.")


@raises_typed
def domain_uuid(domain: libvirt.virDomain) -> str:
    return domain.UUIDString()
