"""Disk images for backup tests and the backups benchmark: qcow2 (v3) images full of random bytes,
so that a backup has real data to copy (nothing sparse, nothing compressible)."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

MIB = 2**20
_CHUNK = 16 * MIB


def random_qcow2(path: Path, size: int) -> None:
    """A new qcow2 (compat 1.1) image at path, `size` bytes (a multiple of 16 MiB) of random data."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".random-", suffix=".raw") as raw:
        for _ in range(size // _CHUNK):
            raw.write(os.urandom(_CHUNK))
        raw.flush()
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", raw.name, str(path)],
                       check=True, capture_output=True)
