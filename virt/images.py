"""What an image's header says it needs besides itself (a backing file, an external data file, vmdk
extents), read with the format vmsite recorded for it, never a probed one.

The header comes through libvirt's storage stream, so the host may be remote; the parsing is done
here in Python, on the bytes alone. (qemu-img info on a copy of the header would open what a vmdk
descriptor names on the machine running vmsite, and fails on relative extents a copy lacks.)
qemu looks for these names only near the start of an image: a qcow2 backing file name must lie in
the first cluster (at most 2 MiB), and so must its header extensions; qemu reads at most 1 MiB of
a vmdk descriptor. HEADER_BYTES covers both.
"""
from __future__ import annotations

import posixpath
import re
import struct
from dataclasses import dataclass

import libvirt

from virt.errors import OperationInvalid, translated
from virt.xml.storage import PoolXML

HEADER_BYTES = 2 * 1024 * 1024
_QCOW_MAGIC = b"QFI\xfb"
_QED_MAGIC = b"QED\x00"
_VMDK4_MAGIC = b"KDMV"
_QCOW2_DATA_FILE_EXTENSION = 0x44415441
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_QED_F_BACKING_FILE = 1
_VMDK_EXTENT = re.compile(rb'^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"]*)"', re.MULTILINE)
_VMDK_PARENT = re.compile(rb'^\s*parentFileNameHint\s*=\s*"([^"]*)"', re.MULTILINE)
FORMATS_WITH_REFERENCES = frozenset({"qcow2", "qcow", "qed", "vmdk"})
_PROTOCOL = re.compile(r"\A[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Reference:
    kind: str  # "backing file", "data file", "extent"
    name: str  # as written in the header; "" when the header needs one but names none


def references(header: bytes, fmt: str) -> list[Reference]:
    """The files a header of this (declared) format names. Raw, ISO and formats without backing
    files name none, whatever their bytes look like."""
    if fmt in ("qcow2", "qcow"):
        return _qcow_references(header, v2=fmt == "qcow2")
    if fmt == "qed":
        return _qed_references(header)
    if fmt == "vmdk":
        return _vmdk_references(header)
    return []


def _name(header: bytes, offset: int, size: int, kind: str) -> Reference:
    if offset + size > len(header):  # qemu itself refuses a qcow2 backing name outside the first cluster
        return Reference(kind, f"<{size} bytes at offset {offset}, past the image's header>")
    return Reference(kind, header[offset:offset + size].decode("utf-8", "replace"))


def _qcow_references(header: bytes, *, v2: bool) -> list[Reference]:
    if len(header) < 20 or header[:4] != _QCOW_MAGIC:
        return []  # not a qcow image at all: qemu refuses to open it as one
    found = []
    backing_offset, backing_size = struct.unpack_from(">QI", header, 8)
    if backing_offset and backing_size:
        found.append(_name(header, backing_offset, backing_size, "backing file"))
    if not v2 or len(header) < 104:
        return found
    version = struct.unpack_from(">I", header, 4)[0]
    incompatible = struct.unpack_from(">Q", header, 72)[0] if version >= 3 else 0
    offset = struct.unpack_from(">I", header, 100)[0] if version >= 3 else 72
    named_data_file = False
    while offset + 8 <= len(header):
        kind, length = struct.unpack_from(">II", header, offset)
        if kind == 0:
            break
        if kind == _QCOW2_DATA_FILE_EXTENSION:
            found.append(_name(header, offset + 8, length, "data file"))
            named_data_file = True
        offset += 8 + (length + 7) // 8 * 8
    if incompatible & _QCOW2_INCOMPAT_DATA_FILE and not named_data_file:
        found.append(Reference("data file", ""))
    return found


def _qed_references(header: bytes) -> list[Reference]:
    if len(header) < 64 or header[:4] != _QED_MAGIC:
        return []
    features = struct.unpack_from("<Q", header, 16)[0]
    offset, size = struct.unpack_from("<II", header, 56)
    return [_name(header, offset, size, "backing file")] if features & _QED_F_BACKING_FILE and size else []


def _vmdk_references(header: bytes) -> list[Reference]:
    descriptor = header
    if header[:4] == _VMDK4_MAGIC and len(header) >= 44:  # a sparse image; its descriptor may be embedded
        sector, sectors = struct.unpack_from("<QQ", header, 28)
        descriptor = header[sector * 512:(sector + sectors) * 512] if sector else b""
    found = [Reference("extent", match.decode("utf-8", "replace")) for match in _VMDK_EXTENT.findall(descriptor)]
    found += [Reference("backing file", match.decode("utf-8", "replace"))
              for match in _VMDK_PARENT.findall(descriptor)]
    return found


def outside(found: list[Reference], *, image_path: str, pool_path: str) -> list[Reference]:
    """Those not inside the pool's folder: a relative name is relative to the image's own folder,
    as qemu reads it; a protocol (nbd:, json:, ...) is never inside."""
    root = posixpath.normpath(pool_path or "/nonexistent") + "/"
    bad = []
    for reference in found:
        name = reference.name
        if not name or _PROTOCOL.match(name) or "\x00" in name:
            bad.append(reference)
            continue
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(image_path), name))
        if not resolved.startswith(root):
            bad.append(reference)
    return bad


