"""Which pages may open a websocket: one decision for every socket, the ASGI server's (live,
serial console, screenshots, uploads) and the VNC console proxy's.

An origin is the whole of scheme, host and port: a page on another port or scheme of the same host
is another site (the browser treats it so, and so must we). Allowed are:
- the site's public origins, SITE_ORIGINS (by default each literal ALLOWED_HOSTS name over http on
  VMSITE_PORT, the port `make run` serves on) and CSRF_TRUSTED_ORIGINS (how a reverse proxy's
  public origin is declared; `https://*.example.org` allows its subdomains, as in Django);
- for a socket of the ASGI server, also the request's own origin: its scheme (https when the
  connection is TLS, or when a trusted proxy says so through SECURE_PROXY_SSL_HEADER) and its Host,
  when that Host is one of ALLOWED_HOSTS.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise(origin: str | None) -> str | None:
    """scheme://host:port with the port always written, or None for what is not a web page's origin
    (null, file:, a path, credentials, a bad port)."""
    if not origin:
        return None
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if (parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None
            or parts.password is not None or parts.path not in ("", "/") or parts.query or parts.fragment):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or DEFAULT_PORTS[parts.scheme]}"


def site_origins() -> set[str]:
    """The site's public origins, written out (wildcard entries of CSRF_TRUSTED_ORIGINS aside)."""
    listed = [*settings.SITE_ORIGINS, *settings.CSRF_TRUSTED_ORIGINS]
    return {normalised for origin in listed if "*" not in origin and (normalised := normalise(origin))}


def request_origin(*, secure: bool, host: str | None) -> str | None:
    """The origin of this server's own pages, as a request reaches it: None when its Host is not
    one of ALLOWED_HOSTS (a rebound DNS name, say)."""
    if not host:
        return None
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    return normalise(f"{'https' if secure else 'http'}://{host}")


def origin_allowed(origin: str | None, *, own: str | None = None) -> bool:
    """May a page of this origin open a socket here? `own` is the request's own origin (see
    request_origin), for a socket of the server that also serves the pages."""
    candidate = normalise(origin)
    if candidate is None:
        return False
    if candidate == own or candidate in site_origins():
        return True
    return any(_matches_wildcard(candidate, entry) for entry in settings.CSRF_TRUSTED_ORIGINS if "*" in entry)


def _matches_wildcard(candidate: str, entry: str) -> bool:
    """https://*.example.org[:port]: the same scheme and port, on a subdomain of example.org."""
    scheme, _, rest = entry.partition("://*.")
    pattern = normalise(f"{scheme}://{rest}")
    if not rest or pattern is None:
        return False
    pattern_host, pattern_port = pattern.split("://", 1)[1].rsplit(":", 1)
    candidate_scheme, candidate_rest = candidate.split("://", 1)
    candidate_host, candidate_port = candidate_rest.rsplit(":", 1)
    return (candidate_scheme == scheme and candidate_port == pattern_port
            and candidate_host.endswith("." + pattern_host))


def _allowed_hosts() -> list[str]:
    return settings.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])


class SiteOriginValidator:
    """ASGI middleware for websockets: refuses the handshake unless origin_allowed says yes."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(_header(scope, b"origin"), own=scope_origin(scope)):
            from channels.security.websocket import WebsocketDenier

            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def scope_origin(scope) -> str | None:
    """The request's own origin for an ASGI scope (see request_origin)."""
    secure = scope.get("scheme") in ("wss", "https")
    if settings.SECURE_PROXY_SSL_HEADER:
        name, value = settings.SECURE_PROXY_SSL_HEADER
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        secure = secure or (_header(scope, header) or "").split(",")[0].strip() == value
    return request_origin(secure=secure, host=_header(scope, b"host"))


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            try:
                return value.decode("latin1")
            except UnicodeDecodeError:
                return None
    return None
