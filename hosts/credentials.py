"""The credential store: SSH private keys, TLS client files and libvirtd SASL passwords, sealed in
the database with the key-encryption key (vmsite/secretbox.py), each bound to its row, so any node
holding the database and that key can reach every host, and none needs another node's files.

A secret leaves the database only while a process uses it: files are written into this process's
own 0700 folder under CREDENTIALS_DIR, mode 0600, for the length of a connection opening (or of
the console proxy's ssh tunnel), and removed after; the folder goes when the process ends, and a
folder left by a dead process is removed by the next process that starts there."""
from __future__ import annotations

import atexit
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from django.conf import settings

from hosts.models import Host, SSHKey
from virt.errors import credentials_unreadable
from vmsite.secretbox import SecretBoxError, seal, unseal

TLS_FIELDS = {"cacert.pem": "tls_ca_sealed", "clientcert.pem": "tls_cert_sealed", "clientkey.pem": "tls_key_sealed"}
SSH_KEY_FILE = "id_key"


def ssh_key_context(key: SSHKey) -> str:
    return f"ssh-private-key:sshkey:{key.pk}"


def tls_context(host: Host, filename: str) -> str:
    return f"tls-{filename}:host:{host.pk}"


def sasl_context(host: Host) -> str:
    return f"sasl-password:host:{host.pk}"


def ssh_key_seal(key: SSHKey, private_key: bytes) -> None:
    """Keep the private key sealed on its (saved) row."""
    key.private_key_sealed = seal(private_key.decode("ascii"), context=ssh_key_context(key))
    key.save(update_fields=["private_key_sealed"])


def ssh_key_private(key: SSHKey) -> bytes:
    return unseal(key.private_key_sealed, context=ssh_key_context(key)).encode("ascii")


def host_tls_seal(host: Host, files: dict[str, bytes]) -> None:
    """Keep the given pkipath files (by their file names) sealed on the host's row."""
    for filename, data in files.items():
        setattr(host, TLS_FIELDS[filename], seal(data.decode("ascii"), context=tls_context(host, filename)))
    host.save(update_fields=[TLS_FIELDS[name] for name in files])


def host_tls_files(host: Host) -> dict[str, bytes]:
    return {name: unseal(getattr(host, field), context=tls_context(host, name)).encode("ascii")
            for name, field in TLS_FIELDS.items() if getattr(host, field)}


def host_sasl_seal(host: Host, *, username: str, password: str) -> None:
    host.sasl_username = username
    host.sasl_password_sealed = seal(password, context=sasl_context(host))
    host.save(update_fields=["sasl_username", "sasl_password_sealed"])


def host_sasl_clear(host: Host) -> None:
    host.sasl_username, host.sasl_password_sealed = "", ""
    host.save(update_fields=["sasl_username", "sasl_password_sealed"])


def host_sasl_login(host: Host) -> tuple[str, str]:
    return host.sasl_username, unseal(host.sasl_password_sealed, context=sasl_context(host))


def host_sasl_login_for_connect(host: Host) -> tuple[str, str]:
    """host_sasl_login, with a value this node cannot open reported as the host's connect failure."""
    try:
        return host_sasl_login(host)
    except SecretBoxError as exc:
        raise credentials_unreadable(str(exc)) from None


# -- files, only while a process needs them --------------------------------------------------------

def host_credentials_dir(host: Host) -> Path:
    """Where this process writes the host's files while it uses them (a stable path: URIs name it)."""
    return process_dir() / f"host-{host.pk}"


def ssh_key_file(host: Host) -> Path:
    return host_credentials_dir(host) / SSH_KEY_FILE


def tls_pki_dir(host: Host) -> Path:
    return host_credentials_dir(host) / "pki"


def host_files(host: Host) -> Callable[[], AbstractContextManager[None]]:
    """A context manager factory: the host's key or TLS files exist while its `with` block runs."""
    sealed = _sealed_files(host)

    @contextmanager
    def present() -> Iterator[None]:
        with _materialised(sealed):
            yield

    return present


def _sealed_files(host: Host) -> dict[Path, tuple[str, str]]:
    """{path: (sealed value, context)}: read from the row now, opened only when written."""
    files: dict[Path, tuple[str, str]] = {}
    if host.transport == "ssh" and host.ssh_key is not None and host.ssh_key.private_key_sealed:
        files[ssh_key_file(host)] = (host.ssh_key.private_key_sealed, ssh_key_context(host.ssh_key))
    if host.transport == "tls":
        for name, field in TLS_FIELDS.items():
            if getattr(host, field):
                files[tls_pki_dir(host) / name] = (getattr(host, field), tls_context(host, name))
    return files


_lock = threading.Lock()
_users: dict[Path, int] = {}  # how many opens use each written file now


@contextmanager
def _materialised(sealed: dict[Path, tuple[str, str]]) -> Iterator[None]:
    opened = {path: _opened(value, context) for path, (value, context) in sealed.items()}  # all, or none
    written: list[Path] = []
    with _lock:
        try:
            if opened:
                _prepare_process_dir()
            for path, data in opened.items():
                if not _users.get(path):
                    _write_private(path, data)
                _users[path] = _users.get(path, 0) + 1
                written.append(path)
        except BaseException:
            _release(written)
            raise
    try:
        yield
    finally:
        with _lock:
            _release(written)


def _release(paths: list[Path]) -> None:
    """One user fewer of each file; the last one out removes it. Called under _lock."""
    for path in paths:
        _users[path] -= 1
        if not _users[path]:
            del _users[path]
            path.unlink(missing_ok=True)


def _opened(value: str, context: str) -> bytes:
    try:
        return unseal(value, context=context).encode("ascii")
    except SecretBoxError as exc:
        raise credentials_unreadable(str(exc)) from None


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)


_prepared_pids: set[int] = set()


def process_dir() -> Path:
    """This process's own folder (by pid: a forked worker gets its own). Naming it writes nothing."""
    return Path(settings.CREDENTIALS_DIR) / str(os.getpid())


def _prepare_process_dir() -> None:
    """Make this process's folder 0700, once; remove those of dead processes; remove ours at exit.
    Called under _lock."""
    pid = os.getpid()
    if pid in _prepared_pids:
        return
    folder = process_dir()
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _remove_dead_processes_dirs(folder.parent)
    folder.mkdir(exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    _prepared_pids.add(pid)
    atexit.register(shutil.rmtree, folder, True)


def _remove_dead_processes_dirs(root: Path) -> None:
    for folder in root.iterdir():
        if folder.name.isdigit() and int(folder.name) != os.getpid() and not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def credentials_reseal() -> int:
    """Seal every stored host credential again with the first key of SECRET_BOX_KEY (after a new
    key was put first); how many values were sealed again."""
    count = 0
    for key in SSHKey.objects.exclude(private_key_sealed=""):
        ssh_key_seal(key, ssh_key_private(key))
        count += 1
    for host in Host.objects.all():
        files = host_tls_files(host)
        if files:
            host_tls_seal(host, files)
            count += len(files)
        if host.sasl_password_sealed:
            username, password = host_sasl_login(host)
            host_sasl_seal(host, username=username, password=password)
            count += 1
    return count
