"""Redis going away under a running web process (issue 19): a redis-server of the test's own is
stopped and started again under a real web server (uvicorn). Pages that only read the database still answer;
what needs Redis answers 503 saying that Redis is unreachable (JSON for the API); a login is
refused rather than let through unchecked; an action is never reported accepted unless queued;
and when Redis is back everything works again without restarting anything: the web process, its
live hub and an open page, a worker, a listener, the console proxy and beat, each timed."""
from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import timedelta

import pytest
import requests
import websocket
from django.conf import settings
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect
from django.utils import timezone

from api.tokens import api_token_issue
from domains.models import Domain
from events.hub import CLOSE_LIVE_UNAVAILABLE
from events.watching import lease_key
from hosts.models import Host
from hosts.services import host_register_local
from operations.choices import OperationState
from operations.models import Operation
from operations.services import NOT_QUEUED
from tests import stack
from tests.domains.helpers import LOCAL, cached
from tests.events.live import make_user, receive_until, session_cookie
from tests.redis_server import OwnRedis
from tests.vmsite.conftest import own_redis_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REDIS_DOWN = "Redis is unreachable"


@pytest.fixture
def site(own_redis, django_db_setup, stack_log_dir):
    """The web server with the test settings, its Redis the test's own."""
    port = stack.free_port()
    server = stack.start_process("asgi-redis-down", stack.asgi_argv(port), log_dir=stack_log_dir,
                                 env=own_redis_env(own_redis))
    stack.wait_until(lambda: stack.port_open("127.0.0.1", port), timeout=30, message="the web server listening")
    yield f"http://127.0.0.1:{port}"
    server.stop()


