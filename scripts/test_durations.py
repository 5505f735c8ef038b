"""Writes tests/durations.json, each test file's seconds in a whole run, from that run's JUnit
report: `make test PYTEST_ARGS=--junitxml=/tmp/suite.xml` then
`.venv/bin/python scripts/test_durations.py /tmp/suite.xml`. Given several reports, each file's
median over them (one run's swings matter less). tests/scheduling.py reads it."""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree

DURATIONS = Path(__file__).resolve().parent.parent / "tests" / "durations.json"


def file_seconds(report: Path) -> dict[str, float]:
    """A test's `time` is its setup, call and teardown together (pytest's junit_duration_report)."""
    seconds: dict[str, float] = defaultdict(float)
    for case in ElementTree.parse(report).iter("testcase"):
        module = case.get("classname", "").split(".")
        while module and module[-1][:1].isupper():  # a test class: its module is what is left
            module.pop()
        seconds["/".join(module) + ".py"] += float(case.get("time", 0))
    return {name: round(value, 1) for name, value in sorted(seconds.items())}


def median_seconds(reports: list[Path]) -> dict[str, float]:
    """Each file's median seconds over the reports that ran it."""
    runs = [file_seconds(report) for report in reports]
    names = sorted(set().union(*runs))
    return {name: round(statistics.median(run[name] for run in runs if name in run), 1) for name in names}


if __name__ == "__main__":
    DURATIONS.write_text(json.dumps(median_seconds([Path(name) for name in sys.argv[1:]]), indent=1) + "\n")
    print(f"wrote {DURATIONS}")
