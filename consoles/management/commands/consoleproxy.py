"""The VNC console proxy process: websockify with vmsite's token plugin and Origin check."""
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from websockify.websocketproxy import WebSocketProxy

from consoles.proxy import ConsoleProxyHandler, GrantTokenPlugin, OriginCheck


class Command(BaseCommand):
    help = "Serve VNC consoles over websockets (websockify with vmsite's token and Origin checks)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=settings.CONSOLE_PROXY_HOST)
        parser.add_argument("--port", type=int, default=settings.CONSOLE_PROXY_PORT)

    def handle(self, *args, host: str, port: int, **options) -> None:
        connections.close_all()  # each connection's process opens its own
        server = WebSocketProxy(
            RequestHandlerClass=ConsoleProxyHandler, listen_host=host, listen_port=port,
            token_plugin=GrantTokenPlugin(None), auth_plugin=OriginCheck(None),
            heartbeat=settings.CONSOLE_HEARTBEAT, web="", file_only=True,
        )
        server.start_server()
