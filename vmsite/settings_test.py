"""Settings for the test suite: the real stack, but its own data folder and its own Redis database,
so that a `make run` on the same machine never picks up the suite's tasks.

Under pytest-xdist every worker (PYTEST_XDIST_WORKER=gwN) gets its own share of everything that is
shared: Redis database base+N (so its Celery queue, channel layer, login counts and console tokens),
data folder <base>/gwN (so its SQLite files and uploads), console proxy port. The bases come from
the environment, so two whole suites can run side by side:
  REDIS_URL                   the first Redis database of the suite (default db 8; workers use 8, 9, …)
  VMSITE_DATA_DIR             the suite's data folder (default .testdata/)
  VMSITE_HARNESS_FIRST_INDEX  the first harness host index, 127.0.0.N (tests/harness/indices.py)
The processes a worker starts (Celery, the web server, the listener) inherit PYTEST_XDIST_WORKER and the
bases, so they work out the same values as the worker that started them.
"""
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

_BASE = Path(__file__).resolve().parent.parent
_REDIS_DATABASES = 16  # redis-server's default `databases`
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw3" in pytest-xdist's workers, "" otherwise
WORKER_NUMBER = int(_WORKER[2:]) if _WORKER.startswith("gw") else 0


def _base(name: str, default: str) -> str:
    """The suite-wide value of NAME, remembered on first read: the per-worker value overwrites NAME."""
    remembered = f"VMSITE_SUITE_{name}"
    os.environ.setdefault(remembered, os.environ.get(name, default))
    return os.environ[remembered]


def worker_redis_url(base_url: str) -> str:
    """The Redis database this pytest-xdist worker (and every process it starts) uses, from the base URL."""
    parts = urlsplit(base_url)
    first = int(parts.path.lstrip("/") or 0)
    database = first + WORKER_NUMBER
    if database >= _REDIS_DATABASES:
        raise ImproperlyConfigured(f"REDIS_URL={base_url}: worker {_WORKER} would need Redis database {database}; "
                                   f"give a lower first database or fewer workers")
    return urlunsplit(parts._replace(path=f"/{database}"))


os.environ["REDIS_URL"] = worker_redis_url(_base("REDIS_URL", "redis://127.0.0.1:6379/8"))
_data_dir = Path(_base("VMSITE_DATA_DIR", str(_BASE / ".testdata")))
os.environ["VMSITE_DATA_DIR"] = str(_data_dir / _WORKER if _WORKER else _data_dir)
os.environ.setdefault("OPERATION_HEARTBEAT_INTERVAL", "1")
os.environ.setdefault("OPERATION_HEARTBEAT_TIMEOUT", "4")
os.environ.setdefault("GRAPH_SAMPLE_SECONDS", "1")
os.environ.setdefault("DASHBOARD_REFRESH_SECONDS", "2")

# One port each for the suite's console proxy and ASGI server, per worker; the worker's subprocesses
# inherit them (the marker tells them they are theirs: xdist's workers inherit the controller's
# environment, ports included), so the proxy takes that server's pages as the site's own origin.
_ports_given = "VMSITE_SUITE_PORTS_OF" not in os.environ and not _WORKER
_ports_ours = os.environ.get("VMSITE_SUITE_PORTS_OF") == _WORKER
for _name in ("CONSOLE_PROXY_PORT", "VMSITE_PORT"):
    if _name in os.environ and (_ports_given or _ports_ours):
        continue
    with socket.socket() as _probe:
        _probe.bind(("127.0.0.1", 0))
        os.environ[_name] = str(_probe.getsockname()[1])
os.environ["VMSITE_SUITE_PORTS_OF"] = _WORKER

from vmsite.settings import *  # noqa: E402,F401,F403

# One key-encryption key for the whole suite, in its own data folder rather than each worker's: the
# workers clone one migrated template database (tests/databases.py), and the installation SSH key in
# it was sealed by the worker that migrated it.
SECRET_BOX_KEYS = secret_box_keys("SECRET_BOX_KEY", _data_dir)  # noqa: F405

# tests/management/commands/flush.py: the cheaper flush that transactional tests run after each test.
INSTALLED_APPS = [*INSTALLED_APPS, "tests"]  # noqa: F405

# pytest's process writes the test database into the data folder with its own umask (its fixtures
# make folders qemu must reach); tests/vmsite/test_private_data.py checks the rule with the real settings.
DATA_DIR_MUST_BE_PRIVATE = False

# Hashing a password on purpose takes a third of a second (PBKDF2's iterations); the suite makes
# hundreds of users and logins, so it hashes cheaply. Production keeps Django's default list
# (tests/vmsite/test_settings_hashers.py checks both).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The suite's PostgreSQL databases are thrown away after the run: a commit need not wait for its WAL to
# reach the disk (0.40 ms against 0.14 ms per committed insert on a quiet machine). Production keeps
# PostgreSQL's default (tests/vmsite/test_settings_hashers.py checks both).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"  # noqa: F405
