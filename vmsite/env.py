"""Typed readers for settings that come from the environment.

Every reader names the variable in its error, so a bad value stops start-up with a message an
operator can act on. `<NAME>_FILE` may hold the path of a file with the value (for secrets).
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name}: {exc.strerror}") from exc
    return os.environ.get(name)


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use true or false")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """A comma-separated list of IP addresses or networks (CIDR), as `10.0.0.5, 192.0.2.0/24`."""
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or network (as 10.0.0.5 or "
                                       "192.0.2.0/24)") from None
    return networks


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return (Path(value) if value else default).resolve()


def parse_database_url(name: str, url: str) -> dict:
    """Turn `sqlite:////abs/path` or `postgres://user:pw@host:port/db` into a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # As dj-database-url: sqlite:////abs/path.db is absolute, sqlite:///rel.db relative.
        path = unquote(parts.path)[1:]
        if not path:
            raise ImproperlyConfigured(f"{name}={url!r}: a SQLite URL needs a file path, as sqlite:////abs/path.db")
        return _sqlite(Path(path))
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        return _postgres(name, url, parts)
    raise ImproperlyConfigured(
        f"{name}={url!r}: unsupported or malformed URL; use sqlite:////abs/path or postgres://user@host:port/name"
    )


def _sqlite(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        "TEST": {"NAME": str(path.with_name(f"test_{path.name}"))},
    }


def _postgres(name: str, url: str, parts) -> dict:
    database = unquote(parts.path.lstrip("/"))
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name}={url!r}: the port is not a number in 1-65535") from None
    if not database or "/" in database:
        raise ImproperlyConfigured(f"{name}={url!r}: the URL must name one database, as postgres://host/name")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        # Workers and listeners keep a connection per thread for a minute; the web process gets 0
        # (vmsite/asgi.py): Django runs each ASGI request on a thread of its own.
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        "CONN_HEALTH_CHECKS": True,
    }


def secret_key(name: str, data_dir: Path) -> str:
    """The key from the environment, else the one generated into the data folder on first run."""
    from django.core.management.utils import get_random_secret_key

    return _raw(name) or _generated(data_dir / "secret_key", get_random_secret_key)


def secret_box_keys(name: str, data_dir: Path) -> list:
    """The key-encryption keys of vmsite/secretbox.py: from the environment (or `<NAME>_FILE`),
    else one generated into the data folder on first run (mode 0600)."""
    from vmsite import secretbox

    value = _raw(name) or _generated(data_dir / "secret_box_key", secretbox.generate_key)
    try:
        return secretbox.parse_keys(value)
    except secretbox.BadKey as exc:
        raise ImproperlyConfigured(f"{name}: {exc}; make one with `python -c 'from vmsite.secretbox import "
                                   "generate_key; print(generate_key())'`") from None


def _generated(key_file: Path, make) -> str:
    if not key_file.exists():
        _write_new_file(key_file, make())
    return key_file.read_text().strip()


def _write_new_file(key_file: Path, content: str) -> None:
    # Written whole to a temporary file, then linked into place: processes starting side by side
    # all end up reading the one key that won, never a half-written one.
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = key_file.with_name(f".{key_file.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    try:
        os.link(temporary, key_file)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
