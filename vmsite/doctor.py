"""The self-check of an installation: `manage.py doctor` and the administrators' System page.

Each check is a small function of a `Probe` (what it found out once, shared by the checks: Redis,
the workers' answers, the URL the site is reached at) that returns a `CheckResult`: OK, WARN or
FAIL, what was found in words and, when not OK, the fix in one line. The command prints them and
exits non-zero on any problem; the page shows the same list. Nothing here changes anything.
"""
from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import redis
import websocket
from django.conf import settings
from kombu import Connection
from kombu.pidbox import Mailbox
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from events.watching import lease_holders
from vmsite.origins import normalise, origin_allowed
from vmsite.private import data_dir_problems

OK, WARN, FAIL = "OK", "WARN", "FAIL"
SHOWN = 5  # names listed in a result; the count says how many more
CLOCK_COMMAND = "vmsite_clock"  # the workers' control command (vmsite/celery.py)
# How long the checks wait: for the workers' answers, for Redis, for the console proxy.
PING_SECONDS = 1.0
CONNECT_SECONDS = 3.0
# Clocks further apart than this: leases (9 s), heartbeats, second-factor codes (30 s) and console
# tokens start to misbehave well before a minute.
CLOCK_SKEW_LIMIT = 2.0
# Beat may be this late on its shortest interval before it counts as stopped (it writes each run as it
# sends it: CELERY_BEAT_SYNC_EVERY).
BEAT_SLACK_SECONDS = 60


@dataclass(frozen=True)
class CheckResult:
    name: str
    level: str
    found: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.level == OK


@dataclass(frozen=True)
class WorkerClock:
    """One worker's answer to the clock command: its name, its time when it answered, the time
    here when the answer arrived, and the queues it takes."""

    name: str
    their_time: float | None
    our_time: float
    queues: tuple[str, ...] = ()

    @property
    def skew(self) -> float | None:
        return None if self.their_time is None else self.their_time - self.our_time


@dataclass
class Probe:
    """What the checks share, each asked once: the site's URL as used (the request's, or --url), and
    addresses to reach host names at without looking them up (--resolve: a name DNS does not have yet)."""

    site_url: str | None
    data_dir: Path = field(default_factory=lambda: settings.DATA_DIR)
    resolve: dict[str, str] = field(default_factory=dict)

    @cached_property
    def database_error(self) -> str | None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as exc:
            return first_line(exc)
        return None

    @cached_property
    def redis_error(self) -> str | None:
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            return first_line(exc)
        return None

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=CONNECT_SECONDS,
                                    socket_timeout=CONNECT_SECONDS)

    @cached_property
    def workers(self) -> list[WorkerClock]:
        """Every worker's answer to the clock command within PING_SECONDS (none if Redis is down)."""
        if self.redis_error:
            return []
        answers: list[WorkerClock] = []

        def arrived(reply: dict) -> None:
            for name, body in reply.items():
                body = body if isinstance(body, dict) else {}
                answers.append(WorkerClock(name=name, their_time=body.get("time"), our_time=time.time(),
                                           queues=tuple(body.get("queues", ()))))

        # Celery's own broadcast publishes through the app's producer pool; a mailbox on a connection
        # of our own asks the broker the settings name now, and leaves the app's pool alone.
        mailbox = Mailbox(getattr(settings, "CELERY_CONTROL_EXCHANGE", "celery"), type="fanout", accept=["json"],
                          serializer="json")
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=CONNECT_SECONDS) as broker:
            mailbox(broker)._broadcast(CLOCK_COMMAND, arguments={}, reply=True, timeout=PING_SECONDS, callback=arrived)
        return sorted(answers, key=lambda answer: answer.name)


@dataclass(frozen=True)
class Verdict:
    """What a check found: its level, in words, and the fix when not OK."""

    level: str
    found: str
    fix: str = ""


CHECKS: list[tuple[str, Callable[[Probe], Verdict]]] = []  # in the order they are shown


def check(name: str):
    """Registers a check under the name it is shown with."""
    def register(function: Callable[[Probe], Verdict]) -> Callable[[Probe], Verdict]:
        CHECKS.append((name, function))
        return function
    return register


