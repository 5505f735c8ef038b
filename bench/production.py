"""The production path under load: the stack deploy/install.sh installs, behind Debian's nginx
with TLS (started as tests/deploy/test_production.py starts it: unit files' command lines, the
vmsite user, PostgreSQL, a Redis of its own, a certificate from a test CA).

What it measures:

* `browsing`: --users simulated operators (locust, headless, --seconds long, in its own
  virtualenv: --locust) each opening a page every 1 to 4 s (bench/locustfile.py: dashboard, VM
  list, a VM's page, hosts, storage, operations, networks) over https through nginx, while
  --sockets live sockets (/ws/live/ through nginx, wss) stay open: requests, failures, p50/p95/max
  page time, per page and overall, from locust's figures; the web process's and nginx's CPU;
* `live_sockets`: how many of the --sockets opened, how many were still open at the end, and the
  live messages they received meanwhile (a guest is started and stopped every few seconds);
* `upload`: a --upload-mib MiB volume through nginx (the upload page's protocol: POST, then the
  file over wss, tests/storage/transfer.py) against `virsh vol-upload` of the same file to the
  same pool, taking turns, --upload-rounds each; MiB/s, the ratio, and the server's CPU seconds per
  GiB (the web process; nginx's too).

Run:  .venv/bin/python bench/production.py [--users 200 --sockets 200 --seconds 60 --index 144
        --locust /path/to/venv/bin/locust]
Needs root, nginx, PostgreSQL's binaries (it starts a server of its own), the deployment's
virtualenv (tests/deploy) and locust
(`python3 -m venv V && V/bin/pip install locust`); stops everything it started and drops its database.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.events import _ws_frame  # noqa: E402
from bench.inventory import emit, process_tree_cpu_seconds as cpu_seconds, progress  # noqa: E402

BENCH = "production"
MIB = 1024 * 1024


def resolve_site_to(server_name: str, address: str) -> None:
    """This process reaches the site's name at nginx's address (no /etc/hosts entry needed)."""
    original = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        return original(address if host == server_name else host, *args, **kwargs)

    socket.getaddrinfo = resolve


@contextmanager
def own_postgres(max_connections: int) -> Iterator[str]:
    """A PostgreSQL server of the bench's own, on a free port: 200 users must not use up the
    connections of the machine's server, which other work shares. Yields its DATABASE_URL."""
    from tests.stack import free_port, port_open

    binaries = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    folder = Path(tempfile.mkdtemp(prefix="vmsite-bench-postgres-"))
    folder.chmod(0o755)
    shutil.chown(folder, "postgres", "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_postgres, str(binaries / "initdb"), "-D", str(folder / "data"), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([*as_postgres, str(binaries / "postgres"), "-D", str(folder / "data"), "-p", str(port),
                               "-k", str(folder), "-c", "listen_addresses=127.0.0.1", "-c",
                               f"max_connections={max_connections}"], stdout=subprocess.DEVNULL,
                              stderr=open(folder / "server.log", "w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        password = secrets.token_hex(8)
        for sql in (f"CREATE ROLE vmsite LOGIN PASSWORD '{password}'", "CREATE DATABASE vmsite OWNER vmsite"):
            subprocess.run([*as_postgres, "psql", "-h", "127.0.0.1", "-p", str(port), "-d", "postgres", "-c", sql],
                           check=True, capture_output=True, cwd="/")
        progress(f"own PostgreSQL on 127.0.0.1:{port}, max_connections={max_connections}")
        yield f"postgres://vmsite:{password}@127.0.0.1:{port}/vmsite"
    finally:
        os.killpg(server.pid, signal.SIGINT)  # fast shutdown
        server.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def as_debian_nginx(deployment) -> None:
    """The test's nginx has one worker of 256 connections; Debian's nginx.conf has one worker per
    core of 768 each, and a live socket holds two connections (the browser's and the web server's)."""
    conf = deployment.base / "nginx" / "nginx.conf"
    conf.write_text(conf.read_text().replace("worker_processes 1;", "worker_processes auto;")
                    .replace("worker_connections 256;", "worker_connections 768;"))
    os.kill(deployment.processes["nginx"].pid, signal.SIGHUP)
    time.sleep(2)  # the new workers take over


def deployment_facts(base: Path, guests: int, session_count: int, pool_name: str) -> dict:
    """Run in a child process (--facts) with the deployment's settings, database and secret key:
    logged-in sessions, the VMs' pages, the pool's id."""
    from tests.deploy.units import read_environment_file

    for name in ("vmsite.env", "local.env"):
        os.environ.update(read_environment_file(base / "etc" / name))
    import django

    django.setup()
    from domains.models import Domain
    from storage.models import StoragePool

    deadline = time.monotonic() + 120
    while Domain.objects.count() < guests or not StoragePool.objects.filter(name=pool_name).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the listener did not store the guests and the pool in 120 s")
        time.sleep(0.5)
    return {"cookies": sessions(session_count), "pool": StoragePool.objects.get(name=pool_name).pk,
            "vm_pages": [f"/vms/{pk}/" for pk in Domain.objects.values_list("pk", flat=True)]}


def sessions(count: int) -> list[str]:
    """Logged-in sessions: an administrator's and viewers' of every host, alternately."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import Grant, Role
    from hosts.models import Host

    model = get_user_model()
    admin = model.objects.create_superuser(f"bench-admin-{secrets.token_hex(3)}", password=None)
    viewer = model.objects.create_user(f"bench-viewer-{secrets.token_hex(3)}", password=None)
    for host in Host.objects.all():
        Grant.objects.create(user=viewer, host=host, role=Role.VIEWER)
    cookies = []
    for number in range(count):
        client = Client()
        client.force_login(admin if number % 2 == 0 else viewer)
        cookies.append(client.cookies["sessionid"].value)
    return cookies


def masked_frame(first_byte: int, payload: bytes) -> bytes:
    """A short client frame (RFC 6455: clients mask), such as a pong."""
    mask = os.urandom(4)
    return bytes([first_byte, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class LiveSockets:
    """--sockets live sockets through nginx (wss), held open by one asyncio thread, counting messages."""

    def __init__(self, deployment, cookies: list[str]) -> None:
        self.deployment, self.cookies = deployment, cookies
        self.opened = self.failed = self.closed = self.messages = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self.thread.start()
        self.ready.wait(timeout=300)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._open_all())
        self.ready.set()
        self.loop.run_forever()

    async def _open_all(self) -> None:
        context = ssl.create_default_context(cafile=str(self.deployment.ca))
        semaphore = asyncio.Semaphore(10)
        await asyncio.gather(*(self._open(cookie, context, semaphore) for cookie in self.cookies))

    async def _open(self, cookie: str, context: ssl.SSLContext, semaphore: asyncio.Semaphore) -> None:
        from tests.deploy.test_production import SERVER_NAME

        try:
            async with semaphore:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    "::1", self.deployment.https_port, ssl=context, server_hostname=SERVER_NAME), 30)
                key = base64.b64encode(os.urandom(16)).decode()
                writer.write((f"GET /ws/live/ HTTP/1.1\r\nHost: {SERVER_NAME}:{self.deployment.https_port}\r\n"
                              f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                              f"Sec-WebSocket-Version: 13\r\nOrigin: {self.deployment.url}\r\n"
                              f"Cookie: sessionid={cookie}\r\n\r\n").encode())
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                if b" 101 " not in head.split(b"\r\n", 1)[0]:
                    raise RuntimeError(head[:80])
        except Exception as exc:  # counted: a socket that a page could not open
            progress(f"live socket refused: {exc!r}")
            self.failed += 1
            return
        self.opened += 1
        self.tasks.append(asyncio.ensure_future(self._read(reader, writer)))

    async def _read(self, reader, writer) -> None:
        try:
            while True:
                opcode, payload = await _ws_frame(reader)
                if opcode == 8:
                    break
                if opcode == 9:  # the web server's ping every 20 s: a browser answers, or it closes
                    writer.write(masked_frame(0x8A, payload))
                    continue
                self.messages += 1
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        self.closed += 1
        writer.close()

    def stop(self) -> None:
        def cancel() -> None:
            for task in self.tasks:
                task.cancel()
            self.loop.stop()

        self.loop.call_soon_threadsafe(cancel)
        self.thread.join(timeout=10)


def run_locust(args, deployment, cookies: list[str], vm_pages: list[str], work: Path) -> list[dict]:
    from tests.deploy.test_production import SERVER_NAME

    (work / "sessions").write_text("\n".join(cookies))
    (work / "vm-pages").write_text("\n".join(vm_pages))
    env = {**os.environ, "LOCUST_SESSIONS": str(work / "sessions"), "LOCUST_VM_PAGES": str(work / "vm-pages"),
           "LOCUST_CA": str(deployment.ca), "LOCUST_SERVER_NAME": SERVER_NAME, "LOCUST_ADDRESS": "::1"}
    argv = [args.locust, "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "--users", str(args.users),
            "--spawn-rate", str(args.spawn_rate), "--run-time", f"{args.seconds}s", "--host", deployment.url,
            "--csv", str(work / "locust"), "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"]
    subprocess.run(argv, env=env, cwd=work, check=False, stdout=subprocess.DEVNULL,
                   stderr=open(work / "locust.log", "w"), timeout=args.seconds + 120)
    with open(work / "locust_stats.csv") as stats:
        return list(csv.DictReader(stats))


def page_figures(rows: list[dict], **extra) -> None:
    for row in rows:
        if not row["Request Count"] or row["Request Count"] == "0":
            continue
        emit({"bench": BENCH, "operation": "browsing", "page": row["Name"], **extra,
              "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
              "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]),
              "max_ms": round(float(row["Max Response Time"])),
              "requests_per_s": round(float(row["Requests/s"]), 1)})


def database_connections(port: int) -> dict[str, int]:
    """PostgreSQL connections of the deployment's processes (the vmsite user's) now, per process name."""
    import pwd

    uid = pwd.getpwnam("vmsite").pw_uid
    listing = subprocess.run(["ss", "-Htnp", "state", "established", "dst", f"127.0.0.1:{port}"],
                             capture_output=True, text=True).stdout
    counts: dict[str, int] = {}
    for line in listing.splitlines():
        if 'users:(("' not in line:
            continue
        owner = line.split('users:(("', 1)[1]
        name, pid = owner.split('"', 1)[0], int(owner.split("pid=", 1)[1].split(",", 1)[0])
        try:
            if Path(f"/proc/{pid}").stat().st_uid != uid:
                continue
        except OSError:
            continue
        counts[name] = counts.get(name, 0) + 1
    return counts


class ConnectionPeak:
    """The most PostgreSQL connections the deployment held at once, sampled every second."""

    def __init__(self, port: int) -> None:
        self.port, self.peak, self.stopping = port, {}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(1):
            now = database_connections(self.port)
            if sum(now.values()) > sum(self.peak.values()):
                self.peak = now

    def stop(self) -> dict[str, int]:
        self.stopping.set()
        self.thread.join(timeout=5)
        return self.peak


def churn_guest(domain, stopping: threading.Event) -> None:
    """Something for the live sockets to hear: a guest started and stopped every few seconds."""
    while not stopping.wait(3):
        try:
            domain.destroy() if domain.isActive() else domain.create()
        except Exception as exc:  # the bench goes on; the sockets hear less
            progress(f"churn: {exc}")


def upload_figures(args, deployment, cookie: str, pool_name: str, pool_pk: int, work: Path) -> None:
    from tests.deploy.test_production import SERVER_NAME
    from tests.storage.transfer import Browser, file_chunks
    import websocket

    class TLSBrowser(Browser):
        def __init__(self) -> None:
            super().__init__(deployment.url, cookie)
            self.http.trust_env = False  # REQUESTS_CA_BUNDLE would win over the test CA
            self.http.verify = str(deployment.ca)

        def open_socket(self, path: str):
            return websocket.create_connection(f"wss://{SERVER_NAME}:{deployment.https_port}{path}",
                                               cookie=f"sessionid={cookie}", origin=deployment.url, timeout=60,
                                               sslopt={"ca_certs": str(deployment.ca)})

    source = work / "upload.bin"
    with open(source, "wb") as out:
        for _ in range(args.upload_mib):
            out.write(os.urandom(MIB))
    browser = TLSBrowser()
    web, nginx = deployment.processes["web"].pid, deployment.processes["nginx"].pid
    uri = deployment.host.tcp_uri
    times: dict[str, list[float]] = {"vmsite": [], "virsh": []}
    web_cpu: list[float] = []
    nginx_cpu: list[float] = []
    for round_number in range(args.upload_rounds):
        for who in (("vmsite", "virsh") if round_number % 2 == 0 else ("virsh", "vmsite")):
            name = f"{who}-{round_number}.img"
            if who == "vmsite":
                cpu_web, cpu_nginx = cpu_seconds(web), cpu_seconds(nginx)
                started = time.perf_counter()
                result = browser.upload(pool_pk, file_chunks(source), size=args.upload_mib * MIB, name=name)
                times["vmsite"].append(time.perf_counter() - started)
                web_cpu.append(cpu_seconds(web) - cpu_web)
                nginx_cpu.append(cpu_seconds(nginx) - cpu_nginx)
                assert result.sha256, result.last_message
            else:
                started = time.perf_counter()
                for command in (["vol-create-as", pool_name, name, str(args.upload_mib * MIB), "--format", "raw"],
                                ["vol-upload", "--pool", pool_name, name, str(source)]):
                    subprocess.run(["virsh", "-c", uri, *command], check=True, capture_output=True)
                times["virsh"].append(time.perf_counter() - started)
            subprocess.run(["virsh", "-c", uri, "vol-delete", "--pool", pool_name, name], check=False,
                           capture_output=True)
    gib = args.upload_mib / 1024
    ours, theirs = statistics.median(times["vmsite"]), statistics.median(times["virsh"])
    emit({"bench": BENCH, "operation": "upload", "path": "browser -> nginx (TLS) -> uvicorn -> libvirt",
          "mib": args.upload_mib, "rounds": args.upload_rounds, "vmsite_mib_s": round(args.upload_mib / ours, 1),
          "virsh_mib_s": round(args.upload_mib / theirs, 1), "ratio": round(theirs / ours, 2),
          "web_cpu_s_per_gib": round(statistics.median(web_cpu) / gib, 2),
          "nginx_cpu_s_per_gib": round(statistics.median(nginx_cpu) / gib, 2),
          "load_average_1m": round(os.getloadavg()[0], 2)})


def run(args: argparse.Namespace, work: Path) -> None:
    import libvirt

    from bench.inventory import django_env
    os.environ.update(django_env(work / "data"))  # Django for the imports only: the deployment's own is the child's
    import django

    django.setup()
    from tests import stack
    from tests.deploy import test_production as production
    from tests.guests import small_guest_xml
    from tests.harness.libvirt_hosts import start_host

    host = start_host(args.index, work / "host")
    base = Path(tempfile.mkdtemp(prefix="vmsite-bench-production-"))
    base.chmod(0o755)
    db_name = f"vmsite_bench_{secrets.token_hex(4)}"
    https_port, http_port, web_port, console_port, redis_port = stack.free_ports(5)
    deployment = production.Deployment(base=base, https_port=https_port, http_port=http_port,
                                       admin_password=secrets.token_urlsafe(16), ca=Path(), nss_home=work / "nss",
                                       host=host, logs=work / "logs")
    deployment.logs.mkdir()
    cleanup = ExitStack()
    try:
        production.let_libvirt_group_in(host)
        deployment.ca, cert, key = production.make_test_ca(work / "ca")
        ports = {"web": web_port, "console": console_port, "redis": redis_port}
        database_url = cleanup.enter_context(own_postgres(args.max_connections))
        production.install(deployment, ports, cert, key, db_name, extra={"DATABASE_URL": database_url})
        with open(base / "etc" / "local.env", "a") as local:
            local.write("WORKER_CONCURRENCY=2\n")
        production.start_redis(deployment)
        production.start_units(deployment)
        production.start_nginx(deployment)
        production.wait_for_ports(deployment, {"web": ("127.0.0.1", ports["web"]),
                                               "nginx": ("::1", deployment.https_port)})
        as_debian_nginx(deployment)
        progress(f"stack up behind nginx on {deployment.url}")
        resolve_site_to(production.SERVER_NAME, "::1")
        conn = libvirt.open(host.tcp_uri)
        domains = [conn.defineXML(small_guest_xml(f"bench-prod-{number}", vnc_listen=host.address))
                   for number in range(args.guests)]
        for domain in domains[: max(1, args.guests // 3)]:
            domain.create()
        pool_name = production.define_pool(host.tcp_uri)
        child = subprocess.run([sys.executable, __file__, "--facts", str(base), str(args.guests),
                                str(max(args.sockets, 2)), pool_name], check=True, capture_output=True, text=True,
                               env={key: value for key, value in os.environ.items()
                                    if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "VMSITE_DATA_DIR")})
        facts = json.loads(child.stdout.strip().splitlines()[-1])
        cookies, vm_pages = facts["cookies"], facts["vm_pages"]
        sockets = LiveSockets(deployment, cookies[: args.sockets])
        started = time.monotonic()
        sockets.start()
        progress(f"{sockets.opened} live sockets open ({sockets.failed} refused) in {time.monotonic() - started:.0f} s")
        stopping = threading.Event()
        churn = threading.Thread(target=churn_guest, args=(domains[-1], stopping), daemon=True)
        churn.start()
        web, nginx = deployment.processes["web"].pid, deployment.processes["nginx"].pid
        cpu_web, cpu_nginx, wall = cpu_seconds(web), cpu_seconds(nginx), time.monotonic()
        load_before = os.getloadavg()[0]
        peak = ConnectionPeak(int(database_url.rsplit(":", 1)[1].split("/", 1)[0]))
        rows = run_locust(args, deployment, cookies, vm_pages, work)
        seconds = time.monotonic() - wall
        stopping.set()
        churn.join(timeout=10)
        page_figures(rows, users=args.users, sockets=sockets.opened, seconds=args.seconds)
        emit({"bench": BENCH, "operation": "browsing_cpu", "users": args.users, "sockets": sockets.opened,
              "web_cpu_percent_of_one_core": round((cpu_seconds(web) - cpu_web) / seconds * 100, 1),
              "nginx_cpu_percent_of_one_core": round((cpu_seconds(nginx) - cpu_nginx) / seconds * 100, 1),
              "load_average_1m_before": round(load_before, 2), "load_average_1m": round(os.getloadavg()[0], 2)})
        emit({"bench": BENCH, "operation": "database_connections_peak", "max_connections": args.max_connections,
              **peak.stop()})
        emit({"bench": BENCH, "operation": "live_sockets", "asked": args.sockets, "opened": sockets.opened,
              "refused": sockets.failed, "closed_during_run": sockets.closed, "messages": sockets.messages})
        sockets.stop()
        if args.upload_rounds:
            upload_figures(args, deployment, cookies[0], pool_name, facts["pool"], work)
        for domain in domains:
            if domain.isActive():
                domain.destroy()
            domain.undefine()
    except BaseException:
        progress(deployment.log_tail())
        raise
    finally:
        production.stop_everything(deployment, db_name)
        cleanup.close()
        host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--spawn-rate", type=float, default=20, help="users started per second")
    parser.add_argument("--seconds", type=int, default=60, help="how long the users browse")
    parser.add_argument("--guests", type=int, default=30, help="guests on the host (a third running)")
    parser.add_argument("--max-connections", type=int, default=100,
                        help="max_connections of the bench's own PostgreSQL (PostgreSQL's default: 100)")
    parser.add_argument("--upload-mib", type=int, default=256)
    parser.add_argument("--upload-rounds", type=int, default=3)
    parser.add_argument("--index", type=int, default=int(os.environ.get("VMSITE_HARNESS_FIRST_INDEX", 144)))
    parser.add_argument("--locust", default=shutil.which("locust") or "locust")
    parser.add_argument("--facts", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.facts:
        base, guests, count, pool_name = args.facts
        print(json.dumps(deployment_facts(Path(base), int(guests), int(count), pool_name)))
        return
    work = Path(tempfile.mkdtemp(prefix="vmsite-bench-production-work-"))
    started = time.perf_counter()
    try:
        run(args, work)
    finally:
        progress(f"wall time {time.perf_counter() - started:.1f} s; logs in {work}")


if __name__ == "__main__":
    main()
