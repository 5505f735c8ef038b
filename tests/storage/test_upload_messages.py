"""The size of upload messages: what the server asks for, what the web server is started to accept,
and how the test client cuts a file into them."""
import os
import shlex
from pathlib import Path

from storage.uploads import CHUNK
from tests.storage.transfer import binary_frame_header, rechunk
from vmsite.bulk_io import WEBSOCKET_MAX_MESSAGE
from vmsite.web_server import WEB_SERVER_OPTIONS, web_server_argv

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_procfile_starts_the_web_server_as_vmsite_web_server_says():
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    argv = shlex.split(web.removeprefix("web:"))
    assert argv == web_server_argv(Path(".venv/bin"), "${VMSITE_PORT:-8000}")
    size = WEB_SERVER_OPTIONS[WEB_SERVER_OPTIONS.index("--ws-max-size") + 1]
    assert CHUNK <= WEBSOCKET_MAX_MESSAGE == int(size)


def test_rechunk_gives_the_same_bytes_in_messages_of_the_size_asked_for():
    data = os.urandom(10 * 1000 + 7)
    pieces = [data[:3000], data[3000:3001], data[3001:9000], data[9000:]]

    messages = [bytes(message) for message in rechunk(iter(pieces), 1000)]

    assert b"".join(messages) == data
    assert [len(message) for message in messages] == [1000] * 10 + [7]


def test_binary_frame_headers_use_the_shortest_length_form():
    assert binary_frame_header(125) == bytes([0x82, 0x80 | 125])
    assert binary_frame_header(126) == bytes([0x82, 0x80 | 126, 0, 126])
    assert binary_frame_header(1 << 16) == bytes([0x82, 0x80 | 127]) + (1 << 16).to_bytes(8, "big")
