"""How the console proxy reaches a VM's display from this machine, by the host's transport.

Local and loopback hosts: directly. SSH hosts: through an SSH tunnel opened with the host's
registered key and pinned host key, to the display on the host's own loopback. TCP and TLS
hosts: on the address the display listens on (the host's address when it listens everywhere).
The browser never names a host or a port: everything here comes from the database and libvirt.
"""
from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hosts.choices import Transport
from hosts.connection import host_ssh_files_ensure, ssh_command_path
from hosts.credentials import host_files, ssh_key_file
from hosts.models import Host
from virt.consoles import GraphicsEndpoint

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT = 10


class RouteError(Exception):
    """The display cannot be reached from here, in words for the user."""


@dataclass
class Route:
    """An open byte pipe to the display, and the tunnel process behind it (if any)."""

    sock: socket.socket
    via: str  # "direct" or "ssh tunnel", for the log
    tunnel: subprocess.Popen | None = None
    release_key: Callable[[], None] = lambda: None  # removes the key file the tunnel's ssh reads

    def close(self) -> None:
        """Close the pipe, end the tunnel, and remove its key file before returning: the process
        that proxied this console may end right after, before any thread of its own runs again."""
        try:
            self.sock.close()
        finally:
            try:
                self._end_tunnel()
            finally:
                self.release_key()

    def _end_tunnel(self) -> None:
        if self.tunnel is None or self.tunnel.poll() is not None:
            return
        self.tunnel.terminate()
        try:
            self.tunnel.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.tunnel.kill()
            self.tunnel.wait()


def open_route(host: Host, endpoint: GraphicsEndpoint) -> Route:
    if host.transport == Transport.TEST:
        raise RouteError("VMs of libvirt's test driver have no consoles.")
    if host.transport == Transport.SSH:
        return _ssh_tunnel(host, endpoint)
    return Route(sock=_connect(_direct_address(host, endpoint), endpoint.port), via="direct")


def _direct_address(host: Host, endpoint: GraphicsEndpoint) -> str:
    if host.transport == Transport.LOCAL:
        return "127.0.0.1" if endpoint.listens_everywhere else endpoint.listen
    if endpoint.listens_everywhere:
        return host.address
    if _is_loopback(endpoint.listen) and not _is_loopback(host.address):
        raise RouteError(f"The display listens on {host.name}'s loopback address, which only an SSH tunnel "
                         "reaches: register the host over SSH, or make its displays listen on its address.")
    return endpoint.listen


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _connect(address: str, port: int) -> socket.socket:
    try:
        sock = socket.create_connection((address, port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise RouteError(f"The display at {address}:{port} does not answer ({exc.strerror or exc}).") from None
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _ssh_tunnel(host: Host, endpoint: GraphicsEndpoint) -> Route:
    """`ssh -W` to the display as the host sees it; our end of a socket pair is the route."""
    target = "127.0.0.1" if endpoint.listens_everywhere else endpoint.listen
    if ":" in target:
        target = f"[{target}]"
    host_ssh_files_ensure(host)  # before this ssh starts: written only if missing or stale
    argv = [str(ssh_command_path(host)), "-p", str(host.port or 22), "-W", f"{target}:{endpoint.port}"]
    if host.ssh_key is not None:
        argv += ["-i", str(ssh_key_file(host))]
    if host.username:
        argv += ["-l", host.username]
    argv += ["--", host.address]
    key_present = host_files(host)()  # the key file exists while this ssh runs, and goes with it
    key_present.__enter__()
    release_key = _once(lambda: key_present.__exit__(None, None, None))
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=subprocess.PIPE, close_fds=True)
    except BaseException:
        release_key()
        ours.close()
        raise
    finally:
        theirs.close()
    threading.Thread(target=_log_tunnel_end, args=(process, host.name, release_key), daemon=True).start()
    return Route(sock=ours, via="ssh tunnel", tunnel=process, release_key=release_key)


def _once(action: Callable[[], None]) -> Callable[[], None]:
    """action, run by the first of its callers only (the tunnel's end and its route's close)."""
    lock, done = threading.Lock(), []

    def run() -> None:
        with lock:
            if done:
                return
            done.append(True)
        action()

    return run


def _log_tunnel_end(process: subprocess.Popen, host_name: str, release_key: Callable[[], None]) -> None:
    """Log how the tunnel's ssh ended; its key file goes as soon as it has (an ssh that failed on its
    own, while its route is still open)."""
    try:
        _out, error = process.communicate(timeout=24 * 3600)
    except subprocess.TimeoutExpired:
        return
    finally:
        release_key()
    if process.returncode not in (0, -signal.SIGTERM) and error.strip():
        logger.warning("SSH tunnel to %s ended with %s: %s", host_name, process.returncode,
                       error.decode(errors="replace").strip()[-500:])