def run_checks(probe: Probe) -> list[CheckResult]:
    try:
        return [run_check(name, function, probe) for name, function in CHECKS]
    finally:
        if "redis" in probe.__dict__:  # opened by a check
            probe.redis.close()


def run_check(name: str, function: Callable[[Probe], Verdict], probe: Probe) -> CheckResult:
    """One check; one that cannot even ask (a table missing, a service gone mid-way) says why."""
    try:
        verdict = function(probe)
    except Exception as exc:  # noqa: BLE001 - the doctor reports every failure, it never stops at one
        verdict = Verdict(FAIL, f"The check could not finish: {type(exc).__name__}: {first_line(exc)}",
                          "Mend the problems above first (the database migrated, Redis reachable).")
    return CheckResult(name, verdict.level, verdict.found, verdict.fix)


@check("Database")
def check_database(probe: Probe) -> Verdict:
    return _answers(_database_label(), probe.database_error,
                    "Start the database server, or correct DATABASE_URL (host, port, user, password).")


@check("Migrations")
def check_migrations(probe: Probe) -> Verdict:
    if probe.database_error:
        return _not_checked("the database does not answer")
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        pending = [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]
        return Verdict(FAIL, f"{len(pending)} not applied: {_listed(pending)}.",
                       "Run `manage.py migrate` (as vmsite's user), then restart the services.")
    return Verdict(OK, "All applied.")


@check("Redis")
def check_redis(probe: Probe) -> Verdict:
    return _answers(redis_label(settings.REDIS_URL), probe.redis_error,
                    "Start Redis, or correct REDIS_URL (host, port, password) on every node.")


def _answers(where: str, error: str | None, fix: str) -> Verdict:
    """A server's check: it answers, or what it said instead and how to mend it."""
    if error:
        return Verdict(FAIL, f"{where} does not answer: {error}", fix)
    return Verdict(OK, f"{where} answers.")


@check("Workers")
def check_workers(probe: Probe) -> Verdict:
    if probe.redis_error:
        return _not_checked("Redis does not answer")
    answers = probe.workers
    if not answers:
        return Verdict(FAIL, f"No Celery worker answered within {PING_SECONDS:g} s: operations stay queued.",
                       "Start the worker service (`celery -A vmsite worker`, deploy/systemd/vmsite-worker.service).")
    old = [answer.name for answer in answers if answer.their_time is None]
    takers = [answer.name for answer in answers if settings.OPERATIONS_QUEUE in answer.queues]
    names = _listed([answer.name for answer in answers])
    if not takers and not old:
        return Verdict(FAIL, f"{len(answers)} answered ({names}) but none takes the queue "
                       f"'{settings.OPERATIONS_QUEUE}'.",
                       f"Start a worker with `--queues {settings.OPERATIONS_QUEUE}` (or correct OPERATIONS_QUEUE).")
    if old:
        return Verdict(WARN, f"{len(answers)} answered ({names}); {_listed(old)} run older code "
                       "(no clock answer).", "Restart those workers so that every node runs this version.")
    return Verdict(OK, f"{len(answers)} answered: {names}.")


@check("Beat")
def check_beat(probe: Probe) -> Verdict:
    if probe.database_error:
        return _not_checked("the database does not answer")
    from django_celery_beat.models import PeriodicTask

    tasks = PeriodicTask.objects.filter(name__in=list(settings.CELERY_BEAT_SCHEDULE))
    fix = ("Start the beat service, exactly one for the installation (`celery -A vmsite beat --scheduler "
           "django_celery_beat.schedulers:DatabaseScheduler`, deploy/systemd/vmsite-beat.service).")
    if not tasks.exists():
        return Verdict(FAIL, "Beat has never run against this database: no sweeps, no reconciles, "
                       "no scheduled backups.", fix)
    last = tasks.exclude(last_run_at=None).order_by("-last_run_at").values_list("last_run_at", flat=True).first()
    if last is None:
        return Verdict(FAIL, "Beat started once but has sent no task yet.", fix)
    age = (timezone.now() - last).total_seconds()
    if age > beat_limit_seconds():
        return Verdict(FAIL, f"Beat's last run was {_duration(age)} ago (at {last:%Y-%m-%d %H:%M:%S} UTC).",
                       fix)
    return Verdict(OK, f"Last run {_duration(max(age, 0))} ago.")


