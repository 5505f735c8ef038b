"""The production deployment of deploy/, whole, on this machine: deploy/install.sh run as an
admin would run it, then every process started from the unit files it installed (their ExecStart
lines, user and environment: tests/deploy/units.py, since systemd is not PID 1 here), behind
Debian's nginx with a certificate from a test CA, on a PostgreSQL database and a Redis (with a
password) of their own; and Chromium through https:// only.

The machine's libvirt here is a harness host whose socket lets the `libvirt` group in
(`unix_sock_group`, as Debian's polkit rule does with polkitd running): the stack runs in that
host's mount namespace, so for it qemu:///system is that libvirtd, reached as the non-root
`vmsite` user through the group. The browser reaches nginx over IPv6 loopback and nginx reaches
vmsite over IPv4: the audit log's "::1" is the address nginx passed on (TRUSTED_PROXIES), not
its own.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest
import websocket
from playwright.sync_api import expect

from tests import stack
from tests.consoles.test_console_pages import LIT_PIXELS
from tests.deploy.units import read_unit, service_command
from tests.harness.libvirt_hosts import HarnessHost

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
# The deployment's own virtualenv, from Debian's python3 (the vmsite user cannot run the suite's).
# Built by deploy/install.sh's virtualenv step: scripts/setup.sh test does it, else the first run.
VENV = Path("/var/cache/vmsite/deploy-venv")
SERVER_NAME = "vmsite.test"
PROCESSES = ("web", "worker", "beat", "listener", "consoles")
SERVICE_USER = "vmsite"
ADMIN = "admin"
MIB = 1024 * 1024
WAIT = 30_000  # ms: the suite runs on 2 shared cores, often under a load of 10 and more
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class Deployment:
    base: Path
    https_port: int
    http_port: int
    admin_password: str
    ca: Path
    nss_home: Path
    host: HarnessHost  # "this machine's libvirt"
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    install_output: str = ""
    install_seconds: float = 0.0
    start_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"https://{SERVER_NAME}:{self.https_port}"

    def log_tail(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-2500:]}"
                         for path in sorted(self.logs.glob("*.log")))


def run(argv: list[str], **options) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL, **options)


def make_test_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for SERVER_NAME signed by it: (CA certificate, certificate, key)."""
    folder.mkdir(mode=0o700)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca, ca_key = folder / "ca.crt", folder / "ca.key"
    run(["openssl", "req", "-x509", *ec, "-days", "2", "-subj", "/CN=vmsite test CA", "-keyout", ca_key, "-out", ca,
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    cert, key, request = folder / "server.crt", folder / "server.key", folder / "server.csr"
    run(["openssl", "req", *ec, "-subj", f"/CN={SERVER_NAME}", "-keyout", key, "-out", request])
    (folder / "server.ext").write_text(f"subjectAltName=DNS:{SERVER_NAME}\nextendedKeyUsage=serverAuth\n"
                                       "basicConstraints=CA:FALSE\n")
    run(["openssl", "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
         "-extfile", folder / "server.ext", "-out", cert])
    return ca, cert, key



NETWORK_CHANGE_ATTEMPTS = 5


def despite_network_changes(page, action):
    """action(), again (a second later, up to NETWORK_CHANGE_ATTEMPTS in all) when Chromium gave up on
    a request at the network level, with the reason printed. A bridge or address that another test
    (or libvirt) makes on this machine is a network change to Chromium, which aborts the requests in
    flight with ERR_NETWORK_CHANGED (nginx logs a 499), over HTTP/2 and HTTP/1.1 alike, and such
    changes come in bursts; Playwright then reports the failure as a navigation interrupted by
    Chromium's error page (chrome-error://) or by the same URL again. Any other failure stands, and
    so does one that outlasts the attempts."""
    from playwright.sync_api import Error

    failures: list[str] = []

    def failed(request) -> None:
        failures.append(f"{request.method} {request.url}: {request.failure}")

    page.on("requestfailed", failed)
    try:
        for attempt in range(NETWORK_CHANGE_ATTEMPTS):
            failures.clear()
            try:
                return action()
            except (Error, AssertionError) as exc:
                text = str(exc)
                cut_off = ("ERR_NETWORK_CHANGED" in text or "chrome-error://" in text
                           or "is interrupted by another navigation" in text or page.url.startswith("chrome-error://")
                           or "Download.path: canceled" in text  # a download cut off so (nginx: 499, seen once)
                           or any("ERR_NETWORK_CHANGED" in failure for failure in failures))  # a page's own fetch
                if not cut_off or attempt == NETWORK_CHANGE_ATTEMPTS - 1:
                    raise
                print(f"tried again after Chromium's network error: {text.splitlines()[0]}; failed requests: "
                      f"{failures}")
                time.sleep(1)
    finally:
        page.remove_listener("requestfailed", failed)


def goto(page, url: str):
    return despite_network_changes(page, lambda: page.goto(url))


def downloaded(page, selector: str) -> bytes:
    """The bytes of the download that a click on `selector` starts."""
    with page.expect_download() as download:
        page.click(selector)
    return Path(download.value.path()).read_bytes()


def uploaded(page, sha256: str) -> None:
    """Start the upload the form on the page describes and wait for its SHA-256; an upload that did
    not start fails with the page's words (the upload page's POST cut off by a network change, seen
    once: nginx logged 499, the web server saw nothing)."""
    page.click("#start-upload")
    expect(page.locator("#upload-result:not(.d-none), #upload-errors:not(.d-none)").first).to_be_visible(timeout=60_000)
    refusal = page.locator("#upload-errors")
    if refusal.is_visible():
        raise AssertionError(f"the upload did not start: {refusal.inner_text()}")
    expect(page.locator("#upload-sha256")).to_have_text(sha256)


def websockify_requests(deployment: Deployment) -> int:
    """The console sockets nginx has logged (a socket's line is written when it closes)."""
    return (deployment.logs / "nginx-access.log").read_text().count("/websockify?")


def console_connected(deployment: Deployment, console, url: str) -> None:
    """Open the console page until noVNC says it is connected. A try whose socket never reached nginx
    (nothing logged: Chromium dropped it, as it drops requests on a network change; seen once) is
    made again, a second later, up to NETWORK_CHANGE_ATTEMPTS in all; one that reached nginx and
    failed, fails."""
    status = console.locator("#console-status")
    for attempt in range(NETWORK_CHANGE_ATTEMPTS):
        logged = websockify_requests(deployment)
        goto(console, url)
        expect(status).to_have_attribute("data-state", re.compile(r"^(connected|disconnected)$"), timeout=2 * WAIT)
        if status.get_attribute("data-state") == "connected":
            return
        message = console.locator("#console-message").inner_text()
        if websockify_requests(deployment) > logged or attempt == NETWORK_CHANGE_ATTEMPTS - 1:
            raise AssertionError(f"the console did not connect: {message!r}")
        print(f"tried the console again: its socket never reached nginx ({message!r})")
        time.sleep(1)


def browser_home_trusting(ca: Path, home: Path) -> Path:
    """A HOME whose NSS database (where Chromium on Linux finds local roots) trusts the test CA."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"])
    run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "vmsite test CA", "-t", "C,,", "-i", ca])
    return home


def let_libvirt_group_in(host) -> None:
    """The harness libvirtd's socket as libvirtd.conf's group settings make it: the `libvirt`
    group may manage it (Debian's default does the same through polkit when polkitd runs)."""
    with open(host.state_dir / "etc" / "libvirtd.conf", "a") as conf:
        conf.write('unix_sock_group = "libvirt"\nunix_sock_rw_perms = "0770"\n')
    host.kill_libvirtd(signal.SIGTERM)
    host.start_libvirtd()


def install(deployment: Deployment, ports: dict[str, int], cert: Path, key: Path, db_name: str,
            steps: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> str:
    """deploy/install.sh (all its steps, or those named), as root, in the libvirt host's mount
    namespace; START=no (no systemd); extra: more of its variables (bench/production.py)."""
    base = deployment.base
    environment = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
        "VMSITE_URL": deployment.url, "TLS_CERT": str(cert), "TLS_KEY": str(key), "APP_DIR": str(ROOT),
        "VENV": str(VENV), "DATA_DIR": str(base / "data"), "STATIC_ROOT": str(base / "www" / "static"),
        "ETC_DIR": str(base / "etc"), "SYSTEMD_DIR": str(base / "systemd"), "NGINX_DIR": str(base / "nginx"),
        "REDIS_CONF": str(base / "redis" / "redis-vmsite.conf"), "DB_NAME": db_name, "START": "no",
        "HTTP_PORT": str(deployment.http_port), "WEB_PORT": str(ports["web"]), "CONSOLE_PORT": str(ports["console"]),
        "REDIS_PORT": str(ports["redis"]), "VMSITE_ADMIN_USER": ADMIN,
        "VMSITE_ADMIN_PASSWORD": deployment.admin_password, **(extra or {}),
    }
    result = subprocess.run(["nsenter", "-t", str(deployment.host.holder_pid), "-m", f"--wd={ROOT}", "--",
                             "bash", "deploy/install.sh", *steps], env=environment, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=240)
    assert result.returncode == 0, f"install.sh failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def assert_install_keeps_its_secrets(deployment: Deployment, ports: dict[str, int], cert: Path, key: Path,
                                     db_name: str) -> None:
    """Run again (the steps that make secrets and files; the others are Django's own idempotent
    commands), install.sh changes nothing: passwords, settings and certificate stay."""
    base = deployment.base
    made = [base / "etc" / "vmsite.env", base / "etc" / "local.env", base / "redis" / "redis-vmsite.conf",
            base / "etc" / "tls" / "vmsite.key",
            base / "nginx" / "sites-available" / "vmsite", base / "systemd" / "vmsite-web.service"]
    before = [path.read_bytes() for path in made]
    install(deployment, ports, cert, key, db_name, steps=("public_address", "folders", "own_redis", "database",
                                                           "environment_file", "certificate", "units", "nginx_site"))
    assert [path.read_bytes() for path in made] == before


def start_redis(deployment: Deployment) -> None:
    """vmsite's Redis from the configuration install.sh wrote (its port and password); its files here."""
    folder = deployment.base / "redis"
    argv = ["redis-server", str(folder / "redis-vmsite.conf"), "--pidfile", str(folder / "redis.pid"),
            "--logfile", "", "--dir", str(folder), "--supervised", "no", "--save", ""]
    deployment.processes["redis"] = _started("redis", argv, deployment)


def start_units(deployment: Deployment) -> None:
    for name in PROCESSES:
        command = service_command(read_unit(deployment.base / "systemd" / f"vmsite-{name}.service"))
        prefix = ("nsenter", "-t", str(deployment.host.holder_pid), "-m", f"--wd={command.working_directory}", "--")
        deployment.processes[name] = command.start(log_path=deployment.logs / f"{name}.log", prefix=prefix)


def start_nginx(deployment: Deployment) -> None:
    """Debian's nginx with a main configuration of its own (its pid, logs and temporary files
    here) that includes the site install.sh wrote, as Debian's nginx.conf includes sites-enabled/."""
    folder = deployment.base / "nginx"
    conf = folder / "nginx.conf"
    conf.write_text(f"""\
user www-data;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {deployment.logs}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {deployment.logs}/nginx-access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/sites-enabled/*;
}}
""")
    base = ["nginx", "-p", f"{folder}/", "-e", str(deployment.logs / "nginx-error.log"), "-c", str(conf)]
    run([*base, "-t", "-q"])
    deployment.processes["nginx"] = _started("nginx", [*base, "-g", "daemon off;"], deployment)


def _started(name: str, argv: list[str], deployment: Deployment) -> subprocess.Popen:
    with open(deployment.logs / f"{name}.log", "w") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_for_ports(deployment: Deployment, ports: dict[str, tuple[str, int]]) -> None:
    deadline = time.monotonic() + 60
    for name, (address, port) in ports.items():
        while not stack.port_open(address, port):
            exited = {key: process.returncode for key, process in deployment.processes.items()
                      if process.poll() is not None}
            if exited or time.monotonic() > deadline:
                raise AssertionError(f"{name} not listening on {address}:{port}; exited: {exited}\n"
                                     f"{deployment.log_tail()}")
            time.sleep(0.1)


def stop_everything(deployment: Deployment, db_name: str) -> None:
    for process in deployment.processes.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in deployment.processes.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-q", "-d", "postgres", "-c",
                    f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)", "-c", f"DROP ROLE IF EXISTS {db_name}"],
                   cwd="/", capture_output=True, check=False)
    shutil.rmtree(deployment.base, ignore_errors=True)


