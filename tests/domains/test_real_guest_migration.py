"""A real guest (tests/realguest.py) migrated live between two harness hosts through vmsite's
migrate page and a real worker keeps what it wrote in memory: the same checksum, the same boot."""
from __future__ import annotations

import pytest

from operations.choices import OperationState
from tests.domains.test_migration import cached, migrated, watch
from tests.hosts.test_registration import connect_result, register

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_it_keeps_a_file_written_in_a_real_guest_across_a_live_migration(harness, celery_worker, admin_client,
                                                                        guests):
    source, destination = harness(), harness()
    hosts = []
    for role, harness_host in (("source", source), ("destination", destination)):
        host = register(admin_client, name=f"real-{role}-{harness_host.index}", transport="tcp",
                        address=harness_host.address)
        assert connect_result(host).state == OperationState.SUCCEEDED
        hosts.append(host)
    source_host, destination_host = hosts
    guest = guests.real(source.tcp_uri, vnc_listen=source.address)
    guests.created.append((destination.tcp_uri, guest.name))  # removed from wherever it ends up
    written = guest.shell.run("dd if=/dev/urandom of=/root/data bs=64k count=32 2>/dev/null; "
                              "sha256sum /root/data").split()[0]
    boot = guest.shell.run("cat /proc/sys/kernel/random/boot_id")

    operation = migrated(admin_client, cached(source_host, guest.domain), destination_host, live="on")
    watch(operation, timeout=300)
    assert operation.state == OperationState.SUCCEEDED, operation.error

    guest.follow_to(destination.tcp_uri)
    assert guest.shell.run("sha256sum /root/data").split()[0] == written
    assert guest.shell.run("cat /proc/sys/kernel/random/boot_id") == boot  # moved while running, not rebooted
