"""SSH material for qemu+ssh hosts: vmsite's key pairs, pinned host keys, and the ssh command
libvirt runs, which checks the pinned key strictly and never reads ~/.ssh."""
from __future__ import annotations

import base64
import hashlib
import shlex
import socket
import subprocess
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings

SSH_CONNECT_TIMEOUT = 10
SUPPORTED_KEY_TYPES = (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)


class SSHMaterialError(ValueError):
    pass


def ssh_dir() -> Path:
    path = settings.DATA_DIR / "ssh"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def new_private_key() -> bytes:
    """A new ed25519 private key in OpenSSH format."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())


def load_private_key(data: bytes):
    """The unencrypted private key in `data` (OpenSSH or PEM format), or SSHMaterialError."""
    if len(data) > 20_000:
        raise SSHMaterialError("That file is too large to be an SSH private key.")
    for loader in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            key = loader(data, password=None)
        except TypeError:
            raise SSHMaterialError("The private key is protected by a passphrase; upload an unencrypted key.") from None
        except (ValueError, UnsupportedAlgorithm):
            continue
        if not isinstance(key, SUPPORTED_KEY_TYPES):
            raise SSHMaterialError("Use an ed25519, ECDSA or RSA key.")
        return key
    raise SSHMaterialError("That file is not an SSH private key.")


def public_line(key, comment: str) -> str:
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{public.decode()} {comment}"


def fingerprint_of_key(key) -> str:
    return fingerprint_of_blob(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                             serialization.PublicFormat.OpenSSH).split()[1])


def fingerprint_of_blob(blob_base64: bytes | str) -> str:
    digest = hashlib.sha256(base64.b64decode(blob_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_key_fingerprints(known_hosts_lines: str) -> list[str]:
    fingerprints = []
    for line in known_hosts_lines.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            fingerprints.append(f"{fields[1]} {fingerprint_of_blob(fields[2])}")
    return fingerprints


def scan_host_keys(address: str, port: int) -> str:
    """The host's current SSH keys as known_hosts lines (ssh-keyscan), for pinning."""
    try:
        result = subprocess.run(
            ["ssh-keyscan", "-T", str(SSH_CONNECT_TIMEOUT), "-p", str(port), "-t", "ed25519,ecdsa,rsa", "--", address],
            capture_output=True, text=True, timeout=SSH_CONNECT_TIMEOUT + 5,
        )
    except subprocess.TimeoutExpired:
        raise SSHMaterialError(f"timeout: {address} did not present an SSH host key in time") from None
    lines = sorted(line for line in result.stdout.splitlines() if line and not line.startswith("#"))
    if not lines:
        raise SSHMaterialError(_scan_failure(address, port, result.stderr))
    return "\n".join(lines) + "\n"


def _scan_failure(address: str, port: int, stderr: str) -> str:
    try:
        with socket.create_connection((address, port), timeout=SSH_CONNECT_TIMEOUT):
            pass
    except socket.gaierror:
        return f"name does not resolve: {address}"
    except TimeoutError:
        return f"timeout: {address}:{port} did not answer"
    except OSError as exc:
        return f"refused: {address}:{port}: {exc.strerror or exc}"
    return f"no SSH host key from {address}:{port} ({stderr.strip()[-200:] or 'no answer'})"


def ssh_command_script(known_hosts_file: Path) -> str:
    """The program libvirt runs instead of `ssh`: strict checking against the pinned keys only."""
    options = [
        "-F", "/dev/null",
        "-o", f"UserKnownHostsFile={known_hosts_file}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT}",
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=2",
    ]
    return "#!/bin/sh\nexec ssh " + " ".join(shlex.quote(option) for option in options) + ' "$@"\n'
