"""Where a request comes from. The TCP peer, unless the peer is one of TRUSTED_PROXIES: then the
address that proxy wrote into X-Forwarded-For (read from the right, past every trusted proxy).
Any other client can write that header, so it is never believed from anyone else. One function
decides, for pages, the API, downloads and websockets; uvicorn runs with --no-proxy-headers
(vmsite/web_server.py)."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def valid_address(value: str | None) -> str | None:
    """The address in its canonical form, or None for anything that is not one IP address
    (an IPv4 address mapped into IPv6 comes back as the IPv4 address)."""
    parsed = _parse(value)
    return str(parsed) if parsed is not None else None


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None) -> str | None:
    """The client's address: the peer's, or, from a trusted proxy, the last address in
    X-Forwarded-For that is not itself a trusted proxy. A malformed entry stops the walk at the
    hop that sent it, so a forged value never becomes the address."""
    networks = tuple(settings.TRUSTED_PROXIES if trusted is None else trusted)
    client = _parse(peer)
    if client is None or not networks or not forwarded_for:
        return str(client) if client is not None else None
    for entry in reversed(forwarded_for.split(",")):
        if not _trusted(client, networks):
            break
        hop = _parse(entry)
        if hop is None:
            break
        client = hop
    return str(client)


def request_address(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def scope_address(scope: dict) -> str | None:
    """The same decision for an ASGI scope (websockets)."""
    peer = (scope.get("client") or [None])[0]
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers") or []
                 if name.lower() == b"x-forwarded-for"]
    return client_address(peer, ",".join(forwarded) or None)


def _parse(value: str | None) -> IPAddress | None:
    if not value:
        return None
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks) -> bool:
    return any(address.version == network.version and address in network for network in networks)