def log_in(base: str, username: str, password: str = "x") -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    form = browser.get(f"{base}/login/", timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = browser.post(f"{base}/login/", data={"username": username, "password": password,
                                                   "csrfmiddlewaretoken": csrf}, allow_redirects=False, timeout=30)
    return browser, answer


def api(base: str, token: str, path: str, method: str = "GET") -> requests.Response:
    return requests.request(method, f"{base}/api/v1/{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_with_redis_down_reads_still_answer_and_the_rest_is_refused_in_words(own_redis, site):
    make_user("admin", superuser=True)
    host = Host.objects.create(name="h1", transport="test", address="default")
    vm = Domain.objects.create(host=host, uuid="0e6f5d8a-1111-4222-8333-444455556666", name="vm1",
                               synced_at=timezone.now())
    _row, token = api_token_issue(user=make_user("script", superuser=True), name="script", days=None)
    browser, answer = log_in(site, "admin")
    assert answer.status_code == 302
    assert api(site, token, "hosts/").status_code == 200

    own_redis.stop()
    hosts_page = browser.get(f"{site}/hosts/", timeout=30)
    assert hosts_page.status_code == 200
    assert "watched: unknown (Redis unreachable)" in hosts_page.text
    host_page = browser.get(f"{site}/hosts/{host.pk}/", timeout=30)
    assert host_page.status_code == 200 and "watched: unknown (Redis unreachable)" in host_page.text
    for read_only in ("/", "/vms/", f"/vms/{vm.pk}/", "/operations/"):
        assert browser.get(f"{site}{read_only}", timeout=30).status_code == 200, read_only
    assert browser.get(f"{site}/api/v1/hosts/", timeout=30).status_code == 200  # the session's reads: database only

    refused = api(site, token, "hosts/")  # a token cannot be checked against the lockout store
    assert refused.status_code == 503
    assert refused.json()["error"].startswith(f"{REDIS_DOWN}: logins and API tokens are refused")

    csrf = browser.cookies["csrftoken"]
    page_action = browser.post(f"{site}/hosts/{host.pk}/sync/", data={"csrfmiddlewaretoken": csrf},
                               allow_redirects=False, timeout=60)
    assert page_action.status_code == 503
    assert f"{REDIS_DOWN}: the action was not queued and nothing was done" in page_action.text
    api_action = browser.post(f"{site}/api/v1/hosts/{host.pk}/sync/", headers={"X-CSRFToken": csrf}, timeout=60)
    assert api_action.status_code == 503
    assert api_action.json()["error"].startswith(f"{REDIS_DOWN}: the action was not queued")
    not_queued = Operation.objects.filter(kind="host.sync")
    assert [(op.state, op.message) for op in not_queued] == [(OperationState.CANCELLED, NOT_QUEUED)] * 2

    stranger, login = log_in(site, "admin")
    assert login.status_code == 503
    assert f"{REDIS_DOWN}: logins and API tokens are refused" in login.text
    assert stranger.get(f"{site}/hosts/", allow_redirects=False, timeout=30).status_code == 302  # to the login page

    own_redis.start()  # the same web process, not restarted
    stack.wait_until(lambda: api(site, token, "hosts/").status_code == 200, timeout=30, message="the API again")
    _browser, login = log_in(site, "admin")
    assert login.status_code == 302
    hosts_page = browser.get(f"{site}/hosts/", timeout=30)
    assert "Redis unreachable" not in hosts_page.text and "not watched" in hosts_page.text
    accepted = api(site, token, f"hosts/{host.pk}/sync/", method="POST")
    assert accepted.status_code == 202
    operation = Operation.objects.get(pk=accepted.json()["operation"])
    assert operation.state == OperationState.PENDING and operation.queued_at is not None
    assert own_redis.client().llen("vmsite") == 1


def sweep(own_redis: OwnRedis) -> str:
    """The beat's sweep task, run once in a process of its own pointed at the test's Redis."""
    command = "from operations.tasks import sweep_operations; print(sweep_operations())"
    done = subprocess.run([str(stack.VENV_BIN / "python"), "manage.py", "shell", "-c", command], cwd=stack.ROOT,
                          env=own_redis_env(own_redis), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]  # after the shell's own words


def test_an_operation_whose_message_was_lost_is_queued_again_and_runs_once(own_redis, site, stack_log_dir):
    host = Host.objects.create(name="h2", transport="test", address="default")
    _row, token = api_token_issue(user=make_user("script", superuser=True), name="script", days=None)
    accepted = api(site, token, f"hosts/{host.pk}/sync/", method="POST")
    assert accepted.status_code == 202
    operation = Operation.objects.get(pk=accepted.json()["operation"])

    own_redis.stop()
    own_redis.start()  # no persistence: the queued message is gone
    assert own_redis.client().llen("vmsite") == 0
    assert sweep(own_redis) == "0"  # sent just now: it may only be waiting for a worker

    for _ in range(2):  # long enough unclaimed: sent again, and a second time (two deliveries now)
        Operation.objects.filter(pk=operation.pk).update(queued_at=operation.queued_at - timedelta(hours=1))
        operation.refresh_from_db()
        assert sweep(own_redis) == "1"
    assert own_redis.client().llen("vmsite") == 2

    worker = stack.start_worker("redis-down-worker", log_dir=stack_log_dir, concurrency=1,
                                env=own_redis_env(own_redis))
    try:
        stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).state == OperationState.SUCCEEDED,
                         timeout=60, message="the operation to succeed")
        stack.wait_until(lambda: "already claimed or finished" in worker.log(), timeout=30,
                         message="the second delivery to be dropped")
    finally:
        worker.stop()
    assert worker.log().count("already claimed or finished") == 1


def live_socket(base: str, cookie: str) -> websocket.WebSocket | None:
    """A live socket as live.js opens one, or None if the server closed it (Redis away: 4503)."""
    try:
        sock = websocket.create_connection(base.replace("http://", "ws://") + "/ws/live/", origin=base,
                                           header=[f"Cookie: sessionid={cookie}"], timeout=15)
        if json.loads(sock.recv()) == {"type": "hello"}:
            return sock
    except (websocket.WebSocketException, OSError, ValueError):
        pass
    return None


