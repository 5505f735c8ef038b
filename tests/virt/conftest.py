from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from tests.virt.helpers import SAMPLES


@pytest.fixture
def test_conn(tmp_path: Path) -> Iterator[libvirt.virConnect]:
    """libvirt's test driver over a private copy of samples/node.xml (one domain, web1)."""
    node = tmp_path / "node.xml"
    shutil.copy(SAMPLES / "node.xml", node)
    conn = libvirt.open("test://" + str(node))
    yield conn
    conn.close()
