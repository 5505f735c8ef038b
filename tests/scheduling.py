"""How `make test` hands the suite's files to its pytest-xdist workers: the longest first.

pytest-xdist's worksteal scheduler gives each worker a contiguous slice of the collection (in file
order) and lets an idle worker take half of a busy one's queue. The suite's long files (browser,
console, backup and daemon tests: 20-100 s each) then ran wherever the alphabet put them, often
last, while the CPU-heavy short tests were long done: the run ended on a few workers waiting on
guests and timeouts. LongestFirstScheduling hands out whole files instead, the longest first, each to
the worker with the least work so far (the LPT rule), so every worker starts on its longest file and
ends on short ones; stealing still evens out the end.

A file's length is its seconds (setup, call and teardown of its tests, under `make test`'s own
load) in tests/durations.json, written from a run's JUnit report by `scripts/test_durations.py`. A
file it does not know yet counts as its number of tests times the median second per test."""
from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from xdist.scheduler import WorkStealingScheduling

DURATIONS = Path(__file__).with_name("durations.json")


def file_of(nodeid: str) -> str:
    return nodeid.partition("::")[0]


def plan(collection: Sequence[str], workers: int, seconds: Mapping[str, float]) -> list[list[int]]:
    """The collection's indices for each worker: whole files, longest first, each to the worker with
    the least seconds so far; within a file, the collection's order."""
    files: dict[str, list[int]] = {}
    for index, nodeid in enumerate(collection):
        files.setdefault(file_of(nodeid), []).append(index)
    per_test = statistics.median(seconds[name] / len(indices) for name, indices in files.items()
                                 if name in seconds) if files.keys() & seconds.keys() else 1.0
    length = {name: seconds.get(name, per_test * len(indices)) for name, indices in files.items()}
    queues: list[list[int]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for name in sorted(files, key=lambda name: (-length[name], name)):
        lightest = loads.index(min(loads))
        queues[lightest].extend(files[name])
        loads[lightest] += length[name]
    return queues


def recorded_seconds() -> dict[str, float]:
    try:
        return {name: float(value) for name, value in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


class LongestFirstScheduling(WorkStealingScheduling):
    def schedule(self) -> None:
        if self.collection is not None or not self._check_nodes_have_same_collection():
            return super().schedule()  # a re-schedule, or the abort that the base class logs
        self.collection = next(iter(self.node2collection.values()))
        for node, indices in zip(self.nodes, plan(self.collection, len(self.nodes), recorded_seconds())):
            if indices:
                self.node2pending[node].extend(indices)
                node.send_runtest_some(indices)
        self.check_schedule()
