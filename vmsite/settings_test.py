"""Settings for the test suite: the real stack, but its own data folder and its own Redis database,
so that a `make run` on the same machine never picks up the suite's tasks."""
import os
from pathlib import Path

_BASE = Path(__file__).resolve().parent.parent
os.environ.setdefault("VMSITE_DATA_DIR", str(_BASE / ".testdata"))
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("OPERATION_HEARTBEAT_INTERVAL", "1")
os.environ.setdefault("OPERATION_HEARTBEAT_TIMEOUT", "4")
os.environ.setdefault("GRAPH_SAMPLE_SECONDS", "1")

# One port each for the suite's console proxy and ASGI server; its subprocesses inherit them, so the
# proxy takes the pages of that server as the site's own origin (SITE_ORIGINS's default).
for _name in ("CONSOLE_PROXY_PORT", "VMSITE_PORT"):
    if _name not in os.environ:
        import socket

        with socket.socket() as _probe:
            _probe.bind(("127.0.0.1", 0))
            os.environ[_name] = str(_probe.getsockname()[1])

from vmsite.settings import *  # noqa: E402,F401,F403

# pytest's process writes the test database into the data folder with its own umask (its fixtures
# make folders qemu must reach); tests/vmsite/test_private_data.py checks the rule with the real settings.
DATA_DIR_MUST_BE_PRIVATE = False
