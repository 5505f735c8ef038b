"""Host credentials never appear in a page, a log line, an error message or the database.

vmsite's host credentials are an SSH private key (qemu+ssh), a TLS client key with its
certificates (qemu+tls) and a libvirtd SASL password (tests/hosts/test_sasl.py). They are uploaded
through the host form and kept sealed in the database (hosts/credentials.py), written to a file
only while a connection opens. The secrets searched for are the keys' own base64 lines: random,
so any line found anywhere is the key leaking.

Each host is registered through the real form, then made to fail for real: nothing listening on a
127.0.0.2xx address (above the harness range), a TLS port that drops the handshake, and a real
sshd (a harness host) that refuses the key. Meanwhile every log record at DEBUG, SQL included, is
kept; afterwards every page of the site is read, and the database dumped.
"""
from __future__ import annotations

import datetime
import html
import io
import logging
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from django.conf import settings

from hosts.choices import HostStatus
from hosts.credentials import host_tls_files
from hosts.models import Host
from operations.choices import OperationState
from operations.models import Operation
from operations.tasks import run_operation
from tests import stack
from tests.security.test_urlconf import OBJECT_FOR, concrete, objects, routes  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def operations_settled():
    """Registering and editing hosts queues connect operations, which the suite's worker (if an
    earlier test started it) runs too. The database is emptied after each test: no operation may
    still be running then (on PostgreSQL the emptying deadlocked with a worker's connect)."""
    yield
    Operation.objects.filter(state=OperationState.PENDING).update(state=OperationState.CANCELLED)
    stack.wait_until(lambda: not Operation.objects.filter(state=OperationState.RUNNING).exists(), timeout=90,
                     message="the operations the test queued to finish")

# Above the harness's range (2-163): nothing of any test run listens here.
NOTHING_LISTENS = "127.0.0.201"
DROPS_TLS = "127.0.0.202"
TCP_ADDRESS = "127.0.0.203"
URI_WITH_PASSWORD = re.compile(r"[a-z+]+://[^/\s@:]+:[^/\s@]+@|[?&](password|passwd|authfile)=", re.IGNORECASE)


def key_lines(pem: bytes) -> list[str]:
    """The base64 lines of a PEM file: each is random, so each is a needle on its own."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----") and len(line) >= 20]


def ssh_private_key() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())


class TLSMaterial:
    """A CA and a client certificate it signed, as libvirt's pkipath wants them."""

    def __init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        ca_key, self.client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vmsite test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
              .not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        client = (x509.CertificateBuilder()
                  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vmsite")]))
                  .issuer_name(ca_name).public_key(self.client_key.public_key())
                  .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                  .not_valid_after(now + datetime.timedelta(days=30))
                  .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                  .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                                 critical=True)
                  .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                  .sign(ca_key, hashes.SHA256()))
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        self.client_pem = client.public_bytes(serialization.Encoding.PEM)
        self.key_pem = self.client_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())


@pytest.fixture
def tls_dropper() -> Iterator[None]:
    """A libvirtd TLS port that accepts, reads the ClientHello and hangs up: libvirt has loaded the
    client key by then and fails in the handshake."""
    server = socket.create_server((DROPS_TLS, 16514))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                peer, _ = server.accept()
            except TimeoutError:
                continue
            with peer:
                peer.settimeout(2)
                try:
                    peer.recv(4096)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=5)
    server.close()


