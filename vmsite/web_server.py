"""How the web process is started: uvicorn, with these options, wherever it runs (the Procfile, the
systemd unit, the suite's stack, the benches). tests/storage/test_upload_messages.py holds the
Procfile to them, tests/deploy/test_units.py the unit to the Procfile.

Why uvicorn: against daphne, interleaved, live messages reached 200 sockets sooner (p50 35-57 % lower in
every round) and uploads cost about 10 % less CPU per GiB (bench/README.md, "The switch to uvicorn").
Why each option:
"""
from __future__ import annotations

from pathlib import Path

from vmsite.bulk_io import WEBSOCKET_MAX_MESSAGE

WEB_SERVER_OPTIONS = (
    # Python's own event loop and the pure-Python HTTP parser, named so that installing uvloop or
    # httptools (uvicorn[standard]) changes nothing unseen: with them an upload cost the same CPU
    # and downloads were no faster (bench/README.md, "uvicorn: its options measured").
    "--loop", "asyncio", "--http", "h11",
    # The websockets library's sans-I/O protocol (uvicorn's own choice when websockets is installed,
    # named so that no other installed package changes it): after each message it stops reading the
    # socket until the application has taken that message, so an upload holds at most one 4 MiB
    # message in the server's memory, whatever the browser sends.
    "--ws", "websockets-sansio",
    # Upload messages are 4 MiB (storage/uploads.py); uvicorn's default would be 16 MiB.
    "--ws-max-size", str(WEBSOCKET_MAX_MESSAGE),
    # Browsers offer permessage-deflate and uvicorn accepts it by default: every upload message would
    # be inflated, and every live message deflated once per socket. daphne never compressed.
    "--ws-per-message-deflate", "false",
    # uvicorn's defaults, written out: a ping every 20 s, and a socket whose client has not answered
    # in 20 s more is closed (1011), so a vanished browser's upload or console ends within 40 s.
    # nginx keeps /ws/ open for an hour of silence (deploy/nginx/vmsite.conf), so pings are not
    # needed to keep it open; pages also send their own pings (static/vmsite/live.js).
    "--ws-ping-interval", "20", "--ws-ping-timeout", "20",
    # Client addresses are decided by vmsite alone (accounts/addresses.py, TRUSTED_PROXIES); uvicorn
    # would otherwise believe X-Forwarded-For from any client on 127.0.0.1.
    "--no-proxy-headers",
    # Channels' router has no lifespan handler and vmsite has nothing to do at start or stop.
    "--lifespan", "off",
    # On SIGTERM uvicorn stops accepting, closes each websocket with 1012 (an upload ends as cut
    # off, pages reconnect elsewhere) and lets requests in flight finish, for at most this long.
    "--timeout-graceful-shutdown", "10",
)


def web_server_argv(venv_bin: Path, port: int | str, *, host: str = "127.0.0.1") -> list[str]:
    """The web process's command line, as the Procfile writes it (port may be a shell expansion)."""
    return [str(venv_bin / "uvicorn"), *WEB_SERVER_OPTIONS, "--host", host, "--port", str(port),
            "vmsite.asgi:application"]
