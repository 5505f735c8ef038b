"""Harness host indices are claimed from one range that the suite's workers share."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import indices
from tests.harness.libvirt_hosts import HarnessError, _process_identity

FREE_RANGE = {"VMSITE_HARNESS_FIRST_INDEX": "160", "VMSITE_HARNESS_INDEX_COUNT": "4"}  # no suite's default
CLAIM_AND_WAIT = ("import sys; from pathlib import Path; from tests.harness import indices; "
                  "indices.CLAIMS_DIR = Path(sys.argv[1]); print(indices.next_index(), flush=True); sys.stdin.read()")


@pytest.fixture
def own_claims(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(indices, "CLAIMS_DIR", tmp_path)
    for name, value in FREE_RANGE.items():
        monkeypatch.setenv(name, value)
    return tmp_path


def test_processes_that_claim_at_once_get_different_indices(own_claims) -> None:
    env = {**subprocess.os.environ, **FREE_RANGE}
    children = [subprocess.Popen([sys.executable, "-c", CLAIM_AND_WAIT, str(own_claims)], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        claimed = sorted(int(child.stdout.readline()) for child in children)
    finally:
        for child in children:
            child.communicate("")
    assert claimed == [160, 161, 162, 163]


def test_a_claim_stays_while_its_process_lives_and_is_free_once_it_has_gone(own_claims) -> None:
    live, gone = subprocess.Popen(["sleep", "60"]), subprocess.Popen(["sleep", "60"])
    (own_claims / "160").write_text(json.dumps(_process_identity(live.pid)))
    (own_claims / "161").write_text(json.dumps(_process_identity(gone.pid)))
    gone.kill()
    gone.wait()
    try:
        assert [indices.next_index() for _ in range(3)] == [161, 162, 163]
        with pytest.raises(HarnessError, match=r"all 4 harness indices \(160-163\) are claimed"):
            indices.next_index()
    finally:
        live.kill()
        live.wait()
    assert indices.next_index() == 160


def test_a_range_outside_the_harness_addresses_is_refused(own_claims, monkeypatch) -> None:
    monkeypatch.setenv("VMSITE_HARNESS_FIRST_INDEX", "162")
    with pytest.raises(HarnessError, match="within 2-163"):
        indices.next_index()
