"""Checksums of volumes' files, read where the file lies when the host is this machine and through
libvirt's storage streams otherwise (the same bytes, the same digest).

A backup file's checksum is kept as a self-describing string, "<algorithm>:<hex digest>". New
files are hashed with BLAKE3: on one core it is several times faster than SHA-256 (even with the
CPU's SHA instructions), it uses every core on a large file, and it is as good a cryptographic hash
for telling a damaged file. A point recorded with SHA-256 ("sha256:...") is checked with SHA-256.
By hand: `b3sum FILE` (Debian's b3sum) or `sha256sum FILE`.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import re
import stat
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlsplit

import blake3
import libvirt

from virt.errors import OperationInvalid, raises_typed, tolerating

DEFAULT_ALGORITHM = "blake3"
ALGORITHMS = ("blake3", "sha256")
_CHECKSUM = re.compile(r"(blake3|sha256):[0-9a-f]{64}")
_STREAM_CHUNK = 1024 * 1024
_SEGMENT = 8 * 1024 * 1024  # what one stream of a checksum reads
_PARALLEL_STREAMS = 4  # segments of a checksum in flight at once
_FILE_PIECE = 8 * 1024 * 1024  # what one read of a local file's checksum takes

ChecksumProgress = Callable[[int, int], None]  # (bytes hashed, bytes in all)


class ChecksumStopped(OperationInvalid):
    """A checksum no longer needed (the restore it was for failed) was stopped."""


class Hasher(Protocol):
    def update(self, data, /) -> object: ...

    def hexdigest(self) -> str: ...


def new_hasher(algorithm: str) -> Hasher:
    """A hasher that lets go of the GIL while it works on a large piece (both libraries do)."""
    if algorithm == "blake3":
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"no checksum algorithm {algorithm!r}")


def is_checksum(value: object) -> bool:
    return isinstance(value, str) and _CHECKSUM.fullmatch(value) is not None


def algorithm_of(checksum: str) -> str:
    if not is_checksum(checksum):
        raise ValueError(f"not a checksum: {checksum!r}")
    return checksum.partition(":")[0]


def labelled(algorithm: str, hexdigest: str) -> str:
    return f"{algorithm}:{hexdigest}"


@raises_typed
def volume_checksum(conn: libvirt.virConnect, volume: libvirt.virStorageVol, *,
                    algorithm: str = DEFAULT_ALGORITHM, **reading: Any) -> str:
    """The volume file's checksum as "<algorithm>:<hex>" (reading: as volume_digest takes it)."""
    return labelled(algorithm, volume_digest(conn, volume, algorithm=algorithm, **reading))


def volume_matches(conn: libvirt.virConnect, volume: libvirt.virStorageVol, checksum: str, *,
                   stop: threading.Event | None = None) -> bool:
    """Whether the volume's file has this checksum, read with the checksum's own algorithm."""
    return volume_checksum(conn, volume, algorithm=algorithm_of(checksum), stop=stop) == checksum


@raises_typed
def volume_digest(conn: libvirt.virConnect, volume: libvirt.virStorageVol, *, algorithm: str,
                  segment: int = _SEGMENT, streams: int = _PARALLEL_STREAMS, stop: threading.Event | None = None,
                  progress: ChecksumProgress | None = None, read_locally: bool = True) -> str:
    """The hex digest of a volume's file: read from the file itself when the host is this machine
    (local_file; read_locally False: never), through libvirt's storage streams otherwise. stop:
    once set, no further piece is read, and ChecksumStopped is raised. progress: called as pieces
    are hashed."""
    hasher = new_hasher(algorithm)
    path = local_file(conn, volume) if read_locally else None
    if path is not None:
        _hash_file(hasher, path, stop, progress)
    else:
        _hash_streamed(hasher, conn, volume, segment=segment, streams=streams, stop=stop, progress=progress)
    return hasher.hexdigest()


def local_file(conn: libvirt.virConnect, volume: libvirt.virStorageVol) -> str | None:
    """The volume's file as this process can open it, when the connection is to this machine's own
    libvirtd (a URI with no host: its UNIX socket) and the file is there with the size libvirt
    gives it; None otherwise (a remote host, even one on this machine reached by TCP or SSH, whose
    paths may be another mount namespace's, a block device, a file this process cannot read)."""
    if urlsplit(conn.getURI()).hostname:
        return None
    path = volume.path()
    try:
        status = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(status.st_mode) or not os.access(path, os.R_OK):
        return None
    if status.st_size != volume.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2]:
        return None
    return path


def _hash_file(hasher: Hasher, path: str, stop: threading.Event | None, progress: ChecksumProgress | None) -> None:
    """One pass over the file: each piece is hashed on a thread of its own while the next is read
    into the other buffer (both let go of the GIL), so the read's copy and the hash overlap. Not
    mmap: a file cut short while mapped would kill the worker with SIGBUS."""
    buffers = [memoryview(bytearray(_FILE_PIECE)) for _ in range(2)]
    with open(path, "rb", buffering=0) as file, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="checksum-file") as hashing:
        total = os.fstat(file.fileno()).st_size
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        done, previous = 0, None
        for index in itertools.count():
            _stop_if_asked(stop)
            buffer = buffers[index % 2]  # the other one may still be being hashed
            read = file.readinto(buffer)
            if previous is not None:
                previous.result()
                if progress is not None:
                    progress(done, total)
            if not read:
                return
            previous = hashing.submit(hasher.update, buffer[:read])
            done += read


def _hash_streamed(hasher: Hasher, conn: libvirt.virConnect, volume: libvirt.virStorageVol, *, segment: int,
                   streams: int, stop: threading.Event | None, progress: ChecksumProgress | None) -> None:
    """Read through libvirt's storage streams. One stream moves far less than the disk and the
    connection can (it waits on its round trips), so the file is read as segments through several
    streams at once, at most `streams` segments in flight, and hashed in order as each arrives: the
    same digest as one stream's, in a fraction of the time. The last segment reads to the end of the
    file, whatever its size was when it was asked."""
    size = volume.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2]
    offsets = list(range(0, max(size, 1), segment))
    done = 0
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="checksum-segment") as pool:
        pending: deque[Future[list[bytes]]] = deque()
        try:
            for index, offset in enumerate(offsets):
                _stop_if_asked(stop)
                length = 0 if index == len(offsets) - 1 else segment  # 0: to the end of the file
                pending.append(pool.submit(_segment, conn, volume, offset, length))
                if len(pending) >= streams:
                    done = _hash_next(hasher, pending, done, size, progress)
            while pending:
                done = _hash_next(hasher, pending, done, size, progress)
        except BaseException:
            for future in pending:
                future.cancel()  # the ones not started; the others end with their segment
            raise


def _stop_if_asked(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise ChecksumStopped("The checksum was stopped.")


def _hash_next(hasher: Hasher, pending: deque[Future[list[bytes]]], done: int, size: int,
               progress: ChecksumProgress | None) -> int:
    for data in pending.popleft().result():
        hasher.update(data)
        done += len(data)
    if progress is not None:
        progress(done, max(size, done))
    return done


def _segment(conn: libvirt.virConnect, volume: libvirt.virStorageVol, offset: int, length: int) -> list[bytes]:
    """`length` bytes of the volume's file from `offset` (0: to its end), through a stream of their own."""
    stream = conn.newStream(0)
    volume.download(stream, offset, length, 0)
    parts = []
    try:
        while data := stream.recv(_STREAM_CHUNK):
            parts.append(data)
        stream.finish()
    except BaseException:
        with tolerating(libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_OPERATION_INVALID):
            stream.abort()
        raise
    return parts
