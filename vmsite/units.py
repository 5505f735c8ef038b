"""Sizes shown to people, in binary units (KiB, MiB, GiB, TiB: powers of 1024) on every page.

`static/vmsite/units.js` does the same in the browser (graphs, uploads); both round alike, and
tests/vmsite/test_units.py holds them to the same answers. Django's `filesizeformat` is not used:
it divides by 1024 but writes "GB"."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
FACTORS = {unit: 1024**power for power, unit in enumerate(UNITS)}

register = template.Library()


def binary_size(value: int | float | None, unit: str = "B", *, decimals: int | None = None) -> str:
    """`value` (in `unit`, bytes by default) as a short text: 512 B, 1.5 GiB, 120 GiB. One decimal
    below 10 of a unit, none above, unless `decimals` says (messages that compare two sizes
    give two); an empty value is an empty text."""
    if value is None or value == "":
        return ""
    amount = float(value) * FACTORS[unit] + 0.0  # no "-0 B"
    index = 0
    while abs(amount) >= 1024 and index < len(UNITS) - 1:
        amount /= 1024
        index += 1
    if decimals is None or not index:
        decimals = 1 if index and abs(amount) < 10 else 0
    # Half up on the float's exact value, as JavaScript's toFixed does (Python's format rounds half even).
    shown = Decimal(amount).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{shown} {UNITS[index]}"


@register.filter(name="binary_size")
def binary_size_filter(value, unit: str = "B") -> str:
    """{{ pool.capacity|binary_size }}, {{ host.memory_kib|binary_size:"KiB" }}."""
    try:
        return binary_size(value, unit)
    except (TypeError, ValueError, KeyError):
        return ""
