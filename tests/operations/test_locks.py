"""operations/locks.py against the real Redis: a held lock makes the next holder wait (and give up
after its wait), stays held past its time to live while its holder lives, and is let go by itself
when its holder is killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from operations.locks import LockTimeout, lock_held

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def name(redis_ready) -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_it_makes_the_next_holder_wait_and_gives_up_after_the_wait(name):
    waited = []
    with lock_held(name, wait=1):
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="stayed locked for 0 s"):
            with lock_held(name, wait=0.3, on_wait=lambda: waited.append(True)):
                pass
        # redis-py stops trying when its next try (every 0.1 s) would come after the wait
        assert waited == [True] and time.monotonic() - started >= 0.3 - 0.1
    with lock_held(name, wait=0):  # let go at the end of the block
        pass


def test_it_stays_held_past_its_time_to_live_while_its_holder_works(name):
    with lock_held(name, wait=1, ttl=0.6):
        time.sleep(1.5)  # the side thread renews it every 0.2 s
        with pytest.raises(LockTimeout):
            with lock_held(name, wait=0.1):
                pass


def test_a_killed_holders_lock_expires_and_the_next_holder_gets_it(name):
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import django, time; django.setup(); from operations.locks import lock_held\n"
            f"with lock_held({name!r}, wait=5, ttl=1.5):\n    print('held', flush=True); time.sleep(120)")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "vmsite.settings", "REDIS_URL": settings.REDIS_URL})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout):
            with lock_held(name, wait=2):  # alive, it keeps renewing past its 1.5 s
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        started = time.monotonic()
        with lock_held(name, wait=5):
            assert time.monotonic() - started <= 2.5
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_two_threads_never_hold_it_at_once(name):
    inside, overlaps = [], []

    def work() -> None:
        for _ in range(5):
            with lock_held(name, wait=10):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(True)
                time.sleep(0.01)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