@pytest.fixture
def everything_logged(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, and every SQL statement with its parameters logged too."""
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)
    connection.force_debug_cursor = True
    yield caplog
    connection.force_debug_cursor = False


@pytest.fixture
def admin_browser(db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("secret-keeper", password=None))
    return client


def register(client: Client, **fields) -> Host:
    """Through the form; an SSH host's key is shown first, and confirmed (the page must not echo the key)."""
    secrets = [line for data in fields.get("files", {}).values() for line in key_lines(data)]
    files = {name: SimpleUploadedFile(f"{name}.pem", data) for name, data in fields.pop("files", {}).items()}
    response = client.post(reverse("hosts:add"), {"enabled": "on", **fields, **files}, follow=True)
    if fields["transport"] == "ssh":
        assert_nowhere(secrets, {"the key confirmation page": response.content.decode()})
        confirm = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', response.content.decode()))
        response = client.post(reverse("hosts:add"), {name: html.unescape(value) for name, value in confirm.items()},
                               follow=True)
    assert response.status_code == 200, response.content[:2000]
    return Host.objects.get(name=fields["name"])


def register_unreachable_ssh(client: Client, tmp_path: Path, *, name: str, key: bytes) -> Host:
    """An SSH host that does not answer: the form refuses it (it cannot show its key), without echoing
    the uploaded key; the command line registers it, pinning at first connection as before."""
    response = client.post(reverse("hosts:add"), {"enabled": "on", "name": name, "transport": "ssh",
                                                  "address": NOTHING_LISTENS, "username": "root",
                                                  "ssh_private_key": SimpleUploadedFile("id", key)})
    assert response.status_code == 400 and "could not read this host's SSH key" in html.unescape(response.content.decode())
    assert_nowhere(key_lines(key), {"the refused form": response.content.decode()})
    (tmp_path / "id").write_bytes(key)
    call_command("host_add", name, "--transport", "ssh", "--address", NOTHING_LISTENS,
                 "--ssh-private-key", str(tmp_path / "id"), stdout=io.StringIO())
    return Host.objects.get(name=name)


def connect_now(host: Host) -> Operation:
    """Run the host's connect operation here, as a worker would (or wait for the suite's worker if it
    took the operation first), and return it finished."""
    operation = Operation.objects.filter(target_type="host", target_id=host.pk, kind="host.connect").latest("pk")
    run_operation(operation.pk)
    stack.wait_until(lambda: (operation.refresh_from_db(), operation.is_finished)[1], timeout=60,
                     message=f"the connect operation of {host.name}")
    host.refresh_from_db()
    return operation


def pages(client: Client, hosts: list[Host], walked: dict) -> Iterator[tuple[str, str]]:
    """(url, text) of every page of the site for each host."""
    urls = []
    for host in hosts:
        for namespace, name, route, converters in routes():
            if "<" not in route or (OBJECT_FOR.get((namespace, name)) or OBJECT_FOR.get((namespace, "*"))) == "host":
                urls.append(concrete(namespace, name, route, converters, {**walked, "host": host}))
    for operation in Operation.objects.values_list("pk", flat=True):
        urls += [reverse("operations:detail", args=[operation]), reverse("operations:status", args=[operation])]
    for url in dict.fromkeys(urls):
        response = client.get(url)
        assert response.status_code < 500, f"GET {url}: {response.status_code}"
        body = b"".join(response.streaming_content) if response.streaming else response.content
        yield url, body.decode(errors="replace")


def database_dump() -> str:
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{record.name} {record.getMessage()} {record.exc_text or ''}" for record in caplog.records)


def assert_nowhere(secrets: list[str], places: dict[str, str]) -> None:
    for place, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a line of a host's private key appears in {place}"
        assert not URI_WITH_PASSWORD.search(text), f"a URI with a password appears in {place}"


@pytest.mark.integration  # reaches a libvirtd or Redis
def test_it_keeps_ssh_and_tls_keys_out_of_pages_logs_errors_and_the_database(
        admin_browser, everything_logged, tls_dropper, objects, tmp_path):
    ssh_key, tls = ssh_private_key(), TLSMaterial()
    secrets = key_lines(ssh_key) + key_lines(tls.key_pem)
    ssh = register_unreachable_ssh(admin_browser, tmp_path, name="ssh-unreachable", key=ssh_key)
    tls_host = register(admin_browser, name="tls-drops", transport="tls", address=DROPS_TLS,
                        files={"tls_ca_cert": tls.ca_pem, "tls_client_cert": tls.client_pem,
                               "tls_client_key": tls.key_pem})
    tcp = register(admin_browser, name="tcp-unreachable", transport="tcp", address=TCP_ADDRESS)

    failures = {host.name: connect_now(host) for host in (ssh, tls_host, tcp)}
    assert all(operation.state == "failed" for operation in failures.values()), \
        {name: (operation.state, operation.error) for name, operation in failures.items()}
    assert ssh.status_reason.startswith("refused") and tcp.status_reason.startswith("refused"), \
        (ssh.status_reason, tcp.status_reason)
    assert tls_host.status in (HostStatus.OFFLINE, HostStatus.ERROR) and tls_host.status_reason

    places = {f"page {url}": text for url, text in pages(admin_browser, [ssh, tls_host, tcp], objects)}
    places.update({"the log": logged(everything_logged), "the database": database_dump()})
    assert any("INSERT" in record.getMessage() for record in everything_logged.records)  # SQL was logged
    for operation in failures.values():  # the errors were shown, on the operation's page too
        assert operation.error in html.unescape(places[f"page {reverse('operations:detail', args=[operation.pk])}"])
    assert_nowhere(secrets, places)
    assert_key_files_private(ssh, tls_host)


def assert_key_files_private(ssh: Host, tls_host: Host) -> None:
    """Sealed in the database; no file of the data folder holds a key once the connects are over."""
    assert ssh.ssh_key.private_key_sealed.startswith("sb1:") and tls_host.tls_key_sealed.startswith("sb1:")
    assert not [path for path in settings.DATA_DIR.rglob("*") if path.is_file() and b"PRIVATE KEY" in path.read_bytes()]


def test_a_refused_form_does_not_echo_an_uploaded_key(admin_browser, everything_logged):
    ssh_key, tls = ssh_private_key(), TLSMaterial()
    response = admin_browser.post(reverse("hosts:add"), {
        "name": "bad name", "transport": "tls", "address": NOTHING_LISTENS,
        "tls_ca_cert": SimpleUploadedFile("ca.pem", tls.key_pem),  # a key where a certificate goes
        "tls_client_cert": SimpleUploadedFile("cert.pem", ssh_key),
        "tls_client_key": SimpleUploadedFile("key.pem", tls.key_pem + b"\x00garbage")})
    assert response.status_code == 400
    assert "That file is not a PEM certificate." in response.content.decode()
    assert_nowhere(key_lines(ssh_key) + key_lines(tls.key_pem),
                   {"the refused form": response.content.decode(), "the log": logged(everything_logged)})


@pytest.mark.integration  # reaches a libvirtd or Redis
def test_the_edit_form_keeps_stored_keys_when_left_empty_and_never_shows_them(admin_browser, everything_logged,
                                                                             tmp_path):
    ssh_key, tls = ssh_private_key(), TLSMaterial()
    ssh = register_unreachable_ssh(admin_browser, tmp_path, name="ssh-kept", key=ssh_key)
    tls_host = register(admin_browser, name="tls-kept", transport="tls", address=DROPS_TLS,
                        files={"tls_ca_cert": tls.ca_pem, "tls_client_cert": tls.client_pem,
                               "tls_client_key": tls.key_pem})
    stored_key, stored_tls = ssh.ssh_key, tls_host.tls_key_sealed

    form_pages = {host.name: admin_browser.get(reverse("hosts:edit", args=[host.pk])).content.decode()
                  for host in (ssh, tls_host)}
    assert "Leave empty to keep the stored key" in form_pages["ssh-kept"]
    assert "Leave empty to keep the stored file" in form_pages["tls-kept"]
    assert_nowhere(key_lines(ssh_key) + key_lines(tls.key_pem), {f"the edit form of {name}": page
                                                                  for name, page in form_pages.items()})

    for host, fields in ((ssh, {"transport": "ssh", "address": NOTHING_LISTENS, "username": "root", "enabled": "on"}),
                         (tls_host, {"transport": "tls", "address": DROPS_TLS, "port": "16515"})):
        response = admin_browser.post(reverse("hosts:edit", args=[host.pk]), {"name": host.name, "enabled": "on",
                                                                              **fields})
        assert response.status_code == 302, response.content[:2000]
    ssh.refresh_from_db()
    tls_host.refresh_from_db()
    assert ssh.ssh_key == stored_key
    response = admin_browser.post(reverse("hosts:edit", args=[ssh.pk]), {  # a new endpoint: its key is read first
        "name": ssh.name, "transport": "ssh", "address": NOTHING_LISTENS, "username": "root", "port": "2222"})
    assert response.status_code == 400 and "could not read this host's SSH key" in html.unescape(response.content.decode())
    ssh.refresh_from_db()
    assert ssh.ssh_key == stored_key and ssh.port is None
    assert tls_host.tls_key_sealed == stored_tls and host_tls_files(tls_host)["clientkey.pem"] == tls.key_pem


@pytest.mark.integration
def test_an_ssh_login_refused_by_a_real_sshd_does_not_show_the_key(admin_browser, everything_logged, harness, objects):
    """A real sshd (a harness host) that does not know the uploaded key: the richest error text,
    from ssh itself through libvirt, reaches the operation and the host's page."""
    remote = harness()
    ssh_key = ssh_private_key()
    host = register(admin_browser, name="ssh-refused", transport="ssh", address=remote.address, username="root",
                    files={"ssh_private_key": ssh_key})
    operation = connect_now(host)
    assert operation.state == "failed" and host.status == HostStatus.ERROR, (operation.error, host.status_reason)
    assert host.status_reason.startswith("auth failed"), host.status_reason

    places = {f"page {url}": text for url, text in pages(admin_browser, [host], objects)}
    places.update({"the operation's error": operation.error, "the log": logged(everything_logged),
                   "the database": database_dump()})
    assert_nowhere(key_lines(ssh_key), places)
    assert "Permission denied" in places[f"page {reverse('hosts:detail', args=[host.pk])}"]

