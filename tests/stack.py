"""The real processes of the stack, started for tests: Celery workers and the ASGI server.

Each runs with the test settings and the test database, in its own process group, and is
stopped by pid (group) by whoever started it.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from vmsite.web_server import web_server_argv

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def test_database_url() -> str:
    """The URL of the database pytest-django created, for processes outside this one."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}{port}/{db['NAME']}"


def stack_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="vmsite.settings_test",
        DATABASE_URL=test_database_url(),
        VMSITE_DATA_DIR=str(settings.DATA_DIR),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@dataclass
class StackProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass


STARTED_BY_SUITE = "VMSITE_STARTED_BY_SUITE"  # in the environment of each process start_process starts: its data folder


def stop_orphans(data_dir: Path) -> list[int]:
    """Kill the processes an earlier, killed run left behind on this data folder: they would hold the
    worker's SQLite files, Redis queue and ports, and the next run on them would fail in ways that do
    not name them. Called before a test process starts any of its own; returns their pids."""
    marker = f"{STARTED_BY_SUITE}={data_dir}".encode()
    spared = _ancestors_and_self()
    killed = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = proc.joinpath("environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and int(proc.name) not in spared:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.append(int(proc.name))
    return killed


def _ancestors_and_self() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def start_process(name: str, argv: list[str], *, log_dir: Path, env: dict[str, str]) -> StackProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            argv, cwd=ROOT, env={**env, STARTED_BY_SUITE: env.get("VMSITE_DATA_DIR", "")}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return StackProcess(name=name, process=process, log_path=log_path)


def start_worker(name: str, *, log_dir: Path, queues: str = "vmsite", concurrency: int = 2,
                 ready_timeout: float = 30, env: dict[str, str] | None = None) -> StackProcess:
    argv = [str(VENV_BIN / "celery"), "-A", "vmsite", "worker", "--loglevel", "INFO", "--concurrency", str(concurrency),
            "--hostname", f"{name}@%h", "--queues", queues, "--without-gossip", "--without-mingle"]
    # billiard's pool makes a pymp-* folder in TMPDIR and removes it only at a clean exit, which a
    # worker the suite kills never has: in the test's own temporary folder, pytest clears it.
    scratch = log_dir / f"{name}-tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    worker = start_process(name, argv, log_dir=log_dir, env={**(env or stack_env()), "TMPDIR": str(scratch)})
    _wait_for(lambda: "ready." in worker.log(), worker, ready_timeout, "worker ready")
    return worker


def asgi_argv(port: int) -> list[str]:
    """The web server (uvicorn) on a loopback port, as the Procfile starts it (vmsite/web_server.py)."""
    return web_server_argv(VENV_BIN, port)


def start_asgi_server(*, log_dir: Path) -> tuple[StackProcess, str]:
    """The suite's ASGI server on settings.VMSITE_PORT: its pages are the site's origin (SITE_ORIGINS)."""
    port = settings.VMSITE_PORT
    server = start_process("asgi", asgi_argv(port), log_dir=log_dir, env=stack_env())
    _wait_for(lambda: port_open("127.0.0.1", port), server, 30, "ASGI server listening")
    return server, f"http://127.0.0.1:{port}"


def start_console_proxy(*, log_dir: Path) -> tuple[StackProcess, int]:
    """The VNC console proxy (websockify with vmsite's plugins) on settings.CONSOLE_PROXY_PORT."""
    port = settings.CONSOLE_PROXY_PORT
    argv = [str(VENV_BIN / "python"), "manage.py", "consoleproxy", "--host", "127.0.0.1", "--port", str(port)]
    proxy = start_process("consoleproxy", argv, log_dir=log_dir, env=stack_env())
    _wait_for(lambda: port_open("127.0.0.1", port), proxy, 30, "console proxy listening")
    return proxy, port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """count free ports, all different: each is held until all are chosen (free_port twice can give
    the same port twice, and nginx then merged the HTTP and HTTPS servers of the deployment test)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition",
               explain: Callable[[], str] | None = None):
    """Poll `predicate` until it returns something true; on timeout fail, with what `explain` says
    about the state it was waiting on, when given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    detail = f": {explain()}" if explain else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {message}{detail}")


def _wait_for(predicate, process: StackProcess, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.process.returncode}:\n{process.log()[-3000:]}")
        if predicate():
            return
        time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"{process.name}: no {what} after {timeout} s:\n{process.log()[-3000:]}")


def in_own_loop(coroutine):
    """asyncio.run in a thread of its own: the browser tests leave an event loop in this one."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()
