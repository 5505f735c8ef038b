"""PostgreSQL restarted under load (issue 19): a PostgreSQL and a Redis of the test's own, a real
the web server (uvicorn), Celery worker and listener on them, and requests running all the while. During the gap
every answer is 200 or a 503 that says the database is unreachable (never a bare 500 or a
traceback); afterwards web, worker and listener work again without being restarted."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import psycopg
import pytest
import requests

from events.watching import lease_key
from tests import stack
from tests.postgres_server import OwnPostgres
from tests.vmsite.conftest import own_redis_env
from tests.vmsite.test_redis_down import log_in

pytestmark = [pytest.mark.integration]

SETUP = """
from django.core.management import call_command
call_command("migrate", verbosity=0)
from api.tokens import api_token_issue
from django.contrib.auth import get_user_model
from hosts.models import Host
user = get_user_model().objects.create_superuser("script", password="x")
host = Host.objects.create(name="h1", transport="test", address="default")
print(host.pk, api_token_issue(user=user, name="script", days=None)[1])
"""
DATABASE_DOWN = "The database is unreachable"


@pytest.fixture
def own_postgres():
    server = OwnPostgres()
    server.create()
    yield server
    server.remove()


class Answer(NamedTuple):
    at: float  # when it arrived
    path: str
    status: int
    body: str
    sent: float  # when its request was sent

    def told(self) -> tuple[str, int, str]:
        """What a failed assertion shows of it."""
        return self.path, self.status, self.body


@dataclass
class Load:
    """Requests in a loop from three threads, every answer kept. The API with a token, and a page
    with a logged-in browser session."""

    base: str
    token: str
    browser: requests.Session
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "Load":
        self.threads = [threading.Thread(target=self._loop, args=(path,), daemon=True)
                        for path in ("/api/v1/hosts/", "/api/v1/operations/", "/hosts/")]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=40)

    def _loop(self, path: str) -> None:
        while not self.stopping.is_set():
            sent = time.monotonic()
            try:
                if path.startswith("/api/"):
                    answer = requests.get(f"{self.base}{path}", headers={"Authorization": f"Bearer {self.token}"},
                                          timeout=30)
                else:
                    answer = self.browser.get(f"{self.base}{path}", allow_redirects=False, timeout=30)
                self.answers.append(Answer(time.monotonic(), path, answer.status_code, answer.text, sent))
            except requests.RequestException as exc:
                self.answers.append(Answer(time.monotonic(), path, 0, str(exc), sent))
            time.sleep(0.05)

    def between(self, start: float, end: float = float("inf")) -> list[Answer]:
        """The answers that arrived from start until end."""
        return [answer for answer in list(self.answers) if start <= answer.at < end]

    def sent_after(self, start: float) -> list[Answer]:
        """The answers to requests sent from start on (one sent before may arrive later, and fail)."""
        return [answer for answer in list(self.answers) if answer.sent >= start]


def test_a_postgresql_restart_under_load_fails_requests_in_words_and_every_process_recovers(
        own_postgres, own_redis, stack_log_dir):
    env = own_redis_env(own_redis, DATABASE_URL=own_postgres.url, OPERATIONS_QUEUE="pg-restart")
    done = subprocess.run([str(stack.VENV_BIN / "python"), "manage.py", "shell", "-c", SETUP], cwd=stack.ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    host_id, token = done.stdout.split()[-2:]
    port = stack.free_port()
    processes = [stack.start_process("pg-restart-web", stack.asgi_argv(port), log_dir=stack_log_dir, env=env)]
    try:
        listener = stack.start_process("pg-restart-listener", [str(stack.VENV_BIN / "python"), "manage.py", "listen"],
                                       log_dir=stack_log_dir, env=env)
        processes.append(listener)
        processes.append(stack.start_worker("pg-restart-worker", log_dir=stack_log_dir, queues="pg-restart",
                                            concurrency=1, env=env))
        base = f"http://127.0.0.1:{port}"
        stack.wait_until(lambda: stack.port_open("127.0.0.1", port), timeout=30, message="the web server listening")
        stack.wait_until(lambda: own_redis.client().get(lease_key(int(host_id))), timeout=30,
                         message="the listener to watch the host")

        browser, login = log_in(base, "script")
        assert login.status_code == 302
        with Load(base, token, browser) as load:
            stack.wait_until(lambda: len(load.answers) >= 4, timeout=30, message="answers before the restart")
            stopped = time.monotonic()
            own_postgres.stop()
            stack.wait_until(lambda: any(answer.status == 503 for answer in load.between(stopped)), timeout=15,
                             message="a 503 while the database is away")
            refused = api_post(base, token, f"hosts/{host_id}/sync/")  # an action during the gap
            stack.wait_until(lambda: "database unreachable" in listener.log(), timeout=15,
                             message="the listener to meet the gap (it reads its host list every 2 s)")
            own_postgres.start()
            back = time.monotonic()
            stack.wait_until(lambda: any(answer.status == 200 for answer in load.between(back)), timeout=30,
                             message="the web process to answer again")
            web_after = min(answer.at for answer in load.between(back) if answer.status == 200) - back
            stack.wait_until(lambda: len(load.sent_after(back + web_after)) >= 9, timeout=30,
                             message="more answers after the restart")
        during, after = load.between(stopped, back), load.sent_after(back + web_after)

        assert refused.status_code == 503 and refused.json()["error"].startswith(DATABASE_DOWN)
        assert {answer.status for answer in during} <= {200, 503}, during
        for answer in during:
            if answer.status == 503 and answer.path.startswith("/api/"):
                assert json.loads(answer.body)["error"].startswith(f"{DATABASE_DOWN}; nothing was changed"), answer.told()
            elif answer.status == 503:
                assert f"{DATABASE_DOWN}; nothing was changed" in answer.body, answer.told()
        assert {answer.path for answer in during if answer.status == 503} == {"/api/v1/hosts/", "/api/v1/operations/",
                                                                            "/hosts/"}
        assert {answer.status for answer in after} == {200}, (
            [answer.told() for answer in after if answer.status != 200][:5], processes[0].log()[-3000:])
        assert not any("Traceback" in answer.body for answer in load.answers)

        accepted = api_post(base, token, f"hosts/{host_id}/sync/")
        assert accepted.status_code == 202, accepted.text
        operation = accepted.json()["operation"]
        stack.wait_until(lambda: api_get(base, token, f"operations/{operation}/").json()["state"] == "succeeded",
                         timeout=40, message="the worker to run an operation after the restart")
        worker_after = time.monotonic() - back

        assert listener.process.poll() is None, listener.log()[-2000:]  # it met the gap, and stayed up
        with psycopg.connect(own_postgres.url.replace("postgres://", "postgresql://"), autocommit=True) as db:
            db.execute("UPDATE hosts_host SET enabled = false WHERE id = %s", [int(host_id)])
        stack.wait_until(lambda: not own_redis.client().get(lease_key(int(host_id))), timeout=30,
                         message="the listener to read the host list again and let the disabled host go")
        listener_after = time.monotonic() - back
    finally:
        for process in reversed(processes):
            process.stop()
    print(f"recovery after PostgreSQL returned: web {web_after:.1f} s, worker (an operation run) {worker_after:.1f} s, "
          f"listener (host list read) {listener_after:.1f} s; {len(during)} answers during the gap")
    assert web_after < 5 and worker_after < 30 and listener_after < 30


def api_get(base: str, token: str, path: str) -> requests.Response:
    return requests.get(f"{base}/api/v1/{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def api_post(base: str, token: str, path: str) -> requests.Response:
    return requests.post(f"{base}/api/v1/{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
