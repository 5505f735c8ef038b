"""Trust on first use, made visible: vmsite scans an SSH host's keys, shows their fingerprints for an
administrator to confirm, and pins only the keys confirmed.

Between the scan and the confirmation the keys (and an uploaded private key, which a browser cannot
send twice) travel in the page as a Fernet token: encrypted and authenticated with a key derived
from SECRET_KEY, bound to the host's address and port, and valid for a few minutes. A token that was
changed, has expired or names another endpoint is refused."""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from hosts.ssh import SSHMaterialError, fingerprint_of_blob, scan_host_keys

OFFER_TTL_SECONDS = 15 * 60


class HostKeyRefused(ValueError):
    """The confirmation does not hold: a token changed or expired, or the host shows another key."""


@dataclass(frozen=True)
class HostKey:
    key_type: str
    fingerprint: str  # SHA256:..., as ssh-keygen -l prints it
    line: str  # the known_hosts line that pins it


def host_keys_of(known_hosts: str) -> list[HostKey]:
    keys = []
    for line in known_hosts.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            keys.append(HostKey(key_type=fields[1], fingerprint=fingerprint_of_blob(fields[2]), line=line))
    return keys


def host_keys_scan(address: str, port: int | None) -> str:
    """The keys the host presents now, as known_hosts lines (SSHMaterialError says why none)."""
    return scan_host_keys(address, port or 22)


def host_keys_matching(known_hosts: str, fingerprint: str) -> str:
    """The lines of the scanned keys whose fingerprint is the expected one ("SHA256:" prefix optional)."""
    wanted = fingerprint.strip()
    wanted = wanted if wanted.startswith("SHA256:") else f"SHA256:{wanted}"
    lines = [key.line for key in host_keys_of(known_hosts) if key.fingerprint == wanted.rstrip("=")]
    if not lines:
        shown = ", ".join(f"{key.key_type} {key.fingerprint}" for key in host_keys_of(known_hosts))
        raise HostKeyRefused(f"The host presents {shown}, not the expected {wanted}: nothing was registered.")
    return "\n".join(lines) + "\n"


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"vmsite host key offer\0" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def host_key_offer(*, address: str, port: int | None, known_hosts: str, private_key: bytes | None) -> str:
    """The token a confirmation page carries for these scanned keys."""
    payload = {"address": address, "port": port or 22, "keys": known_hosts,
               "private_key": base64.b64encode(private_key).decode() if private_key else None}
    return _fernet().encrypt(json.dumps(payload).encode()).decode()


def host_key_confirmed(token: str, *, address: str, port: int | None) -> tuple[str, bytes | None]:
    """The keys (and uploaded private key) an administrator confirmed for address:port, after checking
    that the host still presents exactly those keys."""
    try:
        payload = json.loads(_fernet().decrypt(token.encode(), ttl=OFFER_TTL_SECONDS))
    except (InvalidToken, ValueError):
        raise HostKeyRefused("The confirmation has expired or was altered: check the host's key again.") from None
    if (payload["address"], payload["port"]) != (address, port or 22):
        raise HostKeyRefused("The address or port changed after the key was shown: check the host's key again.")
    try:
        now = host_keys_scan(address, port)
    except SSHMaterialError as exc:
        raise HostKeyRefused(f"vmsite could not read the host's SSH key again ({exc}): nothing was "
                             "registered.") from None
    if sorted(now.splitlines()) != sorted(payload["keys"].splitlines()):
        raise HostKeyRefused("The host now presents another SSH key than the one you confirmed: nothing was "
                             "registered. Someone may be impersonating it; check the host and try again.")
    private_key = base64.b64decode(payload["private_key"]) if payload["private_key"] else None
    return payload["keys"], private_key
