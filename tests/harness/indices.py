"""Which harness host indices (127.0.0.N) this test process may use.

A suite owns VMSITE_HARNESS_INDEX_COUNT indices from VMSITE_HARNESS_FIRST_INDEX on (defaults 20 and
120, so 20-139); under pytest-xdist each worker gets an equal, disjoint slice of them, so two
workers, or two suites given separate ranges, never start a host on the same address.
"""
from __future__ import annotations

import os
import threading

from tests.harness.libvirt_hosts import MAX_INDEX, MIN_INDEX, HarnessError


def worker_range() -> range:
    first = int(os.environ.get("VMSITE_HARNESS_FIRST_INDEX", "20"))
    count = int(os.environ.get("VMSITE_HARNESS_INDEX_COUNT", "120"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) if worker.startswith("gw") else 1
    number = int(worker[2:]) if worker.startswith("gw") else 0
    share = count // workers
    indices = range(first + number * share, first + (number + 1) * share)
    if not indices or indices.start < MIN_INDEX or indices.stop - 1 > MAX_INDEX:
        raise HarnessError(f"harness indices {indices.start}-{indices.stop - 1} for worker {worker or 'main'}: "
                           f"set VMSITE_HARNESS_FIRST_INDEX/VMSITE_HARNESS_INDEX_COUNT within {MIN_INDEX}-{MAX_INDEX}")
    return indices


_lock = threading.Lock()
_taken: list[int] = []


def next_index() -> int:
    """An index of this worker's range that no host of this process has had yet."""
    indices = worker_range()
    with _lock:
        if len(_taken) >= len(indices):
            raise HarnessError(f"all {len(indices)} harness indices of this worker ({indices.start}-{indices.stop - 1}) "
                               f"are used: raise VMSITE_HARNESS_INDEX_COUNT or run fewer workers")
        index = indices[len(_taken)]
        _taken.append(index)
        return index
