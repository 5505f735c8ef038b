"""Health checks of restore points: does a point boot?

The point's files are not copied: each backed-up disk gets a qcow2 overlay in the backup pool whose
backing file is the top of its chain (the guest reads exactly what a restore would copy; its writes
go to the overlay and never touch the backup). A temporary, transient VM is started from the saved
definition with no network (NICs, host devices and shared host folders left out, console character
devices only as pty), under a new name and UUID, and with AUTODESTROY, so that libvirt kills it if
the worker's connection dies. The check passes when the guest agent answers a guest-ping; it fails
when the VM stops or nothing answers in time. A VM with no agent channel passes when a login or shell
prompt appears on its serial console instead. Whatever happens, the VM and its overlays are gone
afterwards (when the worker itself is killed, libvirt destroys the VM, and the overlays are removed by
the clean-up the sweep queues: backups/handlers_scratch.py).
"""
from __future__ import annotations

import json
import re
import threading
import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass

import libvirt
import libvirt_qemu

from virt.backup import BACKUP_FORMAT, active_pool, point_disk_at, require_restorable, writable_disks
from virt.clone import make_distinct
from virt.consoles import SerialConsole
from virt.errors import VirtError, raises_typed, tolerating
from virt.storage import pool_volume_create
from virt.xml.domain import GUEST_AGENT_CHANNEL
from virt.xml.domain import Domain as DomainXML

Progress = Callable[[int, str], None]

NAME_PREFIX = "vmsite-healthcheck-"  # the temporary VM's name, and the start of its overlays' names
_PING = json.dumps({"execute": "guest-ping"})
_PING_TIMEOUT = 2  # seconds libvirt waits for one answer of the agent
# Without an agent: the end of the serial console's output is a login or shell prompt.
_PROMPT = re.compile(rb"(login: ?|[#$] ?)$")
_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
_TAIL = 4096
_PRESS_EVERY = 3.0  # seconds between Enter keys sent to bring up a prompt


@dataclass(frozen=True)
class HealthOutcome:
    passed: bool
    seconds: float  # from the start of the temporary VM to the agent's answer, or to giving up
    note: str  # what was seen, in words


def scratch_prefix(tag: str) -> str:
    """What the names of a check's temporary VM and overlays start with, for the check tagged `tag`
    (its operation): what virt.backup.remove_scratch removes after a worker died midway."""
    return f"{NAME_PREFIX}{tag}-"


