"""Settings for the web process, which moves volume contents (storage/uploads.py,
storage/downloads.py): the size of upload messages (the web server is started to accept it:
vmsite/web_server.py), and what neither the web server nor Django exposes.

Measured with bench/storage.py under daphne, the web process's CPU seconds per 256 MiB: an upload
0.78 before, 0.52 with large buffers, larger socket reads and 4 MiB messages. Where the browser,
the web process and libvirtd share two CPUs, each second saved is one more for them.
"""
from __future__ import annotations

import ctypes
import ctypes.util

# Uploads send websocket messages of this size (vmsite/web_server.py starts the server to accept them).
WEBSOCKET_MAX_MESSAGE = 4 * 1024 * 1024
# Larger than any buffer the transfers make (4 MiB websocket messages and download pieces).
MMAP_THRESHOLD = 16 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024
# What one read of a connection may move; asyncio's default is 256 KiB.
SOCKET_READ_SIZE = 4 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def keep_large_buffers() -> None:
    """glibc maps every allocation over 128 KiB afresh and unmaps it when it is freed, so each MiB
    of a transfer cost 256 page faults and the kernel clearing each page, once per copy: 1 GB/s
    copies instead of 10. Above these thresholds such buffers are reused from the heap. No-op on
    a C library without mallopt."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def use_large_socket_reads() -> None:
    """asyncio (under uvicorn) reads a connection 256 KiB at a time, and each read is a turn of the
    event loop in Python that also feeds the websocket parser: a 4 MiB upload message took 16.
    Larger reads only happen when that much is waiting, so small requests are not delayed."""
    from asyncio import selector_events

    selector_events._SelectorSocketTransport.max_size = SOCKET_READ_SIZE


def prepare_web_process() -> None:
    keep_large_buffers()
    use_large_socket_reads()