def close_code(sock: websocket.WebSocket, *, timeout: float) -> int:
    """The code of the close frame the server sends next (messages before it are skipped)."""
    sock.settimeout(timeout)
    while True:  # recv_frame, not recv_data: that one answers the close itself, and the server may
        frame = sock.recv_frame()  # have reset the connection by then (ConnectionResetError)
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")


def console_answer(port: int, token: str) -> int:
    """The console proxy's HTTP status for a websocket with this token (101 when let through)."""
    try:
        websocket.create_connection(f"ws://127.0.0.1:{port}/?token={token}", timeout=10,
                                    origin=f"http://127.0.0.1:{settings.VMSITE_PORT}").close()
        return 101
    except websocket.WebSocketBadStatusException as refusal:
        return refusal.status_code


def console_banner(port: int, browser: Client, vm: Domain) -> bytes:
    """A console opened as the console page does: a token for the VM, then the proxy's websocket."""
    token = browser.post(reverse("consoles:token", args=[vm.pk])).json()["token"]
    sock = websocket.create_connection(f"ws://127.0.0.1:{port}/?token={token}", timeout=10,
                                       origin=f"http://127.0.0.1:{settings.VMSITE_PORT}",
                                       cookie=f"sessionid={browser.cookies['sessionid'].value}")
    try:
        return sock.recv()
    finally:
        sock.close()


@pytest.mark.browser
def test_when_redis_returns_every_process_and_page_reconnects_by_itself(own_redis, site, stack_log_dir, page, guests,
                                                                       local_libvirt, settings):
    """Worker, listener, console proxy, the web process's hub, an open page in Chromium (live.js) and a
    socket client, all on the test's Redis: stopped, started again on the same port (empty), and
    nothing restarted."""
    test_settings = settings
    env = own_redis_env(own_redis)
    test_settings.REDIS_URL = own_redis.url_of_this_process  # the console token this process issues
    host = Host.objects.create(name="h3", transport="test", address="default")
    vm = cached(host_register_local()[0], guests.define(LOCAL, start=True))  # a VNC display to reach
    _row, token = api_token_issue(user=make_user("script", superuser=True), name="script", days=None)
    admin = make_user("admin", superuser=True)
    cookie = session_cookie(admin)
    browser = Client()
    browser.force_login(admin)
    listener = stack.start_process("redis-returns-listener", [str(stack.VENV_BIN / "python"), "manage.py", "listen"],
                                   log_dir=stack_log_dir, env=env)
    proxy_port = stack.free_port()
    proxy = stack.start_process("redis-returns-consoles", [str(stack.VENV_BIN / "python"), "manage.py", "consoleproxy",
                                                           "--host", "127.0.0.1", "--port", str(proxy_port)],
                                log_dir=stack_log_dir, env=env)
    worker = None
    try:
        worker = stack.start_worker("redis-returns-worker", log_dir=stack_log_dir, concurrency=1, env=env)
        stack.wait_until(lambda: own_redis.client().get(lease_key(host.pk)), timeout=30, message="the listener's lease")
        stack.wait_until(lambda: stack.port_open("127.0.0.1", proxy_port), timeout=30, message="the console proxy")
        sock = stack.wait_until(lambda: live_socket(site, cookie), timeout=30, message="a live socket")
        page.context.add_cookies([{"name": "sessionid", "value": cookie, "url": site}])
        page.goto(f"{site}/operations/")
        indicator = page.locator("#live-indicator")
        expect(indicator).to_have_attribute("data-state", "live")

        own_redis.stop()
        assert close_code(sock, timeout=10) == CLOSE_LIVE_UNAVAILABLE  # the hub lost Redis: the page will reconnect
        assert console_answer(proxy_port, "any") == 503
        expect(indicator).to_have_attribute("data-state", "reconnecting")
        stack.wait_until(lambda: "host leases not renewed" in listener.log(), timeout=10, message="the listener to notice")
        stack.wait_until(lambda: "Connection to broker lost" in worker.log(), timeout=30, message="the worker to notice")

        own_redis.start()  # the same port, nothing kept: queue, leases and tokens are gone
        back = time.monotonic()
        sock = stack.wait_until(lambda: live_socket(site, cookie), timeout=30, message="the live socket again")
        socket_after = time.monotonic() - back
        expect(indicator).to_have_attribute("data-state", "live", timeout=15_000)  # live.js: backoff, at most 5 s
        page_after = time.monotonic() - back
        stack.wait_until(lambda: console_answer(proxy_port, "unknown") == 403, timeout=10,
                         message="the console proxy to look tokens up again")
        assert console_banner(proxy_port, browser, vm).startswith(b"RFB 003.00")  # a console opens
        proxy_after = time.monotonic() - back
        stack.wait_until(lambda: own_redis.client().get(lease_key(host.pk)), timeout=30,
                         message="the listener to take its lease again")
        lease_after = time.monotonic() - back

        accepted = api(site, token, f"hosts/{host.pk}/sync/", method="POST")
        assert accepted.status_code == 202
        operation_id = accepted.json()["operation"]
        receive_until(sock, lambda m: m["type"] == "operation" and m["id"] == operation_id
                      and m["state"] == OperationState.SUCCEEDED, timeout=45)
        action_after = time.monotonic() - back
        row = page.locator("#operation-list-live tr", has=page.locator(f"a[href='/operations/{operation_id}/']"))
        expect(row).to_contain_text("Succeeded")  # the open page got the message and refreshed its list
        Host.objects.filter(pk=host.pk).update(enabled=False)  # only the listener publishes this one
        receive_until(sock, lambda m: m["type"] == "host" and m["id"] == host.pk, timeout=15)
        sock.close()
    finally:
        for process in (proxy, listener, worker):
            if process is not None:
                process.stop()
    print(f"recovery after Redis returned: live socket {socket_after:.1f} s, page {page_after:.1f} s, "
          f"console proxy {proxy_after:.1f} s, "
          f"listener lease {lease_after:.1f} s, an action run and its message on the page {action_after:.1f} s")
    assert socket_after < 8 and page_after < 15 and proxy_after < 8 and lease_after < 15 and action_after < 40


