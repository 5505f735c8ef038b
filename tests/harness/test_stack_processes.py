"""The processes the suite starts do not outlive the test process that started them."""
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
process = stack.start_process("sleeper", ["sleep", "60"], log_dir=Path(sys.argv[1]), env={"PATH": "/usr/bin:/bin"})
print(process.pid, flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
    return state != "Z"


def test_a_started_process_dies_with_the_killed_test_process(tmp_path: Path) -> None:
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path)], cwd=stack.ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "DJANGO_SETTINGS_MODULE": "vmsite.settings_test"})
    sleeper = int(starter.stdout.readline())
    assert _alive(sleeper)
    starter.send_signal(signal.SIGKILL)
    starter.wait(timeout=10)
    deadline = time.monotonic() + 5
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper), "a process the suite started outlived the killed test process"
