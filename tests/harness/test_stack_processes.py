"""A run killed earlier leaves nothing this run trips over: its processes on our data folder are stopped."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import stack

STARTER = """
import sys
from pathlib import Path
from tests import stack
env = {"PATH": "/usr/bin:/bin", "VMSITE_DATA_DIR": sys.argv[2]}
process = stack.start_process("sleeper", ["sleep", "60"], log_dir=Path(sys.argv[1]), env=env)
print(process.pid, flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _orphan_of_a_killed_starter(tmp_path: Path, data_dir: Path) -> int:
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path), str(data_dir)], cwd=stack.ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "DJANGO_SETTINGS_MODULE": "vmsite.settings_test"})
    orphan = int(starter.stdout.readline())
    starter.send_signal(signal.SIGKILL)
    starter.wait(timeout=10)
    return orphan


def test_it_stops_what_a_killed_run_left_on_its_data_folder_and_nothing_else(tmp_path: Path) -> None:
    ours = _orphan_of_a_killed_starter(tmp_path, tmp_path / "ours")
    theirs = _orphan_of_a_killed_starter(tmp_path, tmp_path / "theirs")
    try:
        assert _alive(ours) and _alive(theirs)  # the killed starter left both behind
        assert stack.stop_orphans(tmp_path / "ours") == [ours]
        deadline = time.monotonic() + 5
        while _alive(ours) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(ours)
        assert _alive(theirs), "another run's process (another data folder) was stopped"
    finally:
        for pid in (ours, theirs):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
