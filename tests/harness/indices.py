"""Which harness host indices (127.0.0.N) this test process may use.

A suite owns VMSITE_HARNESS_INDEX_COUNT indices from VMSITE_HARNESS_FIRST_INDEX on (defaults 120 and
20, so 20-139). Its pytest-xdist workers share them: a worker claims one index at a time, the
first one no live process holds, with a claim file that names it (pid and start time) under a lock.
A claim is never given back while its process lives, so no address is used twice in one run;
once the process has gone, its claims are free again. Two suites given separate ranges never meet;
two on one range share it the same way.
"""
from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.harness.libvirt_hosts import (MAX_INDEX, MIN_INDEX, REGISTRY_DIR, HarnessError, _process_identity,
                                         owner_alive, stop_stale_hosts)

CLAIMS_DIR = REGISTRY_DIR / "claims"


def suite_range() -> range:
    first = int(os.environ.get("VMSITE_HARNESS_FIRST_INDEX", "20"))
    count = int(os.environ.get("VMSITE_HARNESS_INDEX_COUNT", "120"))
    indices = range(first, first + count)
    if not indices or indices.start < MIN_INDEX or indices.stop - 1 > MAX_INDEX:
        raise HarnessError(f"harness indices {first}-{first + count - 1}: set VMSITE_HARNESS_FIRST_INDEX/"
                           f"VMSITE_HARNESS_INDEX_COUNT within {MIN_INDEX}-{MAX_INDEX}")
    return indices


_lock = threading.Lock()


def next_index() -> int:
    """An index of the suite's range that no live process has claimed; this process's from now on."""
    indices = suite_range()
    me = _process_identity(os.getpid())
    with _lock, _claims_locked():
        index = next((index for index in indices if not _held_by_a_live_process(index)), None)
        if index is not None:
            (CLAIMS_DIR / str(index)).write_text(json.dumps(me))
    if index is not None:
        stop_stale_hosts([index])  # a host a killed run left on it
        return index
    raise HarnessError(f"all {len(indices)} harness indices ({indices.start}-{indices.stop - 1}) are claimed "
                       f"by live test processes: raise VMSITE_HARNESS_INDEX_COUNT")


def unclaimed_indices() -> list[int]:
    """The suite's indices that no live process holds: any host on them was left by a killed run."""
    return [index for index in suite_range() if not _held_by_a_live_process(index)]


def _held_by_a_live_process(index: int) -> bool:
    try:
        owner = json.loads((CLAIMS_DIR / str(index)).read_text())
    except (OSError, ValueError):
        return False
    return owner_alive(owner)


@contextmanager
def _claims_locked() -> Iterator[None]:
    CLAIMS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(CLAIMS_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
