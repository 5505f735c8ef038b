"""The .vv file remote-viewer opens for a SPICE display: address and port, never a password."""
from __future__ import annotations

import ipaddress

from consoles.services import ConsoleUnavailable
from domains.models import Domain
from hosts.choices import Transport


def spice_file(domain: Domain, graphics: dict | None) -> str:
    if graphics is None:
        raise ConsoleUnavailable(f"{domain.name} has no SPICE display.")
    port = graphics.get("port") or 0
    if port <= 0:
        raise ConsoleUnavailable(f"{domain.name}'s SPICE port is not known yet: refresh the VM and try again.")
    address = _reachable_address(domain, graphics.get("listen") or "")
    lines = ["[virt-viewer]", "type=spice", f"host={address}", f"port={port}",
             f"title={_one_line(domain.name)} - %d", "delete-this-file=1", "toggle-fullscreen=shift+f11",
             "release-cursor=shift+f12"]
    return "\n".join(lines) + "\n"


def _reachable_address(domain: Domain, listen: str) -> str:
    host = domain.host
    if listen in ("", "0.0.0.0", "::"):
        return "127.0.0.1" if host.transport == Transport.LOCAL else host.address
    if _is_loopback(listen) and host.transport not in (Transport.LOCAL,) and not _is_loopback(host.address):
        raise ConsoleUnavailable(f"{domain.name}'s SPICE display listens on {host.name}'s loopback address only, "
                                 "which remote-viewer cannot reach; use the VNC console.")
    return listen


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _one_line(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable()).replace("%", "%%")