def define_pool(uri: str) -> str:
    """A dir pool on the host, made before vmsite starts (its first reconcile lists it)."""
    name = f"vmsite-deploy-{secrets.token_hex(3)}"
    conn = libvirt.open(uri)
    pool = conn.storagePoolDefineXML(f"<pool type='dir'><name>{name}</name><target>"
                                     f"<path>/var/lib/libvirt/images/{name}</path></target></pool>")
    pool.build()
    pool.create()
    conn.close()
    return name


@pytest.fixture
def deployment(harness, guests, tmp_path):
    host = harness()
    let_libvirt_group_in(host)
    base = Path(tempfile.mkdtemp(prefix="vmsite-deploy-"))  # the service user must reach into it
    base.chmod(0o755)
    db_name = f"vmsite_deploy_{secrets.token_hex(4)}"
    https_port, http_port, web_port, console_port, redis_port = stack.free_ports(5)
    deployment = Deployment(base=base, https_port=https_port, http_port=http_port,
                            admin_password=secrets.token_urlsafe(16), ca=Path(), nss_home=tmp_path / "browser",
                            host=host, logs=tmp_path / "logs")
    deployment.logs.mkdir()
    try:
        deployment.ca, cert, key = make_test_ca(tmp_path / "ca")
        browser_home_trusting(deployment.ca, deployment.nss_home)
        ports = {"web": web_port, "console": console_port, "redis": redis_port}
        started = time.monotonic()
        deployment.install_output = install(deployment, ports, cert, key, db_name)
        deployment.install_seconds = time.monotonic() - started
        assert_install_keeps_its_secrets(deployment, ports, cert, key, db_name)
        with open(base / "etc" / "local.env", "a") as local:  # the admin's own settings win (and spare the CPU)
            local.write("WORKER_CONCURRENCY=2\n")
        start_redis(deployment)
        start_units(deployment)
        start_nginx(deployment)
        wait_for_ports(deployment, {"redis": ("127.0.0.1", ports["redis"]), "web": ("127.0.0.1", ports["web"]),
                                    "consoles": ("127.0.0.1", ports["console"]),
                                    "nginx": ("::1", deployment.https_port)})
        deployment.start_seconds = time.monotonic() - started
        yield deployment
    finally:
        stop_everything(deployment, db_name)
        host.stop()


