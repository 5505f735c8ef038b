"""Websocket routes. The live event consumers join here as they are built (see DESIGN.md)."""
from consoles.routing import websocket_urlpatterns as console_urlpatterns

websocket_urlpatterns: list = [*console_urlpatterns]
