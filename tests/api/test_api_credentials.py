"""Host credentials go into the API and never come out: not in answers, the schema's examples, the
operations, or the log."""
import datetime
import json
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from hosts.models import Host

pytestmark = [pytest.mark.django_db]


def ssh_key_text() -> str:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def tls_material() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vmsite-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_text = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_text = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return {"tls_ca_cert": cert_text, "tls_client_cert": cert_text, "tls_client_key": key_text}


def secret_lines(text: str) -> list[str]:
    """The body lines of the PEM blocks: what must never be seen again."""
    return [line for line in text.splitlines() if line and not line.startswith("-----")]


def assert_absent(secrets: list[str], *answers) -> None:
    for answer in answers:
        blob = answer if isinstance(answer, str) else json.dumps(answer.json()) if answer.content else ""
        for line in secrets:
            assert line not in blob


def test_credentials_are_write_only(api_as, caplog):
    caplog.set_level(logging.DEBUG)
    admin = api_as("admin")
    ssh_key, tls = ssh_key_text(), tls_material()
    secrets = secret_lines(ssh_key) + secret_lines(tls["tls_client_key"])

    on_ssh = admin.post("/api/v1/hosts/", {"name": "keyed", "transport": "ssh", "address": "127.0.0.1",
                                           "username": "root", "ssh_private_key": ssh_key}, format="json")
    on_tls = admin.post("/api/v1/hosts/", {"name": "tls", "transport": "tls", "address": "127.0.0.1", **tls},
                        format="json")
    assert on_ssh.status_code == on_tls.status_code == 201, (on_ssh.content, on_tls.content)
    ssh_host, tls_host = Host.objects.get(name="keyed"), Host.objects.get(name="tls")
    assert on_ssh.json()["host"]["uses_own_ssh_key"] and on_tls.json()["host"]["has_tls_files"]

    answers = [on_ssh, on_tls, admin.get("/api/v1/hosts/"), admin.get(f"/api/v1/hosts/{ssh_host.pk}/"),
               admin.get(f"/api/v1/hosts/{tls_host.pk}/"), admin.get("/api/v1/operations/"),
               admin.patch(f"/api/v1/hosts/{ssh_host.pk}/", {"port": 2222}, format="json")]
    assert_absent(secrets, *answers, caplog.text)
    for answer in answers[:5]:
        assert ssh_host.ssh_key.private_key_sealed not in answer.content.decode()
        assert tls_host.tls_key_sealed not in answer.content.decode()

    ssh_host.refresh_from_db()
    assert ssh_host.port == 2222 and ssh_host.ssh_key.name.startswith("host-")  # a PATCH keeps the key


def test_the_schema_marks_credentials_write_only(api_as):
    schema = api_as("admin").get("/api/v1/schema/?format=json").json()
    request = schema["components"]["schemas"]["HostWriteRequest"]["properties"]
    assert all(request[name].get("writeOnly")
               for name in ("ssh_private_key", "tls_client_key", "tls_ca_cert", "sasl_password"))
    answer = schema["components"]["schemas"]["Host"]["properties"]
    assert not {"ssh_private_key", "tls_client_key", "tls_key_sealed", "sasl_password", "ssh_key"} & set(answer)


def test_a_refused_key_says_why_without_echoing_it(api_as):
    not_a_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nU0VDUkVULWRvLW5vdC1lY2hv\n-----END OPENSSH PRIVATE KEY-----\n"
    answer = api_as("admin").post("/api/v1/hosts/", {"name": "bad", "transport": "ssh", "address": "127.0.0.1",
                                                     "ssh_private_key": not_a_key}, format="json")
    assert answer.status_code == 400 and answer.json()["ssh_private_key"]
    assert "U0VDUkVULWRvLW5vdC1lY2hv" not in answer.content.decode()
