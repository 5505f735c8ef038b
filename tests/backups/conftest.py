import pytest

from hosts.services import host_register_local


@pytest.fixture
def local_host(local_libvirt):
    """This machine's libvirtd, registered as a host."""
    host, _ = host_register_local()
    return host