def read_header(conn: libvirt.virConnect, volume: libvirt.virStorageVol, length: int = HEADER_BYTES) -> bytes:
    """The first `length` bytes of a volume (fewer if it is smaller), through a storage stream."""
    with translated():
        stream = conn.newStream(0)
        volume.download(stream, 0, length, 0)
        chunks: list[bytes] = []
        got = 0
        try:
            while got < length:
                data = stream.recv(min(256 * 1024, length - got))
                if not data:  # the end of a volume smaller than length
                    break
                chunks.append(data)
                got += len(data)
            stream.finish()
        except BaseException:
            try:
                stream.abort()
            except libvirt.libvirtError:
                pass
            raise
    return b"".join(chunks)


_MAGIC = {"qcow2": _QCOW_MAGIC, "qcow": _QCOW_MAGIC, "qed": _QED_MAGIC}


def require_format(conn: libvirt.virConnect, volume: libvirt.virStorageVol, *, fmt: str, label: str) -> None:
    """Refuse contents that are not an image of the declared format (an upload declared qcow2 that is not)."""
    header = read_header(conn, volume, 4096)
    magic = _MAGIC.get(fmt)
    if magic is not None and header[:4] != magic:
        raise OperationInvalid(f"{label} was declared a {fmt} image, but it is not one (its header does not start "
                               f"as a {fmt} header does): upload it with its real format.")
    if fmt == "vmdk" and header[:4] not in (_VMDK4_MAGIC, b"COWD") and b"# Disk DescriptorFile" not in header[:1024]:
        raise OperationInvalid(f"{label} was declared a vmdk image, but it is neither a sparse vmdk nor a vmdk "
                               "descriptor: upload it with its real format.")


def require_contained(conn: libvirt.virConnect, volume: libvirt.virStorageVol, *, fmt: str, label: str,
                      pool_path: str) -> None:
    """Refuse a volume whose header (read as `fmt`) names a file outside its pool's folder."""
    if fmt not in FORMATS_WITH_REFERENCES:
        return  # raw, iso and the like: nothing in their bytes is ever read as a file name
    bad = outside(references(read_header(conn, volume), fmt), image_path=volume.path(), pool_path=pool_path)
    if bad:
        named = "; ".join(f"{ref.kind} {ref.name!r}" if ref.name else f"a {ref.kind} it does not name"
                          for ref in bad)
        raise OperationInvalid(f"{label} is a {fmt} image that needs {named}, outside its storage pool: "
                               "vmsite does not use images that reach other files of the host. Nothing was changed.")


def pool_path_of(volume: libvirt.virStorageVol) -> str:
    """The folder (or device directory) of the volume's pool, as its definition gives it."""
    with translated():
        return PoolXML.from_libvirt(volume.storagePoolLookupByVolume().XMLDesc(0)).target_path or ""
