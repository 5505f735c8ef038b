"""The live hub's fan-out, with sockets that stand in for consumers (no daemon needed)."""
import json
import logging

from uvicorn.protocols.utils import ClientDisconnected

from events.hub import LiveHub
from tests.stack import in_own_loop


class Socket:
    everything = True
    scope_by_host: dict = {}

    def __init__(self, *, closed: bool = False):
        self.closed = closed
        self.received: list[str] = []

    def wants(self, message: dict) -> bool:
        return True

    async def send_live(self, event: dict) -> None:
        if self.closed:
            raise ClientDisconnected()  # what uvicorn raises, an OSError as ASGI asks
        assert event["type"] == "websocket.send"
        self.received.append(event["text"])

    async def close_live(self, code: int) -> None:
        self.closed = True


def test_a_socket_that_closed_on_the_way_is_dropped_quietly_and_the_others_get_the_message(caplog):
    hub, gone, open_ = LiveHub(), Socket(closed=True), Socket()
    hub.sockets = {gone, open_}
    message = json.dumps({"type": "domain", "host": 1, "domain": 2}).encode()
    with caplog.at_level(logging.DEBUG, logger="events.hub"):
        in_own_loop(hub._deliver(message))
    assert open_.received == [message.decode()]
    assert hub.sockets == {open_}
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
