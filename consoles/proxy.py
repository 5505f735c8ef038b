"""The VNC console proxy: websockify with vmsite's own token plugin and Origin check.

Run by `manage.py consoleproxy` as a process of its own. websockify forks one process per
connection; in it, before the websocket upgrade: the Origin must be one of the site's, the token
is taken from Redis (once: GETDEL) and must have been issued to the login session whose cookie
the browser sends. Only then is the display found (through libvirt, by the VM bound to the
token) and reached (directly or through an SSH tunnel). While the console is open, a watchdog
re-checks the binding every CONSOLE_RECHECK_INTERVAL seconds and closes the console when the VM
is deleted or moved, or the user loses the right to it. Tokens never reach a log line.
"""
from __future__ import annotations

import logging
import re
import threading
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, urlsplit

import redis
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils.crypto import constant_time_compare
from websockify import auth_plugins, token_plugins
from websockify.websocketproxy import ProxyRequestHandler
from websockify.websockifyserver import WebSockifyRequestHandler

from consoles.routes import Route, RouteError, open_route
from consoles.selectors import grant_revoked_reason
from consoles.tokens import ConsoleGrant, hash_secret, token_take
from hosts.connection import connect_uri
from hosts.models import Host
from virt.connection import pool
from virt.consoles import graphics_endpoint
from virt.errors import VirtError
from vmsite.origins import origin_allowed

logger = logging.getLogger(__name__)
_TOKEN_IN_TEXT = re.compile(r"token=[^&\s'\"]*")
CLOSE_REVOKED = 4403  # websocket close codes 4000-4999 are the application's own
CLOSE_UNAVAILABLE = 4404


class ConsoleRefused(Exception):
    """A connection refused before the upgrade. The message is logged: it never holds a token."""


class OriginCheck(auth_plugins.BasePlugin):
    """websockify auth plugin: the websocket must come from a page of this site, the whole origin
    (scheme, host and port) one of the site's (vmsite.origins; the proxy serves no pages of its own)."""

    def authenticate(self, headers, target_host, target_port) -> None:
        origin = headers.get("Origin")
        if not origin_allowed(origin):
            raise auth_plugins.InvalidOriginError(expected="this site's origins", actual=origin or "(none)")


class GrantTokenPlugin(token_plugins.BasePlugin):
    """websockify token plugin: a token is worth one grant (see consoles.tokens), taken once."""

    def lookup(self, token: str) -> ConsoleGrant:
        grant = token_take(token)
        if grant is None:
            raise ConsoleRefused("console token unknown, already used or expired")
        return grant


class ConsoleProxyHandler(ProxyRequestHandler):
    """One console connection, in its own process."""

    grant: ConsoleGrant
    session_key: str
    revoked: str | None = None

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's signature)
        # Request lines and errors from the HTTP layer carry the path, and the path carries the token.
        super().log_message("%s", _TOKEN_IN_TEXT.sub("token=[hidden]", format % args if args else format))

    def handle_upgrade(self) -> None:
        close_old_connections()
        try:
            self.auth_connection()  # the Origin first: a foreign page never even spends a token
            self.validate_connection()
        finally:
            close_old_connections()
        # websockify's own handle_upgrade would validate again, token first: skip to the upgrade itself.
        super(WebSockifyRequestHandler, self).handle_upgrade()

    def auth_connection(self) -> None:
        try:
            self.server.auth_plugin.authenticate(headers=self.headers, target_host=None, target_port=None)
        except auth_plugins.AuthenticationError as exc:
            self.send_auth_error(exc)
            raise

    def validate_connection(self) -> None:
        # Only `token` is read from the query: a host or port there is ignored, as is anything else.
        token = (parse_qs(urlsplit(self.path).query).get("token") or [""])[0]
        self.path = "/"  # websockify logs the path of a websocket; it must not hold the token
        try:
            self.grant = self.server.token_plugin.lookup(token)
            self.session_key = self._session_of_this_browser()
            reason = grant_revoked_reason(self.grant, self.session_key)
            if reason:
                raise ConsoleRefused(f"console refused: {reason}")
        except ConsoleRefused:
            self.send_auth_error(auth_plugins.AuthenticationError(response_code=403, response_msg="Forbidden"))
            raise
        except redis.RedisError as exc:  # each lookup opens its own connection: the next one after Redis returns works
            self.send_auth_error(auth_plugins.AuthenticationError(
                response_code=503, response_msg="Service Unavailable: Redis is unreachable"))
            raise ConsoleRefused(f"console refused: Redis is unreachable ({type(exc).__name__})") from None

    def _session_of_this_browser(self) -> str:
        cookies = SimpleCookie()
        try:
            cookies.load(self.headers.get("Cookie", ""))
        except CookieError:
            pass
        morsel = cookies.get(settings.SESSION_COOKIE_NAME)
        session_key = morsel.value if morsel else ""
        if not session_key or not constant_time_compare(hash_secret(session_key), self.grant.session_hash):
            raise ConsoleRefused("console token presented by another login session")
        return session_key

    def new_websocket_client(self) -> None:
        route = self._open_route()
        logger.info("console of VM %s opened by user %s (%s)", self.grant.domain_uuid, self.grant.user_id, route.via)
        stop = threading.Event()
        threading.Thread(target=self._watch, args=(route, stop), daemon=True, name="console-watchdog").start()
        try:
            self.do_proxy(route.sock)
        except self.CClose:
            if self.revoked:
                raise self.CClose(CLOSE_REVOKED, f"Console closed: {self.revoked}"[:120]) from None
            raise
        finally:
            stop.set()
            route.close()
            logger.info("console of VM %s closed%s", self.grant.domain_uuid,
                        f": {self.revoked}" if self.revoked else "")

    def _open_route(self) -> Route:
        try:
            host = Host.objects.select_related("ssh_key").get(pk=self.grant.host_id)
            with pool().session(connect_uri(host)) as conn:
                endpoint = graphics_endpoint(conn, self.grant.domain_uuid, self.grant.graphics)
            return open_route(host, endpoint)
        except (VirtError, RouteError, Host.DoesNotExist) as exc:
            raise self.CClose(CLOSE_UNAVAILABLE, str(exc)[:120]) from None
        finally:
            connections.close_all()

    def _watch(self, route: Route, stop: threading.Event) -> None:
        """Close the console soon after its grant no longer holds (a cheap database read)."""
        try:
            while not stop.wait(settings.CONSOLE_RECHECK_INTERVAL):
                reason = grant_revoked_reason(self.grant, self.session_key)
                close_old_connections()
                if reason:
                    self.revoked = reason
                    route.sock.shutdown(2)  # do_proxy sees the display end and closes the websocket
                    return
        except Exception:  # noqa: BLE001 - a watchdog that cannot check closes rather than trusts
            logger.exception("console watchdog failed; closing the console")
            self.revoked = "the console could not be re-checked"
            route.sock.shutdown(2)
        finally:
            connections.close_all()