@raises_typed
def health_check(conn: libvirt.virConnect, *, domain_xml: str, backup_pool: str, tops: dict[str, str],
                 timeout: float, progress: Progress, tag: str, untrusted: bool = False, emulator: str | None = None,
                 poll_interval: float = 0.5) -> HealthOutcome:
    """Boot the restore point whose saved definition is domain_xml and whose disks' chains end in
    tops (disk target -> volume name in backup_pool) in a temporary VM with no network, and wait up
    to `timeout` seconds for its guest agent (without an agent channel: for a prompt on its serial
    console). tag: names the temporary VM and its overlays (scratch_prefix). untrusted: the definition
    came from a manifest file (see virt.backup.restore_as_new_vm), so it must pass the allowlist for
    hand-edited XML first."""
    pool = active_pool(conn, backup_pool)
    name = f"{scratch_prefix(tag)}{uuid_module.uuid4().hex[:8]}"
    xml = DomainXML.from_xml(domain_xml) if untrusted else DomainXML.from_libvirt(domain_xml)
    make_distinct(xml, name)
    left_out = _isolated(xml)
    has_agent = any(channel.target_name == GUEST_AGENT_CHANNEL for channel in xml.channels)
    if not has_agent and not len(xml.serials) and not len(xml.consoles):
        return HealthOutcome(passed=False, seconds=0.0, note=(
            f"The VM's definition has neither a guest agent channel ({GUEST_AGENT_CHANNEL}) nor a serial console: "
            "there is nothing to wait for, so the point was not booted. Add the channel (and qemu-guest-agent in "
            "the guest) or a serial console to health-check it."))
    overlays: list[libvirt.virStorageVol] = []
    domain = None
    try:
        for disk in writable_disks(xml):
            if disk.target_dev not in tops:  # not backed up: the temporary VM goes without it
                disk.element.getparent().remove(disk.element)
                continue
            top = pool.storageVolLookupByName(tops[disk.target_dev])
            overlay = pool_volume_create(pool, name=f"{name}-{disk.target_dev}.qcow2", capacity=top.info()[1],
                                         allocation=None, fmt=BACKUP_FORMAT, backing=top)
            overlays.append(overlay)
            point_disk_at(disk, overlay.path())
        if untrusted:
            require_restorable(conn, xml, emulator)
        progress(20, f"Starting the temporary VM {name} (no network{left_out})")
        started = time.monotonic()
        domain = conn.createXML(xml.to_xml(), libvirt.VIR_DOMAIN_START_AUTODESTROY)
        if has_agent:
            return _wait_for_agent(domain, name, started, timeout, progress, poll_interval)
        return _wait_for_prompt(conn, domain, name, started, timeout, progress, poll_interval)
    finally:
        progress(90, f"Removing the temporary VM {name} and its {len(overlays)} overlay(s)")
        if domain is not None:
            with tolerating(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                domain.destroy()
        for overlay in overlays:
            with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
                overlay.delete(0)


def _isolated(xml: DomainXML) -> str:
    """Leave out what would reach the network or the host's files: NICs, host devices, shared
    folders, and character devices other than pty consoles (tcp, udp, unix sockets, files).
    Returns what went, as words to append ("" when nothing but the NICs)."""
    devices = xml.element.find("devices")
    gone = []
    for what, elements in (("NIC", list(xml.interfaces)), ("host device", list(xml.hostdevs)),
                           ("shared folder", list(xml.filesystems))):
        for element in elements:
            devices.remove(element.element)
        if elements and what != "NIC":
            gone.append(f"{len(elements)} {what}(s) left out")
    for element in [*xml.serials, *xml.consoles]:
        if element.type not in (None, "pty"):
            devices.remove(element.element)
            gone.append(f"a {element.type} console left out")
    for channel in xml.channels:
        if channel.target_name != GUEST_AGENT_CHANNEL:
            devices.remove(channel.element)
        elif channel.source_path:
            channel.source_path = None  # libvirt makes the socket for the new name; the original's is in use
    return f"; {', '.join(gone)}" if gone else ""


def _wait_for_agent(domain: libvirt.virDomain, name: str, started: float, timeout: float, progress: Progress,
                    poll_interval: float) -> HealthOutcome:
    last_error = "no answer"
    while (elapsed := time.monotonic() - started) < timeout:
        if not domain.isActive():
            state, reason = domain.state()
            return HealthOutcome(passed=False, seconds=elapsed, note=(
                f"The temporary VM stopped {elapsed:.1f} s after it started (state {state}, reason {reason}) before "
                "its guest agent answered."))
        try:
            libvirt_qemu.qemuAgentCommand(domain, _PING, _PING_TIMEOUT, 0)
        except libvirt.libvirtError as exc:  # not up yet: the channel is closed, or the agent not started
            last_error = exc.get_error_message() or str(exc)
        else:
            seconds = time.monotonic() - started
            return HealthOutcome(passed=True, seconds=seconds, note=(
                f"Booted in a temporary VM with no network: the guest agent answered {seconds:.1f} s after the start."))
        progress(20 + int(60 * elapsed / timeout), f"{name}: waiting for the guest agent ({elapsed:.0f} of "
                                                   f"{timeout:.0f} s)")
        time.sleep(poll_interval)
    return HealthOutcome(passed=False, seconds=time.monotonic() - started, note=(
        f"The guest agent did not answer within {timeout:.0f} s of the start (last: {last_error}). The disks may "
        "not boot, or the guest has no agent running."))


class _ConsoleTail:
    """The end of what the temporary VM wrote on its serial console (SerialConsole's callbacks run on
    libvirt's event loop thread: they only append under a lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = bytearray()
        self.closed = False

    def add(self, data: bytes) -> None:
        with self._lock:
            self._data.extend(data)
            del self._data[:-_TAIL]

    def close(self, _reason: str) -> None:
        self.closed = True

    def prompt(self) -> bool:
        with self._lock:
            return _PROMPT.search(_ESCAPES.sub(b"", bytes(self._data))) is not None


def _wait_for_prompt(conn: libvirt.virConnect, domain: libvirt.virDomain, name: str, started: float, timeout: float,
                     progress: Progress, poll_interval: float) -> HealthOutcome:
    """With no guest agent channel: pass when a login or shell prompt ends the serial console's
    output (Enter is pressed every few seconds to bring one up)."""
    tail, console, pressed = _ConsoleTail(), None, 0.0
    try:
        while (elapsed := time.monotonic() - started) < timeout:
            if not domain.isActive():
                return HealthOutcome(passed=False, seconds=elapsed, note=(
                    f"The temporary VM stopped {elapsed:.1f} s after it started, before a console prompt appeared."))
            if console is None or tail.closed:
                tail.closed = False
                try:
                    console = SerialConsole(conn, domain.UUIDString(), on_data=tail.add, on_closed=tail.close)
                except VirtError:
                    console = None  # not ready yet: try again
            if tail.prompt():
                seconds = time.monotonic() - started
                return HealthOutcome(passed=True, seconds=seconds, note=(
                    f"Booted in a temporary VM with no network: a console prompt appeared {seconds:.1f} s after the "
                    "start (the VM has no guest agent channel)."))
            if console is not None and time.monotonic() - pressed >= _PRESS_EVERY:
                console.send(b"\r")
                pressed = time.monotonic()
            progress(20 + int(60 * elapsed / timeout), f"{name}: waiting for a console prompt ({elapsed:.0f} of "
                                                       f"{timeout:.0f} s)")
            time.sleep(poll_interval)
    finally:
        if console is not None:
            console.close()
    return HealthOutcome(passed=False, seconds=time.monotonic() - started, note=(
        f"No console prompt appeared within {timeout:.0f} s of the start: the disks may not boot."))
