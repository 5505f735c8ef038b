"""Registering real libvirt hosts (harness hosts in their own namespaces) over TCP and SSH."""
import subprocess
import time

import pytest
from lxml import html
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from hosts.services import host_register_local, host_sync_enqueue, installation_ssh_key
from tests.api.conftest import token_client
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.conftest import virsh

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(operation: Operation, timeout: float = 40) -> Operation:
    def done():
        operation.refresh_from_db()
        return operation.is_finished

    stack.wait_until(done, timeout=timeout, message=f"operation {operation.pk} ({operation.kind}) to finish")
    return operation


def register(admin_client, files=None, **fields) -> Host:
    data = {"enabled": "on", **fields, **(files or {})}
    response = admin_client.post(reverse("hosts:add"), data)
    if fields.get("transport") == "ssh":  # the page shows the host's key first: confirm it
        response = admin_client.post(reverse("hosts:add"), confirmation(response))
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    return Host.objects.get(name=fields["name"])


def confirmation(response) -> dict:
    """What the key confirmation page posts when its button is pressed."""
    assert response.status_code == 200 and "host_key_token" in response.content.decode(), (
        response.context["form"].errors if response.context else response)
    page = html.fromstring(response.content)
    return {field.get("name"): field.get("value") for field in page.xpath("//form[@id='host-key-confirm']//input")}


def keygen_fingerprint(public_key: str, tmp_path) -> str:
    """The fingerprint as `ssh-keygen -l` prints it."""
    (tmp_path / "key.pub").write_text(public_key + "\n")
    return subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "key.pub")], check=True,
                          capture_output=True, text=True).stdout.split()[1]


def connect_result(host: Host) -> Operation:
    return finished(Operation.objects.filter(host=host, kind="host.connect").latest("created_at"))


def test_it_registers_hosts_over_tcp_and_ssh_and_lists_their_vms(celery_worker, admin_client, harness, guests):
    tcp_host, ssh_host = harness(), harness()
    on_tcp = guests.define(tcp_host.tcp_uri, start=True, vnc_listen=tcp_host.address)
    on_ssh = guests.define(ssh_host.tcp_uri, vnc_listen=ssh_host.address)
    ssh_host.authorize_ssh_key(installation_ssh_key().public_key)

    by_tcp = register(admin_client, name="by-tcp", transport="tcp", address=tcp_host.address)
    by_ssh = register(admin_client, name="by-ssh", transport="ssh", address=ssh_host.address, username="root")
    for host, harness_host in ((by_tcp, tcp_host), (by_ssh, ssh_host)):
        operation = connect_result(host)
        assert operation.state == OperationState.SUCCEEDED, operation.error
        assert f"Connected to {harness_host.hostname}: libvirt 9." in operation.message
        host.refresh_from_db()
        assert (host.status, host.hostname) == ("online", harness_host.hostname)
        assert host.capabilities["arch"] == "x86_64" and "pc" in host.capabilities["machines"]
        assert "bios" in host.capabilities["firmware"] and host.cpu_count and host.memory_kib
    by_ssh.refresh_from_db()
    assert ssh_host.ssh_host_public_key in by_ssh.ssh_host_keys  # pinned on first connection

    page = admin_client.get(reverse("domains:list")).content.decode()
    assert on_tcp.name() in page and on_ssh.name() in page
    assert Domain.objects.get(uuid=on_tcp.UUIDString()).host == by_tcp
    assert Domain.objects.get(uuid=on_ssh.UUIDString()).state == DomainState.SHUTOFF


def test_it_connects_with_an_uploaded_private_key(celery_worker, admin_client, harness):
    ssh_host = harness()
    key = SimpleUploadedFile("id_ed25519", ssh_host.ssh_private_key.read_bytes())
    host = register(admin_client, files={"ssh_private_key": key}, name="own-key", transport="ssh",
                    address=ssh_host.address, username="root")
    assert connect_result(host).state == OperationState.SUCCEEDED
    host.refresh_from_db()
    assert host.ssh_key.name != "vmsite"
    assert host.ssh_key.private_key_sealed.startswith("sb1:")  # kept sealed in the database, in no file
    assert not any(b"PRIVATE KEY" in path.read_bytes() for path in settings.DATA_DIR.rglob("*") if path.is_file())


