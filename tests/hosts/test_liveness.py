"""The listener notices a dead libvirtd within seconds and catches up when it returns."""
import time

import pytest

from domains.models import Domain
from hosts.models import Host
from tests import stack
from tests.guests import small_guest_xml

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def host_status(host: Host) -> str:
    host.refresh_from_db()
    return host.status


def test_it_marks_a_killed_host_offline_and_lists_guests_created_during_the_outage(listener, harness, guests):
    harness_host = harness()
    host = Host.objects.create(name="watched", transport="tcp", address=harness_host.address)
    stack.wait_until(lambda: host_status(host) == "online", timeout=15, message="the host to come online")

    harness_host.kill_libvirtd()
    killed_at = time.monotonic()
    stack.wait_until(lambda: host_status(host) == "offline", timeout=10, message="the host to go offline")
    assert time.monotonic() - killed_at <= 10
    assert "Connection lost" in host.status_reason

    # Defined while vmsite cannot see the host: libvirtd reads it from its config folder on start.
    name = "vmsite-test-during-outage"
    (harness_host.state_dir / "etc" / "qemu" / f"{name}.xml").write_text(small_guest_xml(name))
    guests.created.append((harness_host.tcp_uri, name))
    harness_host.start_libvirtd()
    restarted_at = time.monotonic()
    stack.wait_until(lambda: host_status(host) == "online", timeout=10, message="the host to come back online")
    stack.wait_until(lambda: Domain.objects.filter(host=host, name=name).exists(), timeout=10,
                     message="the guest created during the outage to be listed")
    assert time.monotonic() - restarted_at <= 12
