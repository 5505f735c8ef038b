"""A client of vmsite's upload and download paths that speaks exactly what the browser's
volume_upload.js speaks: POST to start, then the file over the websocket, a window of chunks in
flight; the download is a plain streamed GET. Used by the tests and by bench/storage.py."""
from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import requests
import websocket
from websockets.frames import apply_mask  # the C one where websockets has its speedups


@dataclass
class UploadResult:
    operation: int
    sha256: str | None  # what the server computed; None if it did not finish
    sent: int
    last_message: dict


class Browser:
    """A logged-in session against a running ASGI server."""

    def __init__(self, base_url: str, session_cookie: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.http.cookies.set("sessionid", session_cookie)

    def csrf(self, path: str) -> str:
        self.http.get(f"{self.base_url}{path}").raise_for_status()
        return self.http.cookies["csrftoken"]

    def start_upload(self, pool_id: int, *, size: int, name: str = "", volume_id: int | None = None) -> dict:
        path = f"/storage/pools/{pool_id}/upload/"
        token = self.csrf(path)
        data = {"name": name, "volume": volume_id or "", "size": str(size), "csrfmiddlewaretoken": token}
        response = self.http.post(f"{self.base_url}{path}", data=data, headers={"X-CSRFToken": token,
                                                                               "Referer": f"{self.base_url}{path}"})
        return {**response.json(), "http_status": response.status_code}

    def open_socket(self, path: str) -> websocket.WebSocket:
        ws_url = self.base_url.replace("http://", "ws://") + path
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        return websocket.create_connection(ws_url, cookie=cookie, origin=self.base_url, timeout=60)

    def upload(self, pool_id: int, chunks: Iterator[bytes], *, size: int, name: str = "",
               volume_id: int | None = None, stop_after: int | None = None, cancel_after: int | None = None
               ) -> UploadResult:
        """Send chunks; stop_after: close the socket after that many bytes (a cut-off);
        cancel_after: send a cancel message instead."""
        started = self.start_upload(pool_id, size=size, name=name, volume_id=volume_id)
        assert started["http_status"] == 200, started
        socket = self.open_socket(started["socket"])
        sent = 0
        try:
            ready = json.loads(socket.recv())
            if ready.get("type") != "ready":
                return UploadResult(started["operation"], None, 0, ready)
            window = ready["window"]
            in_flight = 0
            chunks = rechunk(chunks, ready["chunk"])
            message: dict = ready
            while True:
                while in_flight < window:
                    if stop_after is not None and sent >= stop_after:
                        socket.close()
                        return UploadResult(started["operation"], None, sent, message)
                    if cancel_after is not None and sent >= cancel_after:
                        socket.send(json.dumps({"type": "cancel"}))
                        cancel_after = None
                        window = 0
                        break
                    data = next(chunks, None)
                    if data is None:
                        break
                    send_binary(socket, data)
                    sent += len(data)
                    in_flight += 1
                message = json.loads(socket.recv())
                if message["type"] == "progress":
                    in_flight -= 1
                    continue
                return UploadResult(started["operation"], message.get("sha256"), sent, message)
        finally:
            socket.close()

    def download(self, volume_id: int, into=None) -> tuple[str, int]:
        """(SHA-256, bytes) of a volume's contents, streamed; into: a file to write them to
        instead of hashing as they come (the SHA-256 is then left for the caller: "")."""
        digest = hashlib.sha256()
        total = 0
        with self.http.get(f"{self.base_url}/storage/volumes/{volume_id}/download/", stream=True) as response:
            response.raise_for_status()
            for data in response.iter_content(chunk_size=1024 * 1024):
                if into is not None:
                    into.write(data)
                else:
                    digest.update(data)
                total += len(data)
        return ("" if into is not None else digest.hexdigest()), total


class Script(Browser):
    """The same transfers as a script does them: an API token, no session, no CSRF."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def start_upload(self, pool_id: int, *, size: int, name: str = "", volume_id: int | None = None) -> dict:
        body = {"size": size, **({"volume": volume_id} if volume_id else {"name": name})}
        response = self.http.post(f"{self.base_url}/api/v1/pools/{pool_id}/uploads/", json=body)
        return {**response.json(), "http_status": 200 if response.status_code == 202 else response.status_code}

    def open_socket(self, path: str) -> websocket.WebSocket:
        ws_url = self.base_url.replace("http://", "ws://") + path
        return websocket.create_connection(ws_url, header=[f"Authorization: Bearer {self.token}"],
                                           origin=self.base_url, timeout=60)


def send_binary(socket: websocket.WebSocket, data: bytes | memoryview) -> None:
    """One binary message in one frame, masked in C as a browser masks it. websocket-client would
    mask in Python, then join header, key and payload and copy the rest again after each short
    send: this client, not vmsite, would be the slowest part of the path."""
    mask = os.urandom(4)
    socket.sock.sendall(binary_frame_header(len(data)) + mask)
    socket.sock.sendall(apply_mask(data, mask))


def binary_frame_header(length: int) -> bytes:
    """FIN, opcode binary, masked, and the length in its shortest form (RFC 6455, 5.2)."""
    if length < 126:
        return struct.pack("!BB", 0x82, 0x80 | length)
    if length < 1 << 16:
        return struct.pack("!BBH", 0x82, 0x80 | 126, length)
    return struct.pack("!BBQ", 0x82, 0x80 | 127, length)


def rechunk(chunks: Iterator[bytes], size: int) -> Iterator[bytes | memoryview]:
    """The same bytes in messages of the size the server asked for (the last may be shorter);
    whole messages inside a chunk are views of it, not copies."""
    pending = bytearray()
    for data in chunks:
        if not pending:
            view = memoryview(data)
            whole = len(view) - len(view) % size
            for start in range(0, whole, size):
                yield view[start:start + size]
            data = view[whole:]
        pending += data
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def file_chunks(path, chunk: int = 4 * 1024 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while data := source.read(chunk):
            yield data