def test_it_refuses_a_changed_ssh_host_key_until_an_admin_accepts_it(celery_worker, admin_client, harness,
                                                                     tmp_path):
    ssh_host = harness()
    ssh_host.authorize_ssh_key(installation_ssh_key().public_key)
    host = register(admin_client, name="rekeyed", transport="ssh", address=ssh_host.address, username="root")
    assert connect_result(host).state == OperationState.SUCCEEDED
    host.refresh_from_db()
    pinned = host.ssh_host_keys

    new_key = ssh_host.replace_ssh_host_key()  # as after a reinstall: new key, daemons restarted
    ssh_host.kill_libvirtd()
    ssh_host.start_libvirtd()
    operation = finished(host_sync_enqueue(host=host, user=None))
    assert operation.state == OperationState.FAILED
    assert operation.error.startswith("host key changed")
    host.refresh_from_db()
    assert host.status == "error" and host.ssh_host_keys == pinned
    assert "Accept the host's new SSH key" in admin_client.get(reverse("hosts:detail", args=[host.pk])).content.decode()

    shown = admin_client.post(reverse("hosts:accept_host_key", args=[host.pk]))  # the new key, to confirm
    assert shown.status_code == 200
    page = html.fromstring(shown.content)
    assert page.xpath("string(//table[@id='host-keys']//td[2])") == keygen_fingerprint(new_key, tmp_path)
    host.refresh_from_db()
    assert host.ssh_host_keys == pinned and not Operation.objects.filter(host=host, kind="host.connect",
                                                                         state="pending").exists()
    confirm = confirmation(shown)
    altered = confirm["host_key_token"][:-5] + "AAAAA"
    admin_client.post(reverse("hosts:accept_host_key", args=[host.pk]), {**confirm, "host_key_token": altered})
    host.refresh_from_db()
    assert host.ssh_host_keys == pinned  # a token that was changed pins nothing

    admin_client.post(reverse("hosts:accept_host_key", args=[host.pk]), confirm)
    assert connect_result(host).state == OperationState.SUCCEEDED
    host.refresh_from_db()
    assert host.ssh_host_keys == f"{ssh_host.address} {new_key}\n" and host.status == "online"


def test_it_fails_an_unreachable_host_in_bounded_time_without_holding_up_others(celery_worker, admin_client,
                                                                               local_libvirt):
    from tests.operations.test_operation_worker import BlackHole

    hole = BlackHole()
    try:
        started = time.monotonic()
        hanging = register(admin_client, name="hanging", transport="tcp", address="127.0.0.1", port=str(hole.port))
        local, _ = host_register_local()
        other = finished(host_sync_enqueue(host=local, user=None), timeout=10)
        assert other.state == OperationState.SUCCEEDED  # while the hanging host still waits
        operation = connect_result(hanging)
        assert time.monotonic() - started <= 30
        assert operation.state == OperationState.FAILED and operation.error.startswith("timeout")
    finally:
        hole.close()


def test_it_reconciles_creates_deletes_and_state_changes_like_virsh(celery_worker, admin_client, harness, guests):
    harness_host = harness()
    first = guests.define(harness_host.tcp_uri, start=True, vnc_listen=harness_host.address)
    host = register(admin_client, name="reconciled", transport="tcp", address=harness_host.address)
    connect_result(host)

    first.destroy()
    second = guests.define(harness_host.tcp_uri, start=True, vnc_listen=harness_host.address)
    second.suspend()
    third = guests.define(harness_host.tcp_uri)
    third.undefine()
    assert finished(host_sync_enqueue(host=host, user=None)).state == OperationState.SUCCEEDED

    expected = {}
    for line in virsh(harness_host.tcp_uri, "list", "--all", "--name").split():
        expected[line] = virsh(harness_host.tcp_uri, "domstate", line).strip()
    cached = {d.name: d.get_state_display().lower() for d in Domain.objects.filter(host=host)}
    assert cached == {name: {"shut off": "shut off", "paused": "paused", "running": "running"}[state]
                      for name, state in expected.items()}
    assert cached[first.name()] == "shut off" and cached[second.name()] == "paused"


