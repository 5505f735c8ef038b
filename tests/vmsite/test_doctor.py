"""The self-check (`manage.py doctor`, the System page; vmsite/doctor.py): each check's failure shown
with the real thing that fails (a 0755 data folder, an unapplied migration, Redis on a closed port,
a Redis no worker listens on, a host no listener holds, settings that do not match the URL), and
every check passing once against the suite's running stack, through the page and the command."""
from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from hosts.models import Host
from listener.lease import LISTENERS_KEY
from tests import stack
from tests.redis_server import OwnRedis
from vmsite.doctor import (FAIL, OK, WARN, Probe, beat_limit_seconds, beat_offset, console_proxy_url,
                           csrf_origin_accepted, listener_offsets, run_checks)

pytestmark = pytest.mark.django_db


def results_of(probe: Probe) -> dict[str, tuple[str, str, str]]:
    return {result.name: (result.level, result.found, result.fix) for result in run_checks(probe)}


def only(names: set[str], probe: Probe) -> dict[str, tuple[str, str, str]]:
    from vmsite import doctor

    chosen = [(name, function) for name, function in doctor.CHECKS if name in names]
    return {name: (result.level, result.found, result.fix) for name, function in chosen
            for result in [doctor.run_check(name, function, probe)]}


def test_only_administrators_reach_the_system_page_or_see_it_in_the_menu():
    viewer = Client()
    viewer.force_login(get_user_model().objects.create_user("viewer", password="x"))
    refused = viewer.get("/system/")
    assert refused.status_code == 403 and b"Administrators only." in refused.content
    assert b'id="account-link"' in refused.content and b'id="nav-system"' not in refused.content  # their menu
    assert Client().get("/system/")["Location"].startswith("/login/")


# -- the settings against the URL in use, HTTPS, the data folder: no daemon needed

