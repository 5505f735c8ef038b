"""What the storage tests share: pools and folders named vmsite-stor-*, removed by name afterwards."""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import libvirt
import pytest

from hosts.services import host_register_local
from inventory.reconcile import host_reconcile
from operations.models import Operation
from storage.models import StoragePool, Volume
from tests import stack

PREFIX = "vmsite-stor-"
LOCAL = "qemu:///system"


def unique(kind: str) -> str:
    return f"{PREFIX}{kind}-{uuid.uuid4().hex[:8]}"


class PoolJanitor:
    """Removes, by name, the pools and folders a test made (through vmsite or directly)."""

    def __init__(self) -> None:
        self.pools: list[tuple[str, str]] = []
        self.folders: list[Path] = []

    def folder(self) -> Path:
        path = Path("/var/lib/libvirt/images") / unique("dir")
        self.folders.append(path)
        return path

    def pool_name(self, uri: str = LOCAL) -> str:
        name = unique("pool")
        self.pools.append((uri, name))
        return name

    def cleanup(self) -> None:
        for uri, name in self.pools:
            remove_pool(uri, name)
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)


def remove_pool(uri: str, name: str) -> None:
    conn = libvirt.open(uri)
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        return
    try:
        if pool.isActive():
            for volume in pool.listAllVolumes():
                volume.delete(0)
            pool.destroy()
        if pool.isPersistent():
            pool.undefine()
    except libvirt.libvirtError:
        pass


@pytest.fixture
def janitor():
    keeper = PoolJanitor()
    yield keeper
    keeper.cleanup()


@pytest.fixture
def local_host(local_libvirt):
    host, _ = host_register_local()
    return host


@pytest.fixture
def dir_pool(local_host, janitor) -> StoragePool:
    """A persistent, active dir pool on the main host, cached by a reconcile."""
    folder = janitor.folder()
    folder.mkdir(mode=0o755)
    name = janitor.pool_name()
    conn = libvirt.open(LOCAL)
    pool = conn.storagePoolDefineXML(
        f"<pool type='dir'><name>{name}</name><target><path>{folder}</path></target></pool>", 0)
    pool.create(0)
    host_reconcile(host=local_host)
    return StoragePool.objects.select_related("host").get(host=local_host, name=name)


def finished(operation: Operation, timeout: float = 60) -> Operation:
    def done():
        operation.refresh_from_db()
        return operation.is_finished

    stack.wait_until(done, timeout=timeout, message=f"operation {operation.pk} ({operation.kind}) to finish")
    return operation


def latest(kind: str) -> Operation:
    return Operation.objects.filter(kind=kind).latest("pk")


def volume_row(pool: StoragePool, name: str) -> Volume:
    return Volume.objects.select_related("pool", "host").get(pool=pool, name=name)


def qemu_img_info(path: str) -> dict:
    return json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-U", path], check=True,
                                     capture_output=True, text=True).stdout)
