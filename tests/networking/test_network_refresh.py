"""network_refresh: the one function that re-reads one network and stores it (the operations use
it after every change; the event listener can call it from a network event)."""
from __future__ import annotations

import pytest

from hosts.connection import connect_uri
from networking.models import VirtualNetwork
from networking.sync import network_refresh
from virt.connection import pool
from virt.networks import NetworkSpec, SubnetSpec, build_network, define

pytestmark = pytest.mark.django_db


def test_it_creates_updates_and_removes_one_networks_row(test_host):
    with pool().session(connect_uri(test_host)) as conn:
        handle = define(conn, build_network(NetworkSpec(name="lab", mode="route",
                                                        ipv4=SubnetSpec("10.251.45.1", 24))))
        uuid = handle.UUIDString()
        row = network_refresh(conn, host=test_host, uuid=uuid)
        assert (row.name, row.mode, row.active, row.subnets, row.seq) == ("lab", "route", False, ["10.251.45.1/24"], 0)

        handle.create()
        row = network_refresh(conn, host=test_host, uuid=uuid)
        assert (row.active, row.seq) == (True, 1)

        handle.destroy()
        handle.undefine()
        assert network_refresh(conn, host=test_host, uuid=uuid) is None
    assert not VirtualNetwork.objects.filter(host=test_host, uuid=uuid).exists()
    assert VirtualNetwork.objects.filter(host=test_host, name="outside").exists()
