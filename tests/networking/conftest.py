from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from hosts.models import Host
from hosts.services import host_register_local
from inventory.reconcile import host_reconcile

SAMPLES = Path(__file__).parent / "samples"


@pytest.fixture
def node_file(tmp_path: Path) -> Path:
    """A private copy of samples/node.xml: one NAT network (10.251.200.0/24), eth1 and br0."""
    node = tmp_path / "node.xml"
    shutil.copy(SAMPLES / "node.xml", node)
    return node


@pytest.fixture
def test_conn(node_file: Path) -> Iterator[libvirt.virConnect]:
    conn = libvirt.open(f"test://{node_file}")
    yield conn
    conn.close()


@pytest.fixture
def test_host(node_file: Path, db) -> Host:
    """A host on libvirt's test driver, reconciled once."""
    host = Host.objects.create(name="demo", transport="test", address=str(node_file))
    host_reconcile(host=host)
    return host


@pytest.fixture
def local_host(local_libvirt):
    host, _ = host_register_local()
    return host