def test_it_fails_a_url_whose_host_is_not_allowed_and_names_the_setting(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    level, found, fix = only({"Site URL"}, Probe(site_url="https://vmsite.example.org"))["Site URL"]
    assert level == FAIL
    assert "vmsite.example.org is not in ALLOWED_HOSTS" in found
    assert fix == "Add vmsite.example.org to ALLOWED_HOSTS."


def test_it_fails_an_https_url_missing_from_the_trusted_origins_and_passes_it_once_listed(settings):
    settings.ALLOWED_HOSTS = ["vmsite.example.org"]
    settings.SITE_ORIGINS = []
    settings.CSRF_TRUSTED_ORIGINS = []
    level, found, fix = only({"Site URL"}, Probe(site_url="https://vmsite.example.org"))["Site URL"]
    assert level == FAIL and "https://vmsite.example.org is not one of the site's origins" in found
    assert fix == "Add https://vmsite.example.org to CSRF_TRUSTED_ORIGINS."
    settings.CSRF_TRUSTED_ORIGINS = ["https://vmsite.example.org"]
    assert only({"Site URL"}, Probe(site_url="https://vmsite.example.org"))["Site URL"][0] == OK


def test_django_csrf_check_decides_whether_forms_from_an_origin_pass(settings):
    settings.ALLOWED_HOSTS = ["vmsite.example.org"]
    settings.CSRF_TRUSTED_ORIGINS = []
    settings.SECURE_PROXY_SSL_HEADER = None
    assert not csrf_origin_accepted("https://vmsite.example.org")  # behind TLS, the request looks http
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert csrf_origin_accepted("https://vmsite.example.org")
    assert not csrf_origin_accepted("https://elsewhere.example.org")


def test_it_fails_https_without_secure_cookies_or_hsts_and_warns_of_plain_http(settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = settings.SECURE_SSL_REDIRECT = False
    settings.SECURE_HSTS_SECONDS = 0
    level, found, fix = only({"HTTPS"}, Probe(site_url="https://vmsite.example.org"))["HTTPS"]
    assert level == FAIL
    assert found == ("https://vmsite.example.org is HTTPS but: session cookie not HTTPS-only, CSRF cookie not "
                     "HTTPS-only, no HSTS, plain HTTP not redirected.")
    assert "HTTPS=true" in fix
    level, found, _fix = only({"HTTPS"}, Probe(site_url="http://vmsite.example.org"))["HTTPS"]
    assert level == WARN and "plain HTTP" in found
    assert only({"HTTPS"}, Probe(site_url="http://127.0.0.1:8000"))["HTTPS"][0] == OK

    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert only({"HTTPS"}, Probe(site_url="https://vmsite.example.org"))["HTTPS"][0] == OK
    level, found, fix = only({"HTTPS"}, Probe(site_url="http://vmsite.example.org"))["HTTPS"]
    assert level == WARN and "HTTPS=true, yet the site is reached over plain HTTP" in found


def test_it_fails_a_data_folder_others_can_read_and_passes_a_private_one(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir(mode=0o700)
    (folder / "vmsite.sqlite3").write_bytes(b"")
    (folder / "vmsite.sqlite3").chmod(0o600)
    assert only({"Data folder"}, Probe(site_url=None, data_dir=folder))["Data folder"][0] == OK
    folder.chmod(0o755)
    level, found, fix = only({"Data folder"}, Probe(site_url=None, data_dir=folder))["Data folder"]
    assert level == FAIL and f"{folder} is mode 0755, open to other users (want 0700)" in found
    assert "manage.py private_data_dir" in fix


def test_it_lists_an_unapplied_migration():
    assert only({"Migrations"}, Probe(site_url=None))["Migrations"][0] == OK
    app, latest = next(node for node in MigrationLoader(connection).graph.leaf_nodes() if node[0] == "backups")
    MigrationRecorder(connection).record_unapplied(app, latest)  # as before `migrate`; rolled back after the test
    level, found, fix = only({"Migrations"}, Probe(site_url=None))["Migrations"]
    assert level == FAIL and found == f"1 not applied: backups.{latest}."
    assert "manage.py migrate" in fix


def test_it_fails_beat_that_never_ran_or_stopped_and_passes_a_recent_run(settings):
    level, found, _fix = only({"Beat"}, Probe(site_url=None))["Beat"]
    assert level == FAIL and "Beat has never run against this database" in found
    every_30_s, _ = IntervalSchedule.objects.get_or_create(every=30, period=IntervalSchedule.SECONDS)
    sweep = PeriodicTask.objects.create(name="operations-sweep", task="operations.sweep", interval=every_30_s)
    assert "has sent no task yet" in only({"Beat"}, Probe(site_url=None))["Beat"][1]
    sweep.last_run_at = timezone.now() - timedelta(seconds=beat_limit_seconds() + 5)
    sweep.save()
    level, found, fix = only({"Beat"}, Probe(site_url=None))["Beat"]
    assert level == FAIL and "Beat's last run was 0:0" in found and "beat service" in fix
    sweep.last_run_at = timezone.now() - timedelta(seconds=20)
    sweep.save()
    assert only({"Beat"}, Probe(site_url=None))["Beat"][:2] == (OK, "Last run 0:00:20 ago.")


def test_the_console_proxy_url_is_the_one_the_console_page_opens(settings):
    settings.CONSOLE_PROXY_PORT = 6080
    settings.CONSOLE_PROXY_URL = ""
    assert console_proxy_url("http://127.0.0.1:8000") == "ws://127.0.0.1:6080/"
    settings.CONSOLE_PROXY_URL = "/websockify"
    assert console_proxy_url("https://vmsite.example.org") == "wss://vmsite.example.org/websockify"
    settings.CONSOLE_PROXY_URL = "wss://consoles.example.org/vnc"
    assert console_proxy_url("https://vmsite.example.org") == "wss://consoles.example.org/vnc"


def test_a_listener_beat_from_the_future_or_older_than_a_round_is_its_clock():
    assert beat_offset(100.0, now=100.5, round_seconds=2) == 0
    assert beat_offset(130.0, now=100.0, round_seconds=2) == 30
    assert beat_offset(95.0, now=100.0, round_seconds=2) == -3


@pytest.mark.parametrize("value", ["vmsite.example.org", "vmsite.example.org:vmsite.internal", ":127.0.0.1",
                                   "vmsite.example.org:[::1"])
def test_the_command_refuses_a_resolve_it_cannot_read(value):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=r"--resolve takes NAME:ADDRESS, e\.g\. .* \(not '"):
        call_command("doctor", "--url", "https://vmsite.example.org", "--resolve", value)


def test_a_resolve_takes_an_ipv4_or_ipv6_address_bare_or_in_brackets():
    from vmsite.management.commands.doctor import parse_resolve

    assert parse_resolve("VMsite.example.org:192.0.2.10") == ("vmsite.example.org", "192.0.2.10")
    assert parse_resolve("vmsite.example.org:[::1]") == parse_resolve("vmsite.example.org:::1") == (
        "vmsite.example.org", "::1")


# -- services gone: real Redis servers, or none

def test_the_command_prints_a_line_and_a_fix_per_problem_and_exits_non_zero(tmp_path):
    """The real settings, a database and a Redis on closed ports, a 0755 data folder, a URL the
    settings do not name, no console proxy: every check fails or says why it could not check."""
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    closed = stack.free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("VMSITE_SUITE_")}
    environment.update(DJANGO_SETTINGS_MODULE="vmsite.settings", VMSITE_DATA_DIR=str(folder),
                       DATABASE_URL=f"postgres://vmsite:pw@127.0.0.1:{closed}/vmsite",
                       REDIS_URL=f"redis://127.0.0.1:{closed}/0", CONSOLE_PROXY_PORT=str(closed))
    result = subprocess.run([str(stack.VENV_BIN / "python"), "manage.py", "doctor", "--url", "http://127.0.0.2:8000"],
                            cwd=stack.ROOT, env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: 10 of 11 checks found a problem."
    lines = result.stdout.splitlines()
    levels = {line[5:].split(":")[0]: line[:4].strip() for line in lines if not line.startswith(" ")}
    assert levels == {"Database": "FAIL", "Migrations": "WARN", "Redis": "FAIL", "Workers": "WARN", "Beat": "WARN",
                      "Listeners": "WARN", "Console proxy": "FAIL", "Site URL": "FAIL", "HTTPS": "OK",
                      "Data folder": "FAIL", "Clocks": "WARN"}
    assert sum(line.startswith("     fix: ") for line in lines) == 10  # one fix line under each problem
    assert f"FAIL Database: PostgreSQL vmsite at 127.0.0.1:{closed} does not answer" in result.stdout
    assert f"FAIL Console proxy: ws://127.0.0.2:{closed}/ cannot be reached" in result.stdout
    assert "FAIL Site URL: 127.0.0.2 is not in ALLOWED_HOSTS" in result.stdout
    assert f"{folder} is mode 0755, open to other users" in result.stdout


@pytest.mark.integration
def test_redis_on_a_closed_port_fails_and_the_checks_that_need_it_say_so(settings):
    port = stack.free_port()
    settings.REDIS_URL = settings.CELERY_BROKER_URL = f"redis://:secret@127.0.0.1:{port}/0"
    results = only({"Redis", "Workers", "Listeners", "Clocks"}, Probe(site_url=None))
    level, found, fix = results["Redis"]
    assert level == FAIL and found.startswith(f"redis://127.0.0.1:{port}/0 does not answer")
    assert "secret" not in found and "REDIS_URL" in fix
    for name in ("Workers", "Listeners", "Clocks"):
        assert results[name][:2] == (WARN, "Not checked: Redis does not answer."), name


@pytest.mark.integration
def test_no_worker_and_no_listener_fail_and_a_clock_far_off_is_named(settings, tmp_path):
    redis_server = OwnRedis(tmp_path / "redis")  # a Redis of this test's own: no worker, no listener on it
    redis_server.start()
    try:
        settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_server.url_of_this_process  # as client() reads
        Host.objects.create(name="unwatched", transport="test", address="/nonexistent.xml")
        results = only({"Workers", "Listeners", "Clocks"}, Probe(site_url=None))
        assert results["Workers"][0] == FAIL and "No Celery worker answered within 1 s" in results["Workers"][1]
        assert results["Listeners"][:2] == (FAIL, "1 of 1 enabled hosts watched by no listener: unwatched. "
                                                   "Their pages do not update until the next reconcile.")
        assert "manage.py listen" in results["Listeners"][2]
        assert results["Clocks"][0] == OK

        client = redis_server.client()
        now = time.time()
        client.zadd(LISTENERS_KEY, {"elsewhere:42:abc": now + 30})  # a listener beating with a clock 30 s ahead
        # (shown a little less: the check reads it after the workers' second of answers)
        assert listener_offsets(client, now=now) == {"listener elsewhere:42:abc": pytest.approx(30)}
        level, found, fix = only({"Clocks"}, Probe(site_url=None))["Clocks"]
        assert level == FAIL and re.search(r"listener elsewhere:42:abc \+(2[89]|30)\.\d s", found) and "NTP" in fix
    finally:
        redis_server.stop()


# -- everything running: the suite's stack

@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_every_check_passes_against_the_running_stack_on_the_page_and_in_the_command(
        celery_worker, console_proxy, redis_ready, stack_log_dir, tmp_path, settings):
    # The suite's own data folder is open to qemu on purpose: point the checks (and the command's
    # test settings, which add the pytest-xdist worker's name) at a private one.
    private = tmp_path / "private"
    settings.DATA_DIR = private / os.environ.get("PYTEST_XDIST_WORKER", "")
    settings.DATA_DIR.mkdir(mode=0o700, parents=True)
    node = tmp_path / "node.xml"
    node.write_text((stack.ROOT / "tests" / "virt" / "samples" / "node.xml").read_text())
    Host.objects.create(name="watched", transport="test", address=str(node))
    admin = Client(HTTP_HOST=f"127.0.0.1:{settings.VMSITE_PORT}")  # the suite's own site origin
    admin.force_login(get_user_model().objects.create_superuser("doctor", password="x"))

    before = {row.name: row.level for row in admin.get("/system/").context["results"]}
    assert before["Listeners"] == FAIL and before["Beat"] == FAIL

    listener = stack.start_process("listener", [str(stack.VENV_BIN / "python"), "manage.py", "listen"],
                                   log_dir=stack_log_dir, env=stack.stack_env())
    beat = stack.start_process("beat", [str(stack.VENV_BIN / "celery"), "-A", "vmsite", "beat", "--loglevel", "INFO",
                                        "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
                               log_dir=stack_log_dir, env=stack.stack_env(SWEEP_INTERVAL="1"))  # a first run soon
    try:
        probe_names = {"Listeners", "Beat"}
        stack.wait_until(lambda: all(level == OK for level, *_ in only(probe_names, Probe(site_url=None)).values()),
                         timeout=30, message="the listener to hold the host and beat to run a task")
        response = admin.get("/system/")
        assert response.status_code == 200
        shown = {row.name: (row.level, row.found) for row in response.context["results"]}
        assert {name: level for name, (level, _found) in shown.items()} == dict.fromkeys(shown, OK), shown
        assert len(shown) == 11
        assert b'id="nav-system"' in response.content and b"All 11 checks passed" in response.content
        assert "answers as vmsite's console proxy" in shown["Console proxy"][1]
        queue, settings.OPERATIONS_QUEUE = settings.OPERATIONS_QUEUE, "elsewhere"  # the worker takes another
        level, found, fix = only({"Workers"}, Probe(site_url=None))["Workers"]
        assert level == FAIL and found.endswith("but none takes the queue 'elsewhere'.") and "--queues elsewhere" in fix
        settings.OPERATIONS_QUEUE = queue
        foreign = f"http://127.0.0.1:{stack.free_port()}"  # a page the proxy's settings do not name
        level, found, fix = only({"Console proxy"}, Probe(site_url=foreign))["Console proxy"]
        assert (level, found) == (FAIL, f"ws://127.0.0.1:{console_proxy}/ refuses pages of {foreign} (Invalid Origin).")
        assert fix.startswith(f"Add {foreign} to CSRF_TRUSTED_ORIGINS")
        named = f"http://vmsite.test:{settings.VMSITE_PORT}"  # a name no resolver knows (RFC 6761)
        level, found, _fix = only({"Console proxy"}, Probe(site_url=named))["Console proxy"]
        assert level == FAIL and found.startswith(f"ws://vmsite.test:{console_proxy}/ cannot be reached")
        level, found, _fix = only({"Console proxy"}, Probe(site_url=named, resolve={"vmsite.test": "127.0.0.1"}))[
            "Console proxy"]  # --resolve: reached at 127.0.0.1, where the proxy refuses a page of that name
        assert (level, found) == (FAIL, f"ws://vmsite.test:{console_proxy}/ refuses pages of {named} (Invalid Origin).")
        assert shown["Listeners"][1] == "1 enabled host watched, by 1 listener."
        assert shown["Clocks"][1].startswith("2 workers and listeners within ")

        environment = stack.stack_env(VMSITE_SUITE_VMSITE_DATA_DIR=str(private))
        command = subprocess.run([str(stack.VENV_BIN / "python"), "manage.py", "doctor", "--url",
                                  f"http://127.0.0.1:{settings.VMSITE_PORT}"], cwd=stack.ROOT, env=environment,
                                 capture_output=True, text=True, timeout=60)
        assert command.returncode == 0, command.stdout + command.stderr
        lines = command.stdout.splitlines()
        assert lines[-1] == "All 11 checks passed."
        assert [line.split()[0] for line in lines[:-1]] == ["OK"] * 11
    finally:
        beat.stop()
        listener.stop()
