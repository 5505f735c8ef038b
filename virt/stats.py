"""Raw counters for the graphs: one bulk call for every running VM of a host, three for the host.

Counters only grow (CPU time, bytes, requests); the caller turns two readings into rates.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import libvirt

from virt.errors import translated
from virt.types import Connection

_STATS = (libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_VCPU
          | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK)


@dataclass(frozen=True)
class DomainCounters:
    uuid: str
    cpu_ns: int
    vcpus: int
    memory_kib: int
    disk_read_bytes: int
    disk_write_bytes: int
    disk_read_reqs: int
    disk_write_reqs: int
    net_rx_bytes: int
    net_tx_bytes: int


@dataclass(frozen=True)
class HostCounters:
    busy_ns: int
    total_ns: int
    memory_total_kib: int
    memory_used_kib: int


@dataclass(frozen=True)
class Reading:
    monotonic: float  # when it was read, for the rates
    host: HostCounters
    domains: dict[str, DomainCounters]


def read_counters(conn: Connection) -> Reading:
    with translated():
        records = conn.getAllDomainStats(_STATS, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING)
        host = _host_counters(conn)
    now = time.monotonic()
    return Reading(now, host, {dom.UUIDString(): _domain_counters(dom.UUIDString(), record)
                               for dom, record in records})


def _sum(record: dict, prefix: str, count_key: str, suffix: str) -> int:
    return sum(record.get(f"{prefix}.{index}.{suffix}", 0) for index in range(record.get(count_key, 0)))


def _domain_counters(uuid: str, record: dict) -> DomainCounters:
    # rss is what the VM costs the host; current is what the guest was given (no rss on some hosts)
    memory = record.get("balloon.rss") or record.get("balloon.current") or 0
    return DomainCounters(
        uuid=uuid, cpu_ns=record.get("cpu.time", 0), vcpus=max(1, record.get("vcpu.current", 1)),
        memory_kib=memory,
        disk_read_bytes=_sum(record, "block", "block.count", "rd.bytes"),
        disk_write_bytes=_sum(record, "block", "block.count", "wr.bytes"),
        disk_read_reqs=_sum(record, "block", "block.count", "rd.reqs"),
        disk_write_reqs=_sum(record, "block", "block.count", "wr.reqs"),
        net_rx_bytes=_sum(record, "net", "net.count", "rx.bytes"),
        net_tx_bytes=_sum(record, "net", "net.count", "tx.bytes"),
    )


def _host_counters(conn: Connection) -> HostCounters:
    cpu = conn.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS)
    idle = cpu.get("idle", 0) + cpu.get("iowait", 0)
    busy = cpu.get("kernel", 0) + cpu.get("user", 0)
    memory = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
    total = memory.get("total", 0)
    free = memory.get("free", 0) + memory.get("buffers", 0) + memory.get("cached", 0)
    return HostCounters(busy_ns=busy, total_ns=busy + idle, memory_total_kib=total, memory_used_kib=max(0, total - free))
