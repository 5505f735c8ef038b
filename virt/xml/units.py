"""libvirt's memory units, turned into KiB (the unit libvirt itself reports)."""
from __future__ import annotations

_POWERS = "kmgtpe"
_BYTE_UNITS = {"b", "byte", "bytes"}


def to_kib(amount: int, unit: str | None = "KiB") -> int:
    """amount of unit in KiB, rounded up as libvirt does. Units as libvirt reads them:
    b/bytes; k, K, KiB (1024); KB (1000); and the same for M, G, T, P, E."""
    if amount < 0:
        raise ValueError(f"memory cannot be negative, got {amount}")
    return -(-amount * _unit_bytes(unit or "KiB") // 1024)


def _unit_bytes(unit: str) -> int:
    if unit.lower() in _BYTE_UNITS:
        return 1
    power = _POWERS.find(unit[:1].lower()) + 1
    base = {"": 1024, "iB": 1024, "B": 1000}.get(unit[1:])
    if power == 0 or base is None:
        raise ValueError(f"unknown memory unit {unit!r}")
    return base**power
