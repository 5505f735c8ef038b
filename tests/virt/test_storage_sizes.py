"""Sizes libvirt reports as unsigned 64-bit numbers go into signed 64-bit columns: a wrapped-around
one (seen while a test filled a small pool) reads as 0 instead of failing the whole reconcile."""
import pytest

from virt.storage import MAX_SIZE, sane_size


@pytest.mark.parametrize(("reported", "kept"), [
    (0, 0), (16 * 2**20, 16 * 2**20), (MAX_SIZE, MAX_SIZE), (2**64 - 1, 0), (2**63, 0), (None, 0), (-1, 0),
])
def test_a_size_that_no_column_can_hold_reads_as_zero(reported, kept):
    assert sane_size(reported) == kept
