"""Hosts whose libvirtd asks for a SASL login (auth_tcp / auth_tls = "sasl"): the login is given once
on the host form, kept sealed, never shown again, and handed to libvirt through openAuth's callback
by every path that opens a connection (the worker's connect, this process's reconcile, a
migration's destination). Harness hosts run real libvirtds with a sasldb made by saslpasswd2."""
import pytest
from django.urls import reverse

from domains.models import Domain
from hosts.credentials import host_sasl_login
from hosts.forms import HostForm
from hosts.models import Host
from hosts.services import host_create, host_update
from operations.choices import OperationState
from tests.domains.test_migration import migrated, watch
from tests.hosts.test_registration import connect_result, register

PASSWORD = "correct horse battery staple"


def edit(admin_client, host: Host, **fields) -> None:
    data = {"name": host.name, "transport": host.transport, "address": host.address, "enabled": "on", **fields}
    response = admin_client.post(reverse("hosts:edit", args=[host.pk]), data)
    assert response.status_code == 302, response.context["form"].errors if response.context else response


def connected(host: Host) -> str:
    """The connect operation's outcome: "" when it succeeded, else its error."""
    operation = connect_result(host)
    return "" if operation.state == OperationState.SUCCEEDED else operation.error


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_logs_in_with_sasl_over_tcp_and_tls_migrates_between_sasl_hosts_and_names_a_refused_login(
        celery_worker, admin_client, harness, guests):
    remote = harness(tls=True, sasl_users={"vmsite": PASSWORD, "mallory": "mallorys"}, sasl_allowed=["vmsite"])
    other = harness(sasl_users={"vmsite": PASSWORD})
    pki = remote.pki
    on_tcp = register(admin_client, name="sasl-tcp", transport="tcp", address=remote.address,
                      sasl_username="vmsite", sasl_password=PASSWORD)
    on_tls = register(admin_client, name="sasl-tls", transport="tls", address=remote.address,
                      sasl_username="vmsite", sasl_password=PASSWORD,
                      files={"tls_ca_cert": _upload(pki.ca_pem), "tls_client_cert": _upload(pki.client_cert_pem),
                             "tls_client_key": _upload(pki.client_key_pem)})
    destination = register(admin_client, name="sasl-dest", transport="tcp", address=other.address,
                           sasl_username="vmsite", sasl_password=PASSWORD)
    without_login = register(admin_client, name="sasl-none", transport="tcp", address=other.address)
    assert [connected(host) for host in (on_tcp, on_tls, destination)] == ["", "", ""]
    assert connected(without_login).startswith("SASL authentication failed: The host asks for a SASL login")

    # The migration opens its own connection to the destination: with the destination's login.
    guest = guests.define(remote.socket_uri, start=True, vnc_listen=remote.address)
    guests.created.append((other.socket_uri, guest.name()))
    from inventory.reconcile import host_reconcile
    host_reconcile(host=on_tcp)  # this process opens the host too, with the same sealed login
    domain = Domain.objects.get(host=on_tcp, uuid=guest.UUIDString())
    operation = migrated(admin_client, domain, destination, live="on")
    watch(operation)
    assert operation.state == OperationState.SUCCEEDED, operation.error

    page = admin_client.get(reverse("hosts:edit", args=[on_tcp.pk])).content.decode()
    assert PASSWORD not in page and "Leave empty to keep the stored password." in page
    edit(admin_client, on_tcp, sasl_username="vmsite", sasl_password="wrong")
    edit(admin_client, on_tls, sasl_username="mallory", sasl_password="mallorys")  # in the sasldb, not allowed
    for error in (connected(on_tcp), connected(on_tls)):
        assert error.startswith("SASL authentication failed: The host refused the SASL user name and password")
        assert "saslpasswd2 -a libvirt" in error and "mech_list" in error and "sasl_allowed_username_list" in error


def _upload(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("file.pem", data)


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"sasl_password": "secret"}, "sasl_username", "Give the SASL user that this password belongs to."),
    ({"sasl_username": "vmsite"}, "sasl_password", "Give the SASL user's password."),
    ({"sasl_username": "vm site", "sasl_password": "x"}, "sasl_username", "no spaces, quotes or control characters"),
    ({"sasl_username": "vmsite", "sasl_password": "line\nbreak"}, "sasl_password", "control characters"),
])
def test_the_form_refuses_an_incomplete_or_malformed_sasl_login(fields, field, message):
    form = HostForm({"name": "h", "transport": "tcp", "address": "127.0.0.1", **fields})
    assert not form.is_valid()
    assert any(message in error for error in form.errors[field])


@pytest.mark.django_db
def test_an_empty_password_keeps_the_stored_one_and_an_empty_user_forgets_the_login():
    host, _ = host_create(user=None, name="h", transport="tcp", address="127.0.0.1", enabled=False,
                          sasl_username="vmsite", sasl_password=PASSWORD)
    host.refresh_from_db()
    assert PASSWORD not in host.sasl_password_sealed and host_sasl_login(host) == ("vmsite", PASSWORD)
    form = HostForm({"name": "h", "transport": "tcp", "address": "127.0.0.1", "sasl_username": "other"},
                    instance=host)
    assert form.is_valid(), form.errors
    host_update(host=host, user=None, **form.host_fields())
    host.refresh_from_db()
    assert host_sasl_login(host) == ("other", PASSWORD)
    host_update(host=host, user=None, name="h", transport="tcp", address="127.0.0.1", sasl_username="")
    host.refresh_from_db()
    assert not host.has_sasl_login and host.sasl_password_sealed == ""


@pytest.mark.django_db
def test_host_add_takes_the_sasl_password_from_a_file_and_refuses_a_missing_one(tmp_path):
    from io import StringIO

    from django.core.management import CommandError, call_command

    (tmp_path / "password").write_text(PASSWORD + "\n")
    call_command("host_add", "kvm9", "--transport", "tcp", "--address", "kvm9.example.org", "--sasl-user", "vmsite",
                 "--sasl-password-file", str(tmp_path / "password"), stdout=StringIO())
    assert host_sasl_login(Host.objects.get(name="kvm9")) == ("vmsite", PASSWORD)
    with pytest.raises(CommandError, match="--sasl-password-file: cannot read"):
        call_command("host_add", "kvm8", "--transport", "tcp", "--address", "kvm8.example.org", "--sasl-user",
                     "vmsite", "--sasl-password-file", str(tmp_path / "missing"), stdout=StringIO())
    with pytest.raises(CommandError, match="sasl-password: Give the SASL user's password."):
        call_command("host_add", "kvm7", "--transport", "tcp", "--address", "kvm7.example.org", "--sasl-user",
                     "vmsite", stdout=StringIO())
