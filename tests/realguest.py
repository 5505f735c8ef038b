"""The suite's tiny real guest OS (TESTING.md "A real guest OS"), and a shell on its serial console.

The guest is built by scripts/test_guest/build.py from Debian packages into a cache outside the
repo. It boots Debian's kernel directly and gives a root shell on ttyS0, which `GuestShell`
drives through libvirt's console stream (virt.consoles.SerialConsole, the path vmsite's serial
console uses), so it works on any host vmsite can reach, harness hosts included.

Network rule: its NIC gets a static address from the kernel command line, in TEST-NET-1
(192.0.2.0/24, for documentation, never routed), and IPv6 is off: the guest sends nothing.
"""
from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from virt.consoles import SerialConsole
from virt.errors import VirtError
from virt.eventloop import ensure_event_loop
from virt.xml import Domain

REPO = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = REPO / "scripts" / "test_guest" / "build.py"
AGENT_CHANNEL = "org.qemu.guest_agent.0"
BOOT_TIMEOUT = float(os.environ.get("VMSITE_TEST_GUEST_BOOT_TIMEOUT", "180"))  # TCG on a busy machine
_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
_CONTINUATION_PROMPT = re.compile(rb"(?:^|\n)> ")  # ash's PS2: a quote or a command still open


@dataclass(frozen=True)
class GuestImage:
    folder: Path
    virt_type: str  # kvm where KVM boots the guest on this machine, else qemu (TCG)

    @property
    def kernel(self) -> str:
        return str(self.folder / "vmlinux")  # the ELF kernel: PVH boot, see scripts/test_guest/build.py

    @property
    def initrd(self) -> str:
        return str(self.folder / "initrd.gz")


