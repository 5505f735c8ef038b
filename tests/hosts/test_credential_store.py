"""The credential store (hosts/credentials.py): what the database holds is sealed and bound to its row,
files exist only while a process uses them, and the migration moves the old key files in."""
import io
import os

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from hosts.connection import host_login
from hosts.credentials import (host_files, host_sasl_login, host_tls_files, process_dir, ssh_key_file, ssh_key_private,
                               tls_pki_dir)
from hosts.models import Host
from hosts.services import host_create, installation_ssh_key, ssh_key_import
from hosts.ssh import new_private_key
from tests.harness.pki import make_pki
from virt.connection import NO_LOGIN, login_set, open_with_timeout
from virt.errors import HostUnavailableReason
from vmsite.secretbox import SecretBoxError, generate_key, parse_keys, unseal


@pytest.mark.django_db
def test_files_exist_privately_only_while_in_use_and_a_value_does_not_open_on_another_row():
    pki = make_pki("127.0.0.1", "h")
    ssh = Host.objects.create(name="s", transport="ssh", address="127.0.0.1", ssh_key=installation_ssh_key())
    tls, _ = host_create(user=None, name="t", transport="tls", address="127.0.0.1", enabled=False,
                         tls_files={"cacert.pem": pki.ca_pem, "clientcert.pem": pki.client_cert_pem,
                                    "clientkey.pem": pki.client_key_pem})
    assert host_tls_files(tls)["clientkey.pem"] == pki.client_key_pem
    with host_files(ssh)(), host_files(tls)(), host_files(tls)():
        key_file, client_key = ssh_key_file(ssh), tls_pki_dir(tls) / "clientkey.pem"
        assert key_file.read_bytes() == ssh_key_private(ssh.ssh_key) and client_key.read_bytes() == pki.client_key_pem
        modes = {oct(os.stat(path).st_mode & 0o777) for path in (key_file, client_key)}
        assert modes == {"0o600"} and oct(process_dir().stat().st_mode & 0o777) == "0o700"
        assert process_dir().parent == settings.CREDENTIALS_DIR and process_dir().name == str(os.getpid())
    assert not key_file.exists() and not client_key.exists()  # the last user gone: removed

    other = ssh_key_import(name="other", private_key=new_private_key())
    with pytest.raises(SecretBoxError):  # a sealed key copied onto another row does not open there
        unseal(ssh.ssh_key.private_key_sealed, context=f"ssh-private-key:sshkey:{other.pk}")


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_key_files_and_tls_folders_into_the_store():
    pki, key = make_pki("127.0.0.1", "h"), new_private_key()
    executor = MigrationExecutor(connection)
    executor.migrate([("hosts", "0001_initial")])
    old = executor.loader.project_state([("hosts", "0001_initial")]).apps
    key_path = settings.DATA_DIR / "ssh" / "keys" / "key-old"
    tls_dir = settings.DATA_DIR / "hosts" / "old" / "pki"
    for path, data in ((key_path, key), (tls_dir / "cacert.pem", pki.ca_pem),
                       (tls_dir / "clientcert.pem", pki.client_cert_pem), (tls_dir / "clientkey.pem", pki.client_key_pem)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    ssh_key = old.get_model("hosts", "SSHKey").objects.create(name="old", private_key_path=str(key_path),
                                                              public_key="", fingerprint="")
    old_host = old.get_model("hosts", "Host")
    ssh = old_host.objects.create(name="old-ssh", transport="ssh", address="127.0.0.1", ssh_key_id=ssh_key.pk)
    tls = old_host.objects.create(name="old-tls", transport="tls", address="127.0.0.1", tls_dir=str(tls_dir))

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    ssh, tls = Host.objects.get(pk=ssh.pk), Host.objects.get(pk=tls.pk)
    assert ssh_key_private(ssh.ssh_key) == key and host_tls_files(tls) == {
        "cacert.pem": pki.ca_pem, "clientcert.pem": pki.client_cert_pem, "clientkey.pem": pki.client_key_pem}
    assert not key_path.exists() and not tls_dir.exists()  # moved, not copied


@pytest.mark.django_db
def test_reseal_moves_every_credential_to_the_first_key(settings):
    old, new = settings.SECRET_BOX_KEYS, parse_keys(generate_key())  # old: what sealed the installation key
    pki = make_pki("127.0.0.1", "h")
    host, _ = host_create(user=None, name="t", transport="tls", address="127.0.0.1", enabled=False,
                          sasl_username="vmsite", sasl_password="pw",
                          tls_files={"cacert.pem": pki.ca_pem, "clientcert.pem": pki.client_cert_pem,
                                     "clientkey.pem": pki.client_key_pem})
    key = ssh_key_import(name="k", private_key=new_private_key())
    settings.SECRET_BOX_KEYS = new + old
    call_command("credentials_reseal", stdout=io.StringIO())
    settings.SECRET_BOX_KEYS = new  # the old key dropped: everything still opens
    host.refresh_from_db()
    key.refresh_from_db()
    assert host_tls_files(host)["clientkey.pem"] == pki.client_key_pem
    assert host_sasl_login(host) == ("vmsite", "pw") and ssh_key_private(key).startswith(b"-----BEGIN OPENSSH")
    assert ssh_key_private(installation_ssh_key()).startswith(b"-----BEGIN OPENSSH")


@pytest.mark.django_db
def test_a_node_without_the_key_says_so_instead_of_failing_obscurely(settings):
    pki = make_pki("127.0.0.1", "h")
    tls, _ = host_create(user=None, name="t", transport="tls", address="127.0.0.1", enabled=False,
                         sasl_username="vmsite", sasl_password="pw",
                         tls_files={"cacert.pem": pki.ca_pem, "clientcert.pem": pki.client_cert_pem,
                                    "clientkey.pem": pki.client_key_pem})
    settings.SECRET_BOX_KEYS = parse_keys(generate_key())  # another installation's key
    uri = "test:///default"  # the test driver, opened with the TLS host's login: files and SASL
    login_set(uri, host_login(tls))
    with pytest.raises(HostUnavailableReason) as refused:
        open_with_timeout(uri, 10)
    assert refused.value.reason == "credentials unreadable"
    assert "give it the installation's key-encryption key" in str(refused.value)
    assert not list(tls_pki_dir(tls).glob("*"))  # nothing written
    login_set(uri, NO_LOGIN)
