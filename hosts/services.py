"""Writes on hosts: registration, credentials (sealed: hosts/credentials.py), and queuing their operations
(its status: hosts/sync.py)."""
from __future__ import annotations

import shutil
import socket

from cryptography.hazmat.primitives import serialization
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from events.publish import publish_host
from hosts.choices import Transport
from hosts.connection import host_files_dir, host_ssh_files_ensure
from hosts.credentials import host_sasl_clear, host_sasl_seal, host_tls_seal, ssh_key_seal
from hosts.models import Host, SSHKey
from hosts.ssh import fingerprint_of_key, load_private_key, new_private_key, public_line, scan_host_keys, ssh_dir
from operations.models import Operation
from operations.services import operation_enqueue

LOCAL_HOST_NAME = "local"
INSTALLATION_KEY_NAME = "vmsite"


def host_register_local(*, name: str = LOCAL_HOST_NAME) -> tuple[Host, bool]:
    """The host vmsite runs on, reached as qemu:///system. Safe to call again."""
    existing = Host.objects.filter(transport=Transport.LOCAL).first()
    if existing is not None:
        return existing, False
    return Host.objects.create(name=name, transport=Transport.LOCAL), True


@transaction.atomic
def installation_ssh_key() -> SSHKey:
    """vmsite's own key pair, made on first use and kept sealed in the database, so every node of
    the installation logs in with it; its public half goes into hosts' authorized_keys."""
    key = SSHKey.objects.filter(name=INSTALLATION_KEY_NAME).first()
    if key is not None:
        return key
    old_file = ssh_dir() / "id_ed25519"
    if old_file.exists():  # a database made afresh next to an old data folder: hosts trust this key already
        private_key = old_file.read_bytes()
    else:
        private_key = new_private_key()
    return ssh_key_import(name=INSTALLATION_KEY_NAME, private_key=private_key,
                          comment=f"vmsite@{socket.gethostname()}")


def ssh_key_import(*, name: str, private_key: bytes, comment: str = "") -> SSHKey:
    """Keep a private key sealed in the store; the row shows its public half and fingerprint."""
    key = load_private_key(private_key)
    record = SSHKey.objects.create(name=name, public_key=public_line(key, comment or name),
                                   fingerprint=fingerprint_of_key(key))
    ssh_key_seal(record, _openssh_format(key))
    return record


def _openssh_format(key) -> bytes:
    """The key as ssh reads it, whatever format it came in."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())


@transaction.atomic
def host_create(*, user: AbstractBaseUser | None, tls_files: dict[str, bytes] | None = None,
                private_key: bytes | None = None, sasl_username: str = "", sasl_password: str = "",
                **fields) -> tuple[Host, Operation]:
    """Register a host from validated fields, then queue the connect operation that proves it."""
    host = Host.objects.create(**fields)
    transaction.on_commit(lambda: publish_host(host_id=host.pk))
    _attach_credentials(host, tls_files=tls_files, private_key=private_key)
    _attach_sasl_login(host, username=sasl_username, password=sasl_password)
    return host, host_connect_enqueue(host=host, user=user)


@transaction.atomic
def host_update(*, host: Host, user: AbstractBaseUser | None, tls_files: dict[str, bytes] | None = None,
                private_key: bytes | None = None, sasl_username: str = "", sasl_password: str = "",
                **fields) -> Operation:
    """An empty sasl_password keeps the stored one (under sasl_username); an empty sasl_username
    forgets the login."""
    if host.transport == Transport.SSH and (fields.get("address"), fields.get("port")) != (host.address, host.port):
        host.ssh_host_keys = ""  # a different endpoint is a different machine: pin its key afresh
    for name, value in fields.items():
        setattr(host, name, value)
    host.save()
    _attach_credentials(host, tls_files=tls_files, private_key=private_key)
    _attach_sasl_login(host, username=sasl_username, password=sasl_password)
    return host_connect_enqueue(host=host, user=user)


def _attach_credentials(host: Host, *, tls_files: dict[str, bytes] | None, private_key: bytes | None) -> None:
    if host.transport == Transport.SSH:
        if private_key:
            host.ssh_key = ssh_key_import(name=f"host-{host.pk}-{host.name}"[:64], private_key=private_key)
        elif host.ssh_key is None:
            host.ssh_key = installation_ssh_key()
        host.save(update_fields=["ssh_key", "ssh_host_keys"])
        host_ssh_files_ensure(host)
    if host.transport == Transport.TLS and tls_files:
        host_tls_seal(host, tls_files)


def _attach_sasl_login(host: Host, *, username: str, password: str) -> None:
    if host.transport not in (Transport.TCP, Transport.TLS) or not username:
        if host.sasl_username or host.sasl_password_sealed:
            host_sasl_clear(host)
    elif password:
        host_sasl_seal(host, username=username, password=password)
    elif username != host.sasl_username:
        host.sasl_username = username
        host.save(update_fields=["sasl_username"])


def host_set_enabled(*, host: Host, enabled: bool) -> None:
    Host.objects.filter(pk=host.pk).update(enabled=enabled)
    publish_host(host_id=host.pk)
    host.enabled = enabled


def host_remove(*, host: Host) -> None:
    """Forget the host and its cached inventory. Its guests are not touched."""
    folder = host_files_dir(host)
    key = host.ssh_key
    host_id = host.pk
    host.delete()
    publish_host(host_id=host_id)
    if key is not None and key.name != INSTALLATION_KEY_NAME and not key.hosts.exists():
        key.delete()
    shutil.rmtree(folder, ignore_errors=True)


def host_pin_ssh_keys(*, host: Host) -> str:
    """Trust on first use: record the keys the host presents now. Returns the known_hosts lines."""
    lines = scan_host_keys(host.address, host.port or 22)
    Host.objects.filter(pk=host.pk).update(ssh_host_keys=lines)
    host.ssh_host_keys = lines
    host_ssh_files_ensure(host)
    return lines


def host_accept_new_host_key(*, host: Host, user: AbstractBaseUser | None, known_hosts: str = "") -> Operation:
    """An administrator trusts the host's new SSH key (after a reinstall): pin the keys they confirmed
    (none given: those the host presents at the connection), then connect."""
    Host.objects.filter(pk=host.pk).update(ssh_host_keys=known_hosts)
    host.ssh_host_keys = known_hosts
    host_ssh_files_ensure(host)  # the old key is trusted no more, from now on
    return host_connect_enqueue(host=host, user=user)


def host_connect_enqueue(*, host: Host, user: AbstractBaseUser | None) -> Operation:
    return operation_enqueue(kind="host.connect", target=host, host=host, user=user)


def host_sync_enqueue(*, host: Host, user: AbstractBaseUser | None) -> Operation:
    return operation_enqueue(kind="host.sync", target=host, host=host, user=user)
