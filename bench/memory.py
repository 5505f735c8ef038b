"""What hundreds of guests cost this machine's memory, and the guard rails for benches that start them.

RSS counts every shared library page once per process, so it overstates a qemu process by about
20 MiB; what a guest really costs is its private pages (USS) plus its share of the shared ones
(PSS), read from /proc/<pid>/smaps_rollup as smem does. The machine's MemAvailable, read before
and after, adds what no process map shows (the kernel's page tables, KVM's structures).
"""
from __future__ import annotations

import _thread
import ctypes
import signal
import statistics
import threading
from pathlib import Path
from typing import Any

PR_SET_THP_DISABLE = 41  # <linux/prctl.h>
KIB_PER_MIB = 1024


class MemoryLow(RuntimeError):
    """The machine's memory would drop, or dropped, below what other work on it needs."""


def smaps_rollup(pid: int) -> dict[str, int]:
    """A process's memory in KiB: Rss, Pss, and Uss (its private pages, clean and dirty)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    fields["Uss"] = fields["Private_Clean"] + fields["Private_Dirty"]
    return fields


# the kernel's own memory that grows with each qemu process: page tables (KVM's too), thread
# stacks, unreclaimable slab (KVM's structures, file objects)
KERNEL_FIELDS = ("PageTables", "SecPageTables", "KernelStack", "SUnreclaim")


def meminfo_kib() -> dict[str, int]:
    with open("/proc/meminfo") as meminfo:
        return {line.split(":")[0]: int(line.split()[1]) for line in meminfo}


def mem_available_mib() -> float:
    return meminfo_kib()["MemAvailable"] / KIB_PER_MIB


def kernel_kib() -> int:
    fields = meminfo_kib()
    return sum(fields.get(name, 0) for name in KERNEL_FIELDS)


def disable_transparent_hugepages() -> None:
    """No transparent huge pages for this process and every process it starts from now on.

    The flag is inherited through fork and kept through exec, so the harness hosts' libvirtd and
    their qemu processes get it, and nothing else on the machine does. QEMU asks for huge pages on
    guest RAM (madvise), so a guest whose BIOS touches a few KiB here and there holds whole 2 MiB
    pages: 16 MiB of private memory per guest with them, 10.7 without (bench/README.md)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_THP_DISABLE)")


class MemoryGuard:
    """Watches the machine's MemAvailable while a bench starts and runs guests.

    `guest_started` refuses to start more guests when, at the cost per guest measured so far on
    the hosts' own processes, the rest would leave less than `reserve_mib`; a watcher thread
    interrupts the bench (which then removes every guest) when MemAvailable falls below
    `floor_mib` at any time."""

    CHECK_EVERY = 20  # guests

    def __init__(self, *, hosts: list, floor_mib: float, reserve_mib: float, total_guests: int,
                 least_cost_mib: float) -> None:
        self.hosts = hosts
        self.floor_mib, self.reserve_mib, self.total_guests = floor_mib, reserve_mib, total_guests
        self.least_cost_mib = least_cost_mib
        self.before_guests = self.lowest = mem_available_mib()
        self.kernel_before_guests = kernel_kib()
        self.started = 0
        self.tripped = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="memory-guard", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            available = mem_available_mib()
            self.lowest = min(self.lowest, available)
            if available < self.floor_mib and not self.tripped.is_set():
                self.tripped.set()
                _thread.interrupt_main(signal.SIGINT)

    def guest_started(self) -> None:
        """Count one more guest; raise MemoryLow if the rest would not fit."""
        with self._lock:
            self.started += 1
            self._check(self.started)

    def _check(self, started: int) -> None:
        if self.tripped.is_set():
            raise MemoryLow(f"MemAvailable fell below {self.floor_mib:.0f} MiB")
        if started % self.CHECK_EVERY:
            return
        available = mem_available_mib()
        cost = max(self.least_cost_mib, self.cost_per_guest_mib())
        projected = available - cost * (self.total_guests - started)
        if projected < self.reserve_mib:
            raise MemoryLow(f"{started} guests started, {available:.0f} MiB available: the other "
                            f"{self.total_guests - started} would leave about {projected:.0f} MiB, "
                            f"under the {self.reserve_mib:.0f} MiB to keep")

    def cost_per_guest_mib(self) -> float:
        """The guests' qemu processes (PSS) and the kernel's growth, per guest started. Not the drop
        of MemAvailable: other work on the machine moves that by gigabytes in a minute."""
        memory = harness_memory(self.hosts)
        kernel_mib = (kernel_kib() - self.kernel_before_guests) / KIB_PER_MIB
        return memory["guest_pss_mib"] + max(0.0, kernel_mib) / max(1, self.started)

    def drop_per_guest_mib(self, available: float) -> float:
        return max(0.0, (self.before_guests - available) / max(1, self.started))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def figure(self) -> dict[str, Any]:
        available = mem_available_mib()
        return {"mem_available_before_guests_mib": round(self.before_guests), "mem_available_mib": round(available),
                "mem_available_lowest_mib": round(self.lowest),
                "mem_available_drop_per_guest_mib": round(self.drop_per_guest_mib(available), 1),
                "kernel_per_guest_mib": round((kernel_kib() - self.kernel_before_guests) / max(1, self.started)
                                              / KIB_PER_MIB, 2)}


def harness_memory(hosts: list) -> dict[str, Any]:
    """Per qemu process (median RSS, PSS, USS) and per harness host (its other processes: libvirtd,
    virtlogd, sshd, the namespace holder), and the PSS of them all together, in MiB."""
    guests: list[dict[str, int]] = []
    per_host: list[int] = []
    for host in hosts:
        daemons = 0
        for pid in host.running_pids():
            try:
                is_qemu = b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes()
                rollup = smaps_rollup(pid)
            except OSError:
                continue  # exited meanwhile
            if is_qemu:
                guests.append(rollup)
            else:
                daemons += rollup["Pss"]
        per_host.append(daemons)

    def median_mib(field: str) -> float:
        return round(statistics.median(g[field] for g in guests) / KIB_PER_MIB, 1) if guests else 0.0

    total = sum(g["Pss"] for g in guests) + sum(per_host)
    return {"qemu_processes": len(guests), "guest_rss_mib": median_mib("Rss"), "guest_pss_mib": median_mib("Pss"),
            "guest_uss_mib": median_mib("Uss"),
            "host_daemons_pss_mib": round(statistics.median(per_host) / KIB_PER_MIB, 1) if per_host else 0.0,
            "all_pss_gib": round(total / KIB_PER_MIB / 1024, 2)}
