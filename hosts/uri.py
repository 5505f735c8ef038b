"""libvirt URIs built from validated parts, never taken as free text.

libvirt URIs accept query options such as `command=`, `netcat=`, `socket=` and `keyfile=`; a URI
assembled from user text can run commands. Every part is checked with an anchored rule here and
the URI carries no query string at all.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOSTNAME_RE = re.compile(rf"\A{_LABEL}(?:\.{_LABEL})*\.?\Z")
USERNAME_RE = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z")
DEFAULT_PORTS = {"ssh": 22, "tls": 16514, "tcp": 16509}


def validate_address(value: str) -> str:
    """A DNS name or an IP address, nothing else."""
    value = value.strip()
    if not value:
        raise ValidationError("Enter the host's DNS name or IP address.")
    if len(value) > 253:
        raise ValidationError("A host name has at most 253 characters.")
    if "%" in value:  # an IPv6 zone: Python takes any text after '%' ('fe80::1%x#y'), URIs take none
        raise ValidationError("Give the address without a zone ('%...'): a remote host is not reached by link-local.")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not HOSTNAME_RE.match(value) or value.replace(".", "").isdigit():
        raise ValidationError(
            "Not a valid host name: use letters, digits, hyphens and dots only "
            "(no spaces, slashes, '?', '=', or a leading '-')."
        )
    return value.lower()


def validate_username(value: str) -> str:
    if not USERNAME_RE.match(value):
        raise ValidationError(
            "Not a valid user name: start with a lower-case letter or '_', then up to 31 lower-case "
            "letters, digits, '_' or '-'."
        )
    return value


def validate_port(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 65535:
        raise ValidationError("A port is a number from 1 to 65535.")
    return value


def validate_test_driver_path(value: str) -> str:
    if value == "default":
        return value
    path = PurePosixPath(value)
    if not path.is_absolute() or ".." in path.parts or not re.fullmatch(r"[A-Za-z0-9_./-]+\.xml", value):
        raise ValidationError("Use 'default' or an absolute path to an .xml file (letters, digits, _ . / - only).")
    return value


def build_uri(*, transport: str, address: str = "", port: int | None = None, user: str = "") -> str:
    if transport == "local":
        return "qemu:///system"
    if transport == "test":
        return f"test:///{validate_test_driver_path(address).lstrip('/')}" if address != "default" else "test:///default"
    if transport not in DEFAULT_PORTS:
        raise ValidationError(f"Unknown transport {transport!r}.")
    host = validate_address(address)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    authority = host if port is None else f"{host}:{validate_port(port)}"
    if transport == "ssh" and user:
        authority = f"{validate_username(user)}@{authority}"
    return f"qemu+{transport}://{authority}/system"
