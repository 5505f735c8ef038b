"""Registering a host: every bad input gets a clear form error and nothing is saved."""
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from hosts.models import Host
from operations.models import Operation

pytestmark = pytest.mark.django_db

NOT_A_HOST_NAME = "Not a valid host name"


def post(admin_client, **fields):
    data = {"name": "kvm1", "transport": "ssh", "address": "kvm1.example.org", "username": "root", "enabled": "on"}
    data.update(fields)
    return admin_client.post(reverse("hosts:add"), data)


def errors_of(response, field: str) -> str:
    return " ".join(response.context["form"].errors.get(field, []))


@pytest.mark.parametrize("address", ["h?command=/tmp/x", "-oProxyCommand=x", "a b", "host/", "", "x" * 300,
                                     "kvm1.example.org?no_verify=1", "user@kvm1", "kvm1;reboot", "$(id)", "[::1]"])
def test_it_refuses_addresses_that_are_not_host_names(admin_client, address):
    response = post(admin_client, address=address)
    assert response.status_code == 400
    assert errors_of(response, "address")
    assert not Host.objects.exists() and not Operation.objects.exists()


@pytest.mark.parametrize("address", ["fe80::1%eth0", "fe80::1%x#y", "::1%0&command=/tmp/x", "fe80::1%x;id"])
def test_it_refuses_ipv6_addresses_with_a_zone(admin_client, address):
    response = post(admin_client, transport="tcp", address=address)
    assert response.status_code == 400
    assert "without a zone" in errors_of(response, "address")
    assert not Host.objects.exists() and not Operation.objects.exists()


@pytest.mark.parametrize("name", ["h?command=/tmp/x", "-oProxyCommand=x", "a b", "host/", "", "n" * 300, "<b>"])
def test_it_refuses_bad_names(admin_client, name):
    response = post(admin_client, name=name)
    assert response.status_code == 400
    assert errors_of(response, "name")
    assert not Host.objects.exists()


@pytest.mark.parametrize("port", ["0", "70000", "-1", "22x"])
def test_it_refuses_ports_outside_1_to_65535(admin_client, port):
    response = post(admin_client, port=port)
    assert response.status_code == 400
    assert errors_of(response, "port")
    assert not Host.objects.exists()


@pytest.mark.parametrize("username", ["root;id", "-oProxyCommand=x", "Root", "a b", "u" * 40])
def test_it_refuses_bad_ssh_users(admin_client, username):
    response = post(admin_client, username=username)
    assert "Not a valid user name" in errors_of(response, "username")
    assert not Host.objects.exists()


def test_it_refuses_an_unknown_transport(admin_client):
    response = post(admin_client, transport="ftp")
    assert "Select a valid choice" in errors_of(response, "transport")
    assert not Host.objects.exists()


def test_it_refuses_a_tls_certificate_that_is_not_a_certificate(admin_client):
    response = admin_client.post(reverse("hosts:add"), {
        "name": "tls1", "transport": "tls", "address": "kvm1.example.org",
        "tls_ca_cert": SimpleUploadedFile("ca.pem", b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n"),
        "tls_client_cert": SimpleUploadedFile("cert.pem", b"hello"),
        "tls_client_key": SimpleUploadedFile("key.pem", b"not a key"),
    })
    assert errors_of(response, "tls_ca_cert") == "That file is not a PEM certificate."
    assert errors_of(response, "tls_client_cert") == "That file is not a PEM certificate."
    assert errors_of(response, "tls_client_key") == "That file is not a PEM private key."
    assert not Host.objects.exists()


def test_it_requires_all_three_tls_files(admin_client):
    response = post(admin_client, transport="tls")
    for field in ("tls_ca_cert", "tls_client_cert", "tls_client_key"):
        assert errors_of(response, field) == "Required for a TLS connection."


def test_it_refuses_a_private_key_upload_that_is_not_a_key(admin_client):
    response = post(admin_client, ssh_private_key=SimpleUploadedFile("id", b"-----BEGIN OPENSSH PRIVATE KEY-----\nxx"))
    assert errors_of(response, "ssh_private_key") == "That file is not an SSH private key."
    assert not Host.objects.exists()


def test_it_refuses_a_duplicate_name_and_a_second_local_host(admin_client):
    Host.objects.create(name="kvm1", transport="local")
    response = post(admin_client, transport="local")
    assert "already registered" in errors_of(response, "name")
    assert "already registered" in errors_of(response, "transport")
    assert Host.objects.count() == 1


def test_it_refuses_a_test_driver_file_that_is_relative_or_missing(admin_client):
    for path, message in [("../etc/x.xml", "absolute path"), ("/nonexistent/file.xml", "does not exist")]:
        response = post(admin_client, transport="test", test_driver_file=path)
        assert message in errors_of(response, "test_driver_file")
    assert not Host.objects.exists()


def test_it_keeps_what_was_typed_when_it_refuses(admin_client):
    response = post(admin_client, address="a b", name="kept-name")
    assert 'value="kept-name"' in response.content.decode()


def test_it_saves_a_valid_host_and_queues_its_connect_operation(admin_client):
    response = post(admin_client, transport="tcp", port="16599")
    host = Host.objects.get()
    assert response.status_code == 302
    assert host.uri == "qemu+tcp://kvm1.example.org:16599/system"
    assert Operation.objects.get().kind == "host.connect"


def test_it_refuses_an_ssh_host_whose_key_it_cannot_read_and_keeps_what_was_typed(admin_client):
    response = post(admin_client, address="127.0.0.201", port="2222", name="no-sshd")  # nothing listens there
    assert response.status_code == 400
    assert errors_of(response, "address") == ("vmsite could not read this host's SSH key (refused: 127.0.0.201:2222: "
                                              "Connection refused): check the address, the port and that sshd runs "
                                              "there. Nothing was saved.")
    assert 'value="no-sshd"' in response.content.decode()
    assert not Host.objects.exists() and not Operation.objects.exists()


@pytest.mark.usefixtures("redis_ready")  # a token's use is counted in Redis
def test_the_api_refuses_a_fingerprint_that_is_not_one(admin_client):
    from django.contrib.auth import get_user_model

    from tests.api.conftest import token_client

    admin = get_user_model().objects.create_superuser("api-admin", password=None)
    response = token_client(admin).post(reverse("api:hosts"), {
        "name": "kvm1", "transport": "ssh", "address": "127.0.0.201", "ssh_host_key_fingerprint": "MD5:aa:bb"},
        format="json")
    assert response.status_code == 400
    assert response.json()["ssh_host_key_fingerprint"] == [
        "Give the fingerprint as ssh-keygen -l prints it, like SHA256:<43 characters>."]
    assert not Host.objects.exists()


def test_it_lets_only_administrators_register_hosts(client, db):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("viewer", password="x-irrelevant-1"))
    assert client.get(reverse("hosts:add")).status_code == 403
    assert client.post(reverse("hosts:add"), {"name": "x", "transport": "local"}).status_code == 403
    assert not Host.objects.exists()
