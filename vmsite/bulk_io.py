"""Settings for the web process, which moves volume contents (storage/uploads.py,
storage/downloads.py): daphne's options for it, and two settings that neither daphne nor Django
expose.

Measured with bench/storage.py, daphne's CPU seconds per 256 MiB: an upload 0.78 before, 0.52
with these settings and 4 MiB messages; a download 0.56 before, 0.46 with the larger writes. Where
the browser, the web process and libvirtd share two CPUs, each second saved is one more for them.
"""
from __future__ import annotations

import ctypes
import ctypes.util

# daphne accepts websocket messages of 1 MiB by default; uploads send messages of this size.
WEBSOCKET_MAX_MESSAGE = 4 * 1024 * 1024
# Every command that starts daphne passes these (Procfile, tests/stack.py, bench/inventory.py).
DAPHNE_OPTIONS = ("--websocket-max-message-size", str(WEBSOCKET_MAX_MESSAGE),
                  "--websocket-max-frame-size", str(WEBSOCKET_MAX_MESSAGE))
# Larger than any buffer the transfers make (4 MiB websocket messages and download pieces).
MMAP_THRESHOLD = 16 * 1024 * 1024
TRIM_THRESHOLD = 64 * 1024 * 1024
# What one read or one write of a connection may move; Twisted's defaults are 64 and 128 KiB.
SOCKET_IO_SIZE = 4 * 1024 * 1024
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


def use_large_socket_io() -> None:
    """Twisted (under daphne) reads a connection 64 KiB at a time and writes it 128 KiB at a time,
    and each read or write is a turn of the event loop in Python (a read also runs autobahn's frame
    parser): a 256 MiB upload took 4,000 reads, a download 2,000 writes. Larger reads and writes
    only happen when that much is waiting, so small requests are not delayed."""
    from twisted.internet import tcp

    tcp.Server.bufferSize = SOCKET_IO_SIZE
    tcp.Server.SEND_LIMIT = SOCKET_IO_SIZE


def prepare_web_process() -> None:
    keep_large_buffers()
    use_large_socket_io()