def doctor(deployment: Deployment, *options: str) -> subprocess.CompletedProcess:
    """`manage.py doctor` as the README has an admin run it: as the service user, with the service's
    settings files, in the folder the units run in; the test CA trusted the way OpenSSL is told of a
    private CA (SSL_CERT_FILE, a copy the service user may read)."""
    ca = deployment.base / "doctor-ca.crt"
    shutil.copyfile(deployment.ca, ca)
    ca.chmod(0o644)
    etc = deployment.base / "etc"
    script = (f"set -a; . {shlex.quote(str(etc / 'vmsite.env'))}; . {shlex.quote(str(etc / 'local.env'))}; set +a; "
              f"cd {shlex.quote(str(ROOT))} && exec {shlex.quote(str(VENV / 'bin' / 'python'))} manage.py doctor "
              + shlex.join(options))
    return subprocess.run(["nsenter", "-t", str(deployment.host.holder_pid), "-m", "--", "runuser", "-u", SERVICE_USER,
                           "--", "bash", "-c", script], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120, cwd="/", env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                                                     "SSL_CERT_FILE": str(ca)})


def tls_socket(deployment: Deployment) -> ssl.SSLSocket:
    """A TLS connection to nginx over IPv6 loopback, checked against the test CA as vmsite.test."""
    context = ssl.create_default_context(cafile=str(deployment.ca))
    return context.wrap_socket(socket.create_connection(("::1", deployment.https_port), timeout=10),
                               server_hostname=SERVER_NAME)