def test_it_fails_a_call_to_a_host_that_hangs_after_connecting(celery_worker, admin_client, harness):
    import signal

    harness_host = harness()
    host = register(admin_client, name="frozen", transport="tcp", address=harness_host.address)
    assert connect_result(host).state == OperationState.SUCCEEDED
    harness_host.kill_libvirtd(signal.SIGSTOP)  # connected, then silent: keepalive must notice
    try:
        started = time.monotonic()
        operation = finished(host_sync_enqueue(host=host, user=None), timeout=40)
        assert operation.state == OperationState.FAILED and operation.error.startswith("timeout")
        assert time.monotonic() - started <= 30, operation.error
        host.refresh_from_db()
        assert host.status == "offline"
    finally:
        harness_host.kill_libvirtd(signal.SIGCONT)


def test_it_shows_the_host_key_fingerprint_and_pins_only_what_the_admin_confirmed(celery_worker, admin_client,
                                                                                   harness, tmp_path):
    ssh_host = harness()
    ssh_host.authorize_ssh_key(installation_ssh_key().public_key)
    fields = {"name": "confirmed", "transport": "ssh", "address": ssh_host.address, "username": "root",
              "enabled": "on"}
    shown = admin_client.post(reverse("hosts:add"), fields)
    page = html.fromstring(shown.content)
    key_type, fingerprint = ssh_host.ssh_host_public_key.split()[0], keygen_fingerprint(ssh_host.ssh_host_public_key,
                                                                                          tmp_path)
    assert [(row.xpath("string(td[1])"), row.xpath("string(td[2])")) for row in page.xpath("//table[@id='host-keys']"
                                                                                            "/tbody/tr")] == [
        (key_type, fingerprint)]
    assert page.xpath("//button[@data-copy='#fingerprint-1']")
    assert not Host.objects.exists() and not Operation.objects.exists()  # nothing pinned before the confirmation

    response = admin_client.post(reverse("hosts:add"), confirmation(shown))
    assert response.status_code == 302
    host = Host.objects.get(name="confirmed")
    assert host.ssh_host_keys == f"{ssh_host.address} {ssh_host.ssh_host_public_key}\n"  # pinned at once
    assert connect_result(host).state == OperationState.SUCCEEDED
    assert "Pinning" not in connect_result(host).message


def test_it_refuses_a_confirmation_when_the_host_presents_another_key_or_the_token_was_altered(admin_client,
                                                                                               harness):
    ssh_host = harness()
    fields = {"name": "swapped", "transport": "ssh", "address": ssh_host.address, "username": "root"}
    confirm = confirmation(admin_client.post(reverse("hosts:add"), fields))

    token = confirm["host_key_token"]
    altered = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    response = admin_client.post(reverse("hosts:add"), {**confirm, "host_key_token": altered})
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [
        "The confirmation has expired or was altered: check the host's key again."]
    response = admin_client.post(reverse("hosts:add"), {**confirm, "port": "2222"})
    assert response.context["form"].non_field_errors() == [
        "The address or port changed after the key was shown: check the host's key again."]

    ssh_host.replace_ssh_host_key()  # someone else answers at that address now
    response = admin_client.post(reverse("hosts:add"), confirm)
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [
        "The host now presents another SSH key than the one you confirmed: nothing was registered. Someone may be "
        "impersonating it; check the host and try again."]
    assert 'value="swapped"' in response.content.decode()  # what was typed is kept
    assert not Host.objects.exists() and not Operation.objects.exists()


def test_the_api_pins_only_a_key_with_the_expected_fingerprint(admin_client, harness, tmp_path):
    from django.contrib.auth import get_user_model

    ssh_host = harness()
    api = token_client(get_user_model().objects.create_superuser("api-admin", password=None))
    fingerprint = keygen_fingerprint(ssh_host.ssh_host_public_key, tmp_path)
    wrong = "SHA256:" + "A" * 43
    body = {"name": "by-api", "transport": "ssh", "address": ssh_host.address, "username": "root"}
    response = api.post(reverse("api:hosts"), {**body, "ssh_host_key_fingerprint": wrong}, format="json")
    assert response.status_code == 400
    assert response.json()["ssh_host_key_fingerprint"] == [
        f"The host presents {ssh_host.ssh_host_public_key.split()[0]} {fingerprint}, not the expected {wrong}: "
        "nothing was registered."]
    assert not Host.objects.exists()
    response = api.post(reverse("api:hosts"), {**body, "ssh_host_key_fingerprint": fingerprint}, format="json")
    assert response.status_code == 201, response.content
    assert Host.objects.get(name="by-api").ssh_host_keys == f"{ssh_host.address} {ssh_host.ssh_host_public_key}\n"
