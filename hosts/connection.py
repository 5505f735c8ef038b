"""The URI vmsite itself connects with: the host's validated URI plus options that only vmsite
sets (its own key file, its strict ssh command, its TLS folder). Users never supply these. The key
and TLS files it names exist only while a connection opens (hosts/credentials.py): connect_uri
hands libvirt's opener the Login that writes them, and the SASL login, for that URI.

Building a URI has no side effects: it is called as a getter from many threads (the listener every
couple of seconds per host). The files a qemu+ssh connection runs on (the pinned known_hosts and
the ssh wrapper) are written by host_ssh_files_ensure, only when their content changes and
atomically, so an ssh started at any moment reads either the old file or the new one, whole."""
from __future__ import annotations

import os
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings

from hosts.choices import Transport
from hosts.credentials import host_files, host_sasl_login_for_connect, ssh_key_file, tls_pki_dir
from hosts.models import Host
from hosts.ssh import ssh_command_script
from virt.connection import Login, login_set, pool
from virt.types import Connection


def host_files_dir(host: Host) -> Path:
    return settings.DATA_DIR / "hosts" / str(host.pk)


def ssh_known_hosts_path(host: Host) -> Path:
    return host_files_dir(host) / "known_hosts"


def ssh_command_path(host: Host) -> Path:
    return host_files_dir(host) / "ssh"


def connect_uri(host: Host) -> str:
    """The URI to open the host with; every open of it in this process uses the host's login."""
    uri = _uri_with_options(host)
    login_set(uri, host_login(host))
    return uri


def host_login(host: Host) -> Login:
    """Reads only the sealed values now; they are opened when a connection opens."""
    sasl = None
    if host.transport in (Transport.TCP, Transport.TLS) and host.has_sasl_login:
        sealed = Host(pk=host.pk, sasl_username=host.sasl_username, sasl_password_sealed=host.sasl_password_sealed)
        sasl = lambda: host_sasl_login_for_connect(sealed)  # noqa: E731
    return Login(files=host_files(host), sasl=sasl)


def _uri_with_options(host: Host) -> str:
    if host.transport == Transport.SSH:
        return f"{host.uri}?{urlencode(_ssh_options(host))}"
    if host.transport == Transport.TLS and host.has_tls_files:
        return f"{host.uri}?{urlencode({'pkipath': str(tls_pki_dir(host))})}"
    return host.uri


def _ssh_options(host: Host) -> dict[str, str]:
    options = {"command": str(ssh_command_path(host)), "no_tty": "1"}
    if host.ssh_key is not None:
        options["keyfile"] = str(ssh_key_file(host))
    return options


def host_ssh_files_ensure(host: Host) -> bool:
    """Make the host's known_hosts and ssh wrapper say what the database says; True if a file was
    (re)written. Call it where the pinned keys change and before a connect that may find them
    missing (a process start, a fresh data folder); calling it again with nothing changed writes
    nothing."""
    if host.transport != Transport.SSH:
        return False
    known_hosts = ssh_known_hosts_path(host)
    wrote = _write_if_changed(known_hosts, host.ssh_host_keys.encode(), mode=0o600)
    wrote |= _write_if_changed(ssh_command_path(host), ssh_command_script(known_hosts).encode(), mode=0o700)
    return wrote


def hosts_ssh_files_ensure() -> int:
    """host_ssh_files_ensure for every SSH host with pinned keys (at a process start); how many changed."""
    hosts = Host.objects.filter(transport=Transport.SSH).exclude(ssh_host_keys="")
    return sum(host_ssh_files_ensure(host) for host in hosts)


def _write_if_changed(path: Path, data: bytes, *, mode: int) -> bool:
    try:
        if path.read_bytes() == data and path.stat().st_mode & 0o777 == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def host_session(host: Host) -> AbstractContextManager[Connection]:
    """The host's pooled connection for the length of a `with` block; libvirt errors leave typed."""
    return pool().session(connect_uri(host))
