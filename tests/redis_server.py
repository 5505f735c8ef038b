"""A redis-server of a test's own, on a free port, that the test may stop and start again (the
machine's Redis on 6379 is never touched). No persistence: a restart empties it, as losing the
queue does."""
from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from tests import stack
from vmsite.settings_test import worker_redis_url


class OwnRedis:
    def __init__(self, work_dir: Path) -> None:
        self.port = stack.free_port()
        self.work_dir = work_dir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def url_of_this_process(self) -> str:
        """The database of `url` as the processes a test starts with it use it (see client)."""
        return worker_redis_url(self.url)

    def client(self) -> redis.Redis:
        """The database the processes a test starts with this URL use: settings_test moves each
        pytest-xdist worker (and what it starts) to the base database plus its number."""
        return redis.Redis.from_url(self.url_of_this_process, socket_connect_timeout=2, socket_timeout=5)

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.work_dir)],
            stdout=open(self.work_dir / "redis.log", "a"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        stack.wait_until(lambda: self._answers(), timeout=10, message=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False
