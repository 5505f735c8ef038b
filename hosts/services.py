"""Writes on hosts: registration, SSH material, and queuing their operations (its status: hosts/sync.py)."""
from __future__ import annotations

import shutil
import socket

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from events.publish import publish_host
from hosts.choices import Transport
from hosts.connection import host_files_dir, host_ssh_files_ensure
from hosts.models import Host, SSHKey
from hosts.ssh import generate_key_pair, load_private_key, public_line, fingerprint_of_key, scan_host_keys, ssh_dir, \
    write_private_file
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


def installation_ssh_key() -> SSHKey:
    """vmsite's own key pair, made on first use; its public half goes into hosts' authorized_keys."""
    key = SSHKey.objects.filter(name=INSTALLATION_KEY_NAME).first()
    if key is not None:
        return key
    path = ssh_dir() / "id_ed25519"
    comment = f"vmsite@{socket.gethostname()}"
    if path.exists():  # a database made afresh next to the old data folder: hosts trust this key already
        key = load_private_key(path.read_bytes())
        public, fingerprint = public_line(key, comment), fingerprint_of_key(key)
    else:
        public, fingerprint = generate_key_pair(path, comment=comment)
    return SSHKey.objects.create(name=INSTALLATION_KEY_NAME, private_key_path=str(path), public_key=public,
                                 fingerprint=fingerprint)


def ssh_key_import(*, name: str, private_key: bytes) -> SSHKey:
    """Store an uploaded private key as a 0600 file; the database keeps its path and fingerprint."""
    key = load_private_key(private_key)
    record = SSHKey.objects.create(name=name, private_key_path="", public_key=public_line(key, name),
                                   fingerprint=fingerprint_of_key(key))
    path = ssh_dir() / "keys" / f"key-{record.pk}"
    write_private_file(path, private_key)
    record.private_key_path = str(path)
    record.save(update_fields=["private_key_path"])
    return record


@transaction.atomic
def host_create(*, user: AbstractBaseUser | None, tls_files: dict[str, bytes] | None = None,
                private_key: bytes | None = None, **fields) -> tuple[Host, Operation]:
    """Register a host from validated fields, then queue the connect operation that proves it."""
    host = Host.objects.create(**fields)
    transaction.on_commit(lambda: publish_host(host_id=host.pk))
    _attach_credentials(host, tls_files=tls_files, private_key=private_key)
    return host, host_connect_enqueue(host=host, user=user)


@transaction.atomic
def host_update(*, host: Host, user: AbstractBaseUser | None, tls_files: dict[str, bytes] | None = None,
                private_key: bytes | None = None, **fields) -> Operation:
    if host.transport == Transport.SSH and (fields.get("address"), fields.get("port")) != (host.address, host.port):
        host.ssh_host_keys = ""  # a different endpoint is a different machine: pin its key afresh
    for name, value in fields.items():
        setattr(host, name, value)
    host.save()
    _attach_credentials(host, tls_files=tls_files, private_key=private_key)
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
        folder = host_files_dir(host) / "pki"
        for filename, data in tls_files.items():
            write_private_file(folder / filename, data)
        host.tls_dir = str(folder)
        host.save(update_fields=["tls_dir"])


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
        _remove_file(key.private_key_path)
        key.delete()
    shutil.rmtree(folder, ignore_errors=True)


def _remove_file(path: str) -> None:
    try:
        (settings.DATA_DIR / path).unlink()
    except OSError:
        pass


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
