"""The live hub's fan-out, with sockets that stand in for consumers (no daemon needed)."""
import asyncio
import json
import logging

from uvicorn.config import Config
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from events.consumers import send_ready_probe
from events.hub import CLOSE_LIVE_UNAVAILABLE, CLOSE_TOO_SLOW, MAX_BACKLOG, LiveHub, Outbox
from tests.stack import in_own_loop


class Socket:
    everything = True
    scope_by_host: dict = {}

    def __init__(self, *, closed: bool = False, reads: bool = True):
        self.closed = closed
        self.received: list[str] = []
        self.close_code: int | None = None
        self.reading = asyncio.Event()  # a client that does not read: the server's send waits
        if reads:
            self.reading.set()

    def wants(self, message: dict) -> bool:
        return True

    def ready_to_send(self) -> bool:
        return self.reading.is_set()

    async def send_live(self, event: dict) -> None:
        if self.closed:
            raise ClientDisconnected()  # what uvicorn raises, an OSError as ASGI asks
        await self.reading.wait()
        assert event["type"] == "websocket.send"
        self.received.append(event["text"])

    async def close_live(self, code: int) -> None:
        await self.reading.wait()
        self.closed, self.close_code = True, code


def message(number: int) -> bytes:
    return json.dumps({"type": "domain", "host": 1, "id": number}).encode()


def hub_with(*sockets: Socket) -> LiveHub:
    hub = LiveHub()
    hub.sockets = {socket: Outbox(socket, hub._forget) for socket in sockets}
    return hub


async def settled(*outboxes: Outbox) -> None:
    await asyncio.wait_for(asyncio.gather(*(outbox.idle.wait() for outbox in outboxes)), timeout=5)


def test_a_socket_that_closed_on_the_way_is_dropped_quietly_and_the_others_get_the_message(caplog):
    async def scenario():
        gone, open_ = Socket(closed=True), Socket()
        hub = hub_with(gone, open_)
        outboxes = list(hub.sockets.values())
        await hub._deliver(message(2))
        await settled(*outboxes)
        assert open_.received == [message(2).decode()]
        assert list(hub.sockets) == [open_]

    with caplog.at_level(logging.DEBUG, logger="events.hub"):
        in_own_loop(scenario())
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_client_that_does_not_read_holds_up_only_its_own_messages():
    async def scenario():
        stuck, reader = Socket(reads=False), Socket()
        hub = hub_with(stuck, reader)
        for number in range(3):
            await hub._deliver(message(number))
        await settled(hub.sockets[reader])
        assert reader.received == [message(number).decode() for number in range(3)]
        assert stuck.received == [] and not hub.sockets[stuck].idle.is_set()
        stuck.reading.set()  # its client reads again: its messages follow, in order
        await settled(hub.sockets[stuck])
        assert stuck.received == reader.received

    in_own_loop(scenario())


def test_a_socket_too_far_behind_is_closed_once_its_client_reads_and_the_others_go_on(caplog):
    async def scenario():
        stuck, reader = Socket(reads=False), Socket()
        hub = hub_with(stuck, reader)
        stuck_outbox = hub.sockets[stuck]
        for number in range(MAX_BACKLOG + 2):  # one in the send under way, MAX_BACKLOG queued, one too many
            await hub._deliver(message(number))
        assert list(hub.sockets) == [reader]  # no later message is queued for it
        await hub._deliver(message(MAX_BACKLOG + 2))
        await settled(hub.sockets[reader])
        assert len(reader.received) == MAX_BACKLOG + 3
        stuck.reading.set()
        await settled(stuck_outbox)
        assert stuck.close_code == CLOSE_TOO_SLOW  # its page reconnects and refreshes what it shows
        assert stuck.received == [message(0).decode()]  # the send that was under way; the backlog was dropped

    with caplog.at_level(logging.WARNING, logger="events.hub"):
        in_own_loop(scenario())
    assert "messages behind: closing it" in caplog.text


def test_losing_redis_closes_every_socket_even_one_whose_client_does_not_read():
    async def scenario():
        stuck, reader = Socket(reads=False), Socket()
        hub = hub_with(stuck, reader)
        outboxes = list(hub.sockets.values())
        await hub._deliver(message(1))
        hub._close_all()  # returns at once: no socket's close is waited on
        assert hub.sockets == {}
        await settled(outboxes[1])
        assert reader.close_code == CLOSE_LIVE_UNAVAILABLE
        stuck.reading.set()
        await settled(outboxes[0])
        assert stuck.close_code == CLOSE_LIVE_UNAVAILABLE

    in_own_loop(scenario())


def test_a_message_waits_in_the_outbox_only_while_the_send_would_wait():
    async def scenario():
        reader = Socket()
        hub = hub_with(reader)
        await hub._deliver(message(1))
        assert hub.sockets[reader].task is None  # sent at once: no task of its own
        reader.reading.clear()
        await hub._deliver(message(2))
        await hub._deliver(message(3))
        assert list(hub.sockets[reader].events) == [{"type": "websocket.send", "text": message(3).decode()}]
        reader.reading.set()
        await settled(hub.sockets[reader])
        await hub._deliver(message(4))  # nothing queued and the send will not wait: at once again
        assert reader.received == [message(number).decode() for number in (1, 2, 3, 4)]

    in_own_loop(scenario())


def test_the_probe_reads_the_web_servers_own_websocket_protocol():
    """vmsite/web_server.py runs uvicorn with --ws websockets-sansio: its send waits only while the
    transport's buffer is over its mark. Should uvicorn change that, this fails, rather than every
    message silently taking the outbox's slower way."""
    from vmsite.web_server import WEB_SERVER_OPTIONS

    assert WEB_SERVER_OPTIONS[WEB_SERVER_OPTIONS.index("--ws") + 1] == "websockets-sansio"

    async def scenario():
        protocol = WebSocketsSansIOProtocol(Config(app=Socket, ws="websockets-sansio"), ServerState(), app_state={})
        ready = send_ready_probe(protocol.send)
        assert ready()
        protocol.pause_writing()  # what the transport calls when its buffer passes the high-water mark
        assert not ready()
        protocol.resume_writing()
        assert ready()
        assert send_ready_probe(Socket().send_live)() is False  # not known: always the outbox

    in_own_loop(scenario())