def last_beat_run(name: str = "operations-sweep"):
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.filter(name=name).values_list("last_run_at", flat=True).first()


def test_beat_keeps_sending_its_tasks_once_redis_returns_without_a_restart(own_redis, stack_log_dir):
    """Celery beat (the DatabaseScheduler, as deploy/ runs it) on the test's Redis, sending the sweep
    every second: Redis stopped, and started again empty; the same beat process marks new runs and
    its messages arrive in the new Redis (where nothing else writes to the queue). The mark alone
    proves nothing: beat sets it before sending, so it advances while Redis is away too."""
    queue = own_redis.client()
    beat = stack.start_process("redis-returns-beat", [str(stack.VENV_BIN / "celery"), "-A", "vmsite", "beat",
                                                      "--loglevel", "INFO", "--scheduler",
                                                      "django_celery_beat.schedulers:DatabaseScheduler"],
                               log_dir=stack_log_dir, env=own_redis_env(own_redis, SWEEP_INTERVAL="1"))
    try:
        stack.wait_until(lambda: queue.llen(settings.CELERY_TASK_DEFAULT_QUEUE) > 0, timeout=30,
                         message="beat's first sweep in Redis")
        own_redis.stop()
        sent = beat.log().count("Sending due task operations-sweep")
        stack.wait_until(lambda: beat.log().count("Sending due task operations-sweep") >= sent + 2, timeout=30,
                         message="beat to try sending while Redis is away")
        own_redis.start()  # the same port, empty
        back = timezone.now()
        stack.wait_until(lambda: queue.llen(settings.CELERY_TASK_DEFAULT_QUEUE) > 0, timeout=30,
                         message="a sweep sent after Redis returned")
        arrived = (timezone.now() - back).total_seconds()
        stack.wait_until(lambda: (last_beat_run() or back) > back, timeout=10, message="beat's last run to advance")
        assert beat.process.poll() is None, beat.log()  # never restarted
    finally:
        beat.stop()
    print(f"beat: a task in Redis {arrived:.1f} s after it returned")
    assert arrived < 30