def alpn_protocol(deployment: Deployment) -> str | None:
    """The protocol nginx picks when a client offers HTTP/2 and HTTP/1.1 (TLS's ALPN)."""
    context = ssl.create_default_context(cafile=str(deployment.ca))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with context.wrap_socket(socket.create_connection(("::1", deployment.https_port), timeout=10),
                             server_hostname=SERVER_NAME) as tls:
        return tls.selected_alpn_protocol()


def websocket_status(deployment: Deployment, path: str, *, origin: str, session: str) -> int:
    """101 when the handshake succeeds, else the status nginx or vmsite answered."""
    try:
        socket_ = websocket.create_connection(f"wss://{SERVER_NAME}:{deployment.https_port}{path}",
                                              socket=tls_socket(deployment), origin=origin,
                                              cookie=f"sessionid={session}", timeout=10)
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    socket_.close()
    return 101


def test_the_installed_stack_serves_everything_through_one_https_origin(deployment, chromium, guests, tmp_path):
    host = deployment.host
    print(f"install.sh {deployment.install_seconds:.1f} s; every process listening "
          f"{deployment.start_seconds:.1f} s after install.sh started")
    assert "warning" not in deployment.install_output, deployment.install_output  # vmsite reached libvirt

    # The units install.sh wrote are units systemd accepts, sandboxed ("OK" is an exposure of 3.0).
    units = deployment.base / "systemd"
    for name in PROCESSES:
        unit = units / f"vmsite-{name}.service"
        analyse = {**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"}
        verified = run(["systemd-analyze", "verify", "--man=no", str(unit)], env=analyse)
        assert verified.stderr == "", verified.stderr
        run(["systemd-analyze", "security", "--offline=yes", "--threshold=30", str(unit)], env=analyse)

    # The group is the gate: a user outside it is turned away by the same libvirtd.
    outsider = host.run_in_ns(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                               "virsh", "-c", "qemu:///system", "uri"])
    assert outsider.returncode != 0 and "Permission denied" in outsider.stderr, outsider

    worker_argv = Path(f"/proc/{deployment.processes['worker'].pid}/cmdline").read_text().split("\0")
    assert worker_argv[worker_argv.index("--concurrency") + 1] == "2"  # from local.env, read after vmsite.env

    # Every process runs as the vmsite user, with no privileges to gain and none to keep.
    uid = pwd.getpwnam(SERVICE_USER).pw_uid
    for name in PROCESSES:
        status = Path(f"/proc/{deployment.processes[name].pid}/status").read_text()
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Uid"].split() == [str(uid)] * 4, (name, fields["Uid"])
        assert fields["NoNewPrivs"].strip() == "1" and int(fields["CapBnd"], 16) == 0, name

    # Plain HTTP is sent to HTTPS, on the public port.
    plain = http.client.HTTPConnection("::1", deployment.http_port, timeout=10)
    plain.request("GET", "/vms/?q=x", headers={"Host": f"{SERVER_NAME}:{deployment.http_port}"})
    answer = plain.getresponse()
    assert (answer.status, answer.getheader("Location")) == (301, f"{deployment.url}/vms/?q=x")

    guest = guests.define(host.tcp_uri, vnc_listen=host.address)
    assert alpn_protocol(deployment) == "h2"  # nginx offers HTTP/2 (the browser below uses it too)
    pool_name = define_pool(host.tcp_uri)
    browser = chromium.browser_type.launch(executable_path="/usr/bin/chromium", env={
        **os.environ, "HOME": str(deployment.nss_home)},
        args=[*CHROMIUM_FLAGS, f"--host-resolver-rules=MAP {SERVER_NAME} [::1]"])
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # no ignore_https_errors: the CA is trusted
    page = context.new_page()
    page.set_default_timeout(WAIT)
    try:
        # Log in; HSTS from Django, the static files from nginx's folder (uvicorn serves none here).
        static = goto(page, f"{deployment.url}/static/vmsite/console_vnc.js")
        assert static.status == 200 and "max-age=3600" in static.headers["cache-control"]
        login = goto(page, f"{deployment.url}/login/")
        assert login.headers["strict-transport-security"].startswith("max-age=")

        def log_in() -> None:
            if not page.url.endswith("/login/"):  # Chromium's error page after an aborted POST
                page.goto(f"{deployment.url}/login/")
            page.fill("#id_username", ADMIN)
            page.fill("#id_password", deployment.admin_password)
            page.click("button[type=submit]")
            expect(page.get_by_role("heading", name="Dashboard")).to_be_visible(timeout=WAIT)

        despite_network_changes(page, log_in)

        # The audit log has the browser's address, as nginx saw it (::1), not nginx's (127.0.0.1).
        goto(page, f"{deployment.url}/audit/")
        expect(page.locator("tr[data-action=login]").first).to_contain_text("::1", timeout=WAIT)

        # The listener (as vmsite, through the libvirt group) has found the guest.
        goto(page, f"{deployment.url}/vms/?q={guest.name()}")
        row = page.locator(f"tr[data-domain-uuid='{guest.UUIDString()}']")
        for _ in range(60):
            if row.count():
                break
            time.sleep(0.5)
            page.reload()
        assert row.count(), "the listener never listed the guest"
        href = row.locator(f"a:text-is('{guest.name()}')").get_attribute("href")

        # A live page: started from a second tab (the worker, as vmsite), this one turns Running.
        goto(page, f"{deployment.url}{href}")
        expect(page.locator("#domain-state")).to_have_text("Shut off", timeout=WAIT)
        expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live", timeout=WAIT)
        page.evaluate("window.__notReloaded = true")
        other = context.new_page()

        def start_from_the_other_tab() -> None:
            if page.locator("#domain-state").text_content().strip() == "Running":
                return  # the POST of an attempt cut off on its way back got through
            goto(other, f"{deployment.url}{href}")
            with other.expect_navigation(timeout=WAIT):
                other.click("#domain-actions [data-action=start]")
            if other.url.startswith("chrome-error://"):  # the POST cut off (nginx never saw it once)
                raise AssertionError(f"the start's POST failed: {other.url}")

        despite_network_changes(other, start_from_the_other_tab)
        expect(page.locator("#domain-state")).to_have_text("Running", timeout=2 * WAIT)
        assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
        other.close()

        # The console: noVNC through nginx's /websockify, on the page's own origin, shows the screen.
        sockets = []
        console = context.new_page()
        console.on("websocket", lambda opened: sockets.append(opened.url))
        console_connected(deployment, console, f"{deployment.url}{href}console/")
        stack.wait_until(lambda: console.evaluate(LIT_PIXELS) > 500, timeout=30, message="the guest's screen")
        assert any(url.startswith(f"wss://{SERVER_NAME}:{deployment.https_port}/websockify?token=") for url in sockets)
        console.close()

        # A volume up through the upload socket and down again, both through nginx.
        data = os.urandom(6 * MIB + 5)
        (tmp_path / "disk.img").write_bytes(data)
        goto(page, f"{deployment.url}/storage/")
        page.get_by_role("link", name=pool_name, exact=True).click()
        page.click("#upload-volume")
        page.set_input_files("#id_file", str(tmp_path / "disk.img"))
        page.fill("#id_name", "through-nginx.img")
        despite_network_changes(page, lambda: uploaded(page, hashlib.sha256(data).hexdigest()))
        page.click("#upload-volume-link")
        assert despite_network_changes(page, lambda: downloaded(page, "#download")) == data

        # A socket from a page of another origin is refused, by the live socket and the console proxy
        # alike; the same session from the site's own origin is let in.
        session = next(cookie["value"] for cookie in context.cookies() if cookie["name"] == "sessionid")
        assert websocket_status(deployment, "/ws/live/", origin=deployment.url, session=session) == 101
        assert websocket_status(deployment, "/ws/live/", origin="https://evil.example", session=session) == 403
        assert websocket_status(deployment, "/websockify?token=x", origin="https://evil.example",
                                session=session) == 403
        assert "token=" not in (deployment.logs / "nginx-access.log").read_text()  # console tokens unlogged

        # The self-check an admin runs after installing passes, every check of it, for the URL users open
        # (its name known to no resolver here: --resolve, as the browser's resolver rule above). Beat sends
        # its first task one interval after it starts (30 s); until then the doctor rightly says it has not.
        stack.wait_until(lambda: "Sending due task" in (deployment.logs / "beat.log").read_text(), timeout=60,
                         message="beat's first task")
        checked = doctor(deployment, "--url", deployment.url, "--resolve", f"{SERVER_NAME}:[::1]")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        lines = checked.stdout.splitlines()
        assert lines[-1] == "All 11 checks passed." and [line.split()[0] for line in lines[:-1]] == ["OK"] * 11, lines
        assert f"wss://{SERVER_NAME}:{deployment.https_port}/websockify answers as vmsite's console proxy" in checked.stdout
    except BaseException:
        print(deployment.log_tail())
        raise
    finally:
        context.close()
        browser.close()
