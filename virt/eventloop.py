"""libvirt's default event loop, running in a daemon thread of this process.

It must be registered before any connection opens: keepalive and close callbacks ride on it.
"""
from __future__ import annotations

import threading

import libvirt

_lock = threading.Lock()
_thread: threading.Thread | None = None


def ensure_event_loop() -> None:
    global _thread
    with _lock:
        if _thread is not None and _thread.is_alive():
            return
        if _thread is None:
            libvirt.virEventRegisterDefaultImpl()
        _thread = threading.Thread(target=_run, name="libvirt-event-loop", daemon=True)
        _thread.start()


def _run() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()
