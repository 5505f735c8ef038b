"""Disk images for backup tests and the backups benchmark: qcow2 (v3) images full of random bytes,
so that a backup has real data to copy (nothing sparse, nothing compressible)."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MIB = 2**20
_CHUNK = 16 * MIB


def random_qcow2(path: Path, size: int) -> None:
    """A new qcow2 (compat 1.1) image at path, `size` bytes (a multiple of 16 MiB) of random data.

    One 16 MiB block of random bytes is drawn and written again for each 16 MiB, each time headed by
    its own number: every cluster is incompressible and every 16 MiB differ, for a sixtieth of the
    CPU that drawing it all took (7.6 s for 2 GiB). The raw file lies in memory while qemu-img reads it."""
    block = memoryview(os.urandom(_CHUNK))
    with tempfile.NamedTemporaryFile(dir=_raw_folder(size, path), prefix=".random-", suffix=".raw") as raw:
        for index in range(size // _CHUNK):
            raw.write(index.to_bytes(8, "little"))
            raw.write(block[8:])
        raw.flush()
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", raw.name, str(path)],
                       check=True, capture_output=True)


def _raw_folder(size: int, path: Path) -> Path:
    memory = Path("/dev/shm")
    if memory.is_dir() and shutil.disk_usage(memory).free > 4 * size:
        return memory
    return path.parent


_CACHESTAT = 451  # Linux 6.5's cachestat(2), the same number on every architecture


def dirty_pages(path: str) -> int:
    """How many pages of the file wait in the page cache to be written (cachestat(2): the kernel's
    own count for one file, whatever process wrote them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    whole_file = (ctypes.c_uint64 * 2)(0, 0)  # offset 0, length 0: to the end
    counts = (ctypes.c_uint64 * 5)()  # cached, dirty, writeback, evicted, recently evicted
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syscall(_CACHESTAT, fd, ctypes.byref(whole_file), ctypes.byref(counts), 0) != 0:
            raise OSError(ctypes.get_errno(), f"cachestat {path}")
    finally:
        os.close(fd)
    return counts[1]
