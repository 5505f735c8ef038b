import shutil
import uuid
from pathlib import Path

import pytest

from hosts.services import host_register_local
from tests.guests import ScratchPool

IMAGES = Path("/var/lib/libvirt/images")


@pytest.fixture
def local_host(local_libvirt):
    """This machine's libvirtd, registered as a host."""
    host, _ = host_register_local()
    return host


@pytest.fixture
def backup_pool(local_libvirt):
    """A dir pool of its own on this machine's libvirtd, for the restore points; removed with its files."""
    folder = IMAGES / f"vmsite-test-bk-{uuid.uuid4().hex[:8]}"
    folder.mkdir(mode=0o755)
    pool = ScratchPool(local_libvirt, str(folder))
    yield pool
    pool.remove()
    shutil.rmtree(folder, ignore_errors=True)