@functools.cache
def guest_image() -> GuestImage:
    """The built guest (built now when missing: a no-op when `scripts/setup.sh test` did it)."""
    result = subprocess.run([sys.executable, str(BUILD_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"building the test guest failed:\n{result.stdout}{result.stderr}")
    folder = Path(result.stdout.strip().splitlines()[-1])
    return GuestImage(folder=folder, virt_type=guest_virt_type(folder))


def guest_virt_type(folder: Path) -> str:
    """VMSITE_TEST_GUEST_VIRT_TYPE when set; else what the build's KVM probe found; else qemu."""
    chosen = os.environ.get("VMSITE_TEST_GUEST_VIRT_TYPE")
    if chosen:
        return chosen
    try:
        probe = json.loads((folder.parent / f"kvm-probe-{folder.name}.json").read_text())
    except (OSError, ValueError):
        return "qemu"
    return "kvm" if probe.get("kvm_boots") else "qemu"


@dataclass(frozen=True)
class GuestNic:
    network: str  # a libvirt network on the guest's host
    mac: str
    address: str | None = None  # ADDR/PREFIX given on the kernel command line (first NIC only)


def real_guest_xml(name: str, image: GuestImage, *, memory_mib: int = 192, max_memory_mib: int | None = None,
                   vcpus: int = 1, max_vcpus: int = 2, nics: tuple[GuestNic, ...] = (),
                   vnc_listen: str = "127.0.0.1") -> str:
    """The real guest's domain XML, through vmsite's XML object model."""
    domain = Domain.new()
    domain.type = image.virt_type
    domain.name = name
    domain.memory = (max_memory_mib or memory_mib) * 1024
    domain.current_memory = memory_mib * 1024
    domain.max_vcpus = max_vcpus
    domain.current_vcpus = vcpus
    domain.os_type = "hvm"
    domain.arch = "x86_64"
    domain.machine = "pc"  # i440fx: ACPI PCI hot-plug of disks and NICs with no extra controllers
    domain.kernel = image.kernel
    domain.initrd = image.initrd
    # Quiet, no IPv6 (no autoconfiguration traffic), and no boot-time work a test guest can skip.
    arguments = ["console=ttyS0", "quiet", "ipv6.disable=1", "mitigations=off", "cryptomgr.notests",
                 "no_timer_check", "i8042.noaux"]
    if nics and nics[0].address:
        arguments.append(f"guest_ip={nics[0].address}")
    domain.cmdline = " ".join(arguments)
    domain.acpi = True  # the power button, and hot-plug
    domain.apic = True
    for spec in nics:
        nic = domain.interfaces.add()
        nic.type = "network"
        nic.mac = spec.mac
        nic.source_network = spec.network
        nic.model = "virtio"
        nic.rom_enabled = False  # the network rule: no network boot ROM
    serial = domain.serials.add()
    serial.type = "pty"
    serial.target_port = 0
    console = domain.consoles.add()
    console.type = "pty"
    console.target_type = "serial"
    console.target_port = 0
    channel = domain.channels.add()
    channel.type = "unix"
    channel.target_type = "virtio"
    channel.target_name = AGENT_CHANNEL
    graphics = domain.graphics.add()
    graphics.type = "vnc"
    graphics.autoport = True
    graphics.listen_address = vnc_listen
    domain.memballoon_model = "virtio"
    return domain.to_xml()


class GuestCommandFailed(AssertionError):
    pass


class GuestShell:
    """The guest's root shell on its serial console: run a command, get its output.

    Each command is framed by markers made of a fresh token; the markers are typed split in two
    (':''B<token>') so the terminal's echo of the typed line never looks like the output's."""

    def __init__(self, uri: str, uuid_string: str) -> None:
        self.uri = uri
        self.uuid = uuid_string
        self._console: SerialConsole | None = None
        self._conn: libvirt.virConnect | None = None
        self._buffer = bytearray()
        self._changed = threading.Condition()

    def _on_data(self, data: bytes) -> None:
        with self._changed:
            self._buffer.extend(data)
            self._changed.notify_all()

    def _on_closed(self, _reason: str) -> None:
        with self._changed:
            self._console = None
            self._changed.notify_all()

    def _ensure_open(self) -> SerialConsole:
        if self._console is None:
            self.close()  # the connection of a console that closed on its own
            ensure_event_loop()  # before the connection opens: the stream's callbacks ride on it
            self._conn = libvirt.open(self.uri)
            self._console = SerialConsole(self._conn, self.uuid, on_data=self._on_data,
                                          on_closed=self._on_closed)
        return self._console

    def reconnect(self, uri: str) -> None:
        """Follow the guest to another host (after a migration)."""
        self.close()
        self.uri = uri

    def close(self) -> None:
        console, self._console = self._console, None
        if console is not None:
            console.close()
        if self._conn is not None:
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
            self._conn = None

    def _wait_for(self, pattern: re.Pattern[bytes], timeout: float, *,
                  resend: Callable[[], bytes] | None = None, resend_every: float = 2.0) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        next_send = time.monotonic()
        while True:
            if resend is not None and time.monotonic() >= next_send:
                self._send(resend())
                next_send = time.monotonic() + resend_every
            with self._changed:
                match = pattern.search(bytes(self._buffer))
                if match:
                    del self._buffer[:match.end()]
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    tail = _ESCAPES.sub(b"", bytes(self._buffer[-2000:])).decode(errors="replace")
                    raise TimeoutError(f"the guest's shell did not answer within {timeout:.0f} s; "
                                       f"its console's last output:\n{tail}")
                self._changed.wait(min(remaining, 0.2, max(0.01, next_send - time.monotonic())))

    def type(self, text: str) -> None:
        """Type text into the shell as it is, with no waiting for an answer."""
        self._send(text.encode())

    def _send(self, data: bytes) -> None:
        try:
            self._ensure_open().send(data)
        except (libvirt.libvirtError, VirtError):  # taken over, or the VM restarting: open it anew
            self.close()
            raise

    def wait_ready(self, timeout: float = BOOT_TIMEOUT) -> float:
        """Wait until the shell answers; returns the seconds it took. A line typed while the guest
        booted can reach the shell cut short, inside an open quote, and every probe after it would
        only add to that quoted text: once the shell shows its continuation prompt, a probe starts
        with a ^C. Only then: a ^C sent while the guest still boots interrupts its set-up (its shell
        never came up in one whole run)."""
        started = time.monotonic()
        token = uuid.uuid4().hex[:10]
        deadline = started + timeout
        probe = f"echo ':''R{token}'\n".encode()

        def next_probe() -> bytes:
            with self._changed:
                stuck = _CONTINUATION_PROMPT.search(bytes(self._buffer)) is not None
            return b"\x03" + probe if stuck else probe

        while True:
            try:
                self._wait_for(re.compile(rb":R" + token.encode()), max(0.1, deadline - time.monotonic()),
                               resend=next_probe)
                return time.monotonic() - started
            except (libvirt.libvirtError, VirtError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)  # the VM's console is not there yet

    def run(self, command: str, *, timeout: float = 60, check: bool = True) -> str:
        """Run a shell command in the guest; its output (stdout and stderr) with \\n line ends."""
        token = uuid.uuid4().hex[:10]
        with self._changed:
            self._buffer.clear()
        self._send(f"echo ':''B{token}'; {command} 2>&1; echo \":\"\"E{token} $?\"\n".encode())
        self._wait_for(re.compile(rb":B" + token.encode() + rb"\r?\n"), timeout)
        end = self._wait_for(re.compile(rb"(.*?):E" + token.encode() + rb" (\d+)", re.DOTALL), timeout)
        output = _ESCAPES.sub(b"", end.group(1)).decode(errors="replace").replace("\r\n", "\n").replace("\r", "")
        status = int(end.group(2))
        if check and status != 0:
            raise GuestCommandFailed(f"`{command}` exited with {status} in the guest:\n{output}")
        return output


@dataclass
class RealGuest:
    uri: str
    domain: libvirt.virDomain
    shell: GuestShell
    nics: tuple[GuestNic, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.domain.name()

    @property
    def uuid(self) -> str:
        return self.domain.UUIDString()

    def start(self) -> float:
        """Start the guest and wait for its shell; the seconds from start to prompt."""
        started = time.monotonic()
        self.domain.create()
        self.shell.wait_ready()
        return time.monotonic() - started

    def ensure_running(self) -> None:
        """Running with its shell answering: started again if a test powered it off."""
        if not self.domain.isActive():
            self.shell.close()
            self.start()

    def follow_to(self, uri: str) -> None:
        """After a migration: the guest and its console are on the host at `uri` now."""
        self.uri = uri
        self.domain = libvirt.open(uri).lookupByUUIDString(self.uuid)
        self.shell.reconnect(uri)