def beat_limit_seconds() -> float:
    """How old beat's last run may be: its shortest interval, and some slack."""
    intervals = [entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
                 if isinstance(entry["schedule"], (int, float))]
    return min(intervals, default=0) + BEAT_SLACK_SECONDS


@check("Listeners")
def check_listeners(probe: Probe) -> Verdict:
    if probe.database_error or probe.redis_error:
        return _not_checked("the database does not answer" if probe.database_error else "Redis does not answer")
    from hosts.models import Host

    hosts = dict(Host.objects.filter(enabled=True).values_list("pk", "name"))
    if not hosts:
        return Verdict(OK, "No enabled host to watch.")
    holders = lease_holders(probe.redis, list(hosts))
    unwatched = [hosts[host_id] for host_id, holder in holders.items() if holder is None]
    if unwatched:
        return Verdict(FAIL, f"{len(unwatched)} of {len(hosts)} enabled hosts watched by no listener: "
                       f"{_listed(unwatched)}. Their pages do not update until the next reconcile.",
                       "Start the listener service (`manage.py listen`, deploy/systemd/vmsite-listener.service).")
    listeners = len(set(holders.values()))
    return Verdict(OK, f"{_counted(len(hosts), 'enabled host', 'enabled hosts')} watched, by "
                   f"{_counted(listeners, 'listener', 'listeners')}.")


@check("Console proxy")
def check_console_proxy(probe: Probe) -> Verdict:
    """A websocket to the proxy as a page of the site opens it, with no token: vmsite's proxy, and
    only it, answers 403 Forbidden (the Origin accepted, the token refused)."""
    site = normalise(probe.site_url)
    if site is None:
        return _no_url()
    url = console_proxy_url(probe.site_url)
    fix_url = "correct CONSOLE_PROXY_URL (unset: the page's host on CONSOLE_PROXY_PORT; behind nginx: /websockify)"
    try:
        opened = open_websocket(url, origin=_origin_header(probe.site_url), resolve=probe.resolve)
    except websocket.WebSocketBadStatusException as exc:
        reason = str(exc).split(" -+-+- ")[0].removeprefix("Handshake status ")
        if exc.status_code == 403 and reason.endswith("Forbidden"):
            return Verdict(OK, f"{url} answers as vmsite's console proxy, for pages of {shown(site)}.")
        if exc.status_code == 403 and "Invalid Origin" in reason:
            return Verdict(FAIL, f"{url} refuses pages of {shown(site)} (Invalid Origin).",
                           f"Add {shown(site)} to CSRF_TRUSTED_ORIGINS (or SITE_ORIGINS) where the console proxy runs.")
        return Verdict(FAIL, f"{url} answered {reason}: not vmsite's console proxy.",
                       f"Carry {urlsplit(url).path or '/'} to the console proxy in the reverse proxy, or {fix_url}.")
    except (OSError, websocket.WebSocketException) as exc:
        return Verdict(FAIL, f"{url} cannot be reached: {first_line(exc)}",
                       f"Start the consoles service (`manage.py consoleproxy`), or {fix_url}.")
    opened.close()
    return Verdict(FAIL, f"{url} opened a websocket with no console token.",
                   f"Only vmsite's console proxy should answer there: {fix_url}.")


def open_websocket(url: str, *, origin: str, resolve: dict[str, str]) -> websocket.WebSocket:
    """A websocket to `url`; a host name that `resolve` maps is reached at that address instead of
    being looked up (curl's --resolve), its certificate still checked for the name."""
    parts = urlsplit(url)
    address = resolve.get(parts.hostname or "")
    if address is None:
        return websocket.create_connection(url, timeout=CONNECT_SECONDS, origin=origin)
    secure = parts.scheme == "wss"
    sock = socket.create_connection((address, parts.port or (443 if secure else 80)), timeout=CONNECT_SECONDS)
    try:
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        return websocket.create_connection(url, timeout=CONNECT_SECONDS, origin=origin, socket=sock)
    except BaseException:
        sock.close()
        raise


def console_proxy_url(site_url: str) -> str:
    """Where a page of the site opens the console (static/vmsite/console_vnc.js does the same)."""
    parts = urlsplit(site_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    configured = settings.CONSOLE_PROXY_URL
    if configured.startswith("/"):
        return f"{scheme}://{parts.netloc}{configured}"
    if configured:
        return configured
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return f"{scheme}://{host}:{settings.CONSOLE_PROXY_PORT}/"


@check("Site URL")
def check_site_url(probe: Probe) -> Verdict:
    site = normalise(probe.site_url)
    if site is None:
        return _no_url()
    domain, _port = split_domain_port(urlsplit(site).netloc)
    if not validate_host(domain, settings.ALLOWED_HOSTS):
        return Verdict(FAIL, f"{domain} is not in ALLOWED_HOSTS: every page answers 400.",
                       f"Add {domain} to ALLOWED_HOSTS.")
    if not origin_allowed(site):
        return Verdict(FAIL, f"{shown(site)} is not one of the site's origins: live updates, uploads and "
                       "consoles refuse its pages.", f"Add {shown(site)} to CSRF_TRUSTED_ORIGINS.")
    if not csrf_origin_accepted(_origin_header(probe.site_url)):
        return Verdict(FAIL, f"Forms sent from pages of {shown(site)} fail Django's CSRF check (their Origin).",
                       f"Add {shown(site)} to CSRF_TRUSTED_ORIGINS, or set TRUST_PROXY_HTTPS_HEADER=true.")
    return Verdict(OK, f"{shown(site)} is allowed (ALLOWED_HOSTS and the site's origins).")


@check("HTTPS")
def check_https(probe: Probe) -> Verdict:
    site = normalise(probe.site_url)
    if site is None:
        return _no_url()
    if site.startswith("http:"):
        if settings.SECURE_SSL_REDIRECT:
            return Verdict(WARN, f"HTTPS=true, yet the site is reached over plain HTTP ({shown(site)}).",
                           "Behind a TLS proxy that sets X-Forwarded-Proto, set TRUST_PROXY_HTTPS_HEADER=true; "
                           "else give the https:// URL.")
        if _is_loopback(urlsplit(site).hostname or ""):
            return Verdict(OK, "Plain HTTP on this machine only (make run).")
        return Verdict(WARN, f"{shown(site)} is plain HTTP: passwords and session cookies cross the network "
                       "in clear.", "Serve it through TLS (deploy/: nginx) and set HTTPS=true.")
    missing = [words for wanted, words in (
        (settings.SESSION_COOKIE_SECURE, "session cookie not HTTPS-only"),
        (settings.CSRF_COOKIE_SECURE, "CSRF cookie not HTTPS-only"),
        (settings.SECURE_HSTS_SECONDS > 0, "no HSTS"),
        (settings.SECURE_SSL_REDIRECT, "plain HTTP not redirected"),
    ) if not wanted]
    if missing:
        return Verdict(FAIL, f"{shown(site)} is HTTPS but: {', '.join(missing)}.",
                       "Set HTTPS=true (it turns all four on; leave SECURE_COOKIES and HSTS_SECONDS unset).")
    if settings.SECURE_SSL_REDIRECT and not settings.SECURE_PROXY_SSL_HEADER:
        return Verdict(WARN, "HTTPS=true without TRUST_PROXY_HTTPS_HEADER: behind a TLS proxy every "
                       "page redirects to itself.", "Set TRUST_PROXY_HTTPS_HEADER=true if nginx sets "
                       "X-Forwarded-Proto (deploy/nginx does).")
    return Verdict(OK, f"HTTPS-only cookies, HSTS for {_duration(settings.SECURE_HSTS_SECONDS)}, "
                   "plain HTTP redirected.")


@check("Data folder")
def check_data_dir(probe: Probe) -> Verdict:
    if not probe.data_dir.exists():
        return Verdict(OK, f"{probe.data_dir} is not made yet (it is made private when first used).")
    problems = data_dir_problems(probe.data_dir)
    if problems:
        return Verdict(FAIL, f"{probe.data_dir} is open to others: " + "; ".join(problems) + ".",
                       f"As vmsite's user: `manage.py private_data_dir` (or chmod -R go-rwx {probe.data_dir}).")
    return Verdict(OK, f"{probe.data_dir} is private to this user (folders 0700, files 0600).")


@check("Clocks")
def check_clocks(probe: Probe) -> Verdict:
    """Each worker's time as it answered, and each listener's time as it last beat, against this
    process's clock."""
    if probe.redis_error:
        return _not_checked("Redis does not answer")
    offsets = {f"worker {answer.name}": answer.skew for answer in probe.workers if answer.skew is not None}
    offsets.update(listener_offsets(probe.redis, now=time.time()))
    if not offsets:
        return Verdict(OK, "No worker or listener to compare with.")
    off = {who: skew for who, skew in offsets.items() if abs(skew) > CLOCK_SKEW_LIMIT}
    if off:
        words = [f"{who} {skew:+.1f} s" for who, skew in sorted(off.items())]
        return Verdict(FAIL, f"Clocks off from this machine's by more than {CLOCK_SKEW_LIMIT:g} s: "
                       f"{_listed(words)}.", "Run NTP (systemd-timesyncd or chrony) on every node.")
    worst = max(abs(skew) for skew in offsets.values())
    return Verdict(OK, f"{_counted(len(offsets), 'worker or listener', 'workers and listeners')} within "
                   f"{worst:.1f} s of this machine's clock.")


def listener_offsets(client: redis.Redis, *, now: float) -> dict[str, float]:
    """Each live listener's clock against `now`: it beats every ROUND_SECONDS with its own time, so a
    beat from the future, or one older than a round, is its clock (or a stalled listener)."""
    from listener.lease import LISTENERS_KEY, ROUND_SECONDS

    return {f"listener {member.decode()}": beat_offset(beat, now=now, round_seconds=ROUND_SECONDS)
            for member, beat in client.zrange(LISTENERS_KEY, 0, -1, withscores=True)}


def beat_offset(beat: float, *, now: float, round_seconds: float) -> float:
    """How far a clock that beats every `round_seconds` must be off to have written `beat` by `now`:
    0 within the last round, positive for a beat from the future, negative for an older one."""
    ahead = beat - now
    return ahead if ahead > 0 else min(ahead + round_seconds, 0.0)


def default_site_url() -> str | None:
    """The URL the command checks without --url: the first public origin the settings name."""
    for origin in (*settings.CSRF_TRUSTED_ORIGINS, *settings.SITE_ORIGINS):
        if "*" not in origin and normalise(origin):
            return origin
    return None


def redis_label(url: str) -> str:
    """The Redis URL without its password."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _database_label() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite {db['NAME']}"
    return f"PostgreSQL {db['NAME']} at {db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"


def _not_checked(why: str) -> Verdict:
    return Verdict(WARN, f"Not checked: {why}.", "Mend that first (above).")


def _no_url() -> Verdict:
    return Verdict(WARN, "Not checked: no URL of the site known.",
                   "Give the URL users open: `manage.py doctor --url https://vmsite.example.org`.")


def shown(origin: str) -> str:
    """An origin as people write it: without the scheme's own port."""
    return origin.removesuffix(":443") if origin.startswith("https:") else origin.removesuffix(":80")


def _origin_header(site_url: str) -> str:
    parts = urlsplit(site_url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def csrf_origin_accepted(site: str) -> bool:
    """Would Django's CSRF check take a form posted from a page of `site`? Asked of Django's own
    middleware, with the request as a TLS proxy hands it on (X-Forwarded-Proto set, as deploy/nginx
    does; it counts only with TRUST_PROXY_HTTPS_HEADER)."""
    parts = urlsplit(site)
    request = HttpRequest()
    request.method = "POST"
    request.META = {"HTTP_ORIGIN": site, "HTTP_HOST": parts.netloc, "HTTP_X_FORWARDED_PROTO": parts.scheme}
    return CsrfViewMiddleware(lambda _request: None)._origin_verified(request)


def _is_loopback(hostname: str) -> bool:
    return hostname in ("localhost", "::1") or hostname.startswith("127.")


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _counted(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
