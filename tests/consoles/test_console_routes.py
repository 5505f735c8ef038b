"""Consoles of guests on other hosts: through an SSH tunnel to an SSH-registered host's loopback,
and directly to a TCP host's display address. Harness hosts are real libvirtds with real sshds."""
from pathlib import Path

import pytest
import websocket
from django.conf import settings

from hosts.credentials import SSH_KEY_FILE
from hosts.models import Host
from hosts.services import host_pin_ssh_keys, installation_ssh_key
from tests import stack
from tests.consoles.conftest import cached, guest_name, logged_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def ssh_registered(harness_host) -> Host:
    key = installation_ssh_key()
    harness_host.authorize_ssh_key(key.public_key)
    host = Host.objects.create(name=f"con-ssh-{harness_host.index}", transport="ssh", address=harness_host.address,
                               username="root", ssh_key=key)
    host_pin_ssh_keys(host=host)
    return host


def test_it_reaches_a_display_on_an_ssh_hosts_loopback_through_a_tunnel(console_proxy, harness, guests, alice,
                                                                        stack_log_dir):
    remote = harness()
    host = ssh_registered(remote)
    # The display listens on the host's loopback only: nothing but a tunnel reaches it from vmsite.
    guest = guests.define(remote.tcp_uri, name=guest_name(), start=True, vnc_listen="127.0.0.1")
    domain = cached(host, guest)
    browser = logged_in(alice)
    sock = browser.open(console_proxy, browser.token(domain))
    try:
        assert sock.recv().startswith(b"RFB 003.00")
    finally:
        sock.close()
    log = (stack_log_dir / "consoleproxy.log").read_text()
    assert f"console of VM {guest.UUIDString()} opened by user {alice.pk} (ssh tunnel)" in log
    # Once the console is closed, its key file is gone: the process that proxied it may end at once,
    # and once left one behind in the data folder (its tunnel's thread had not run yet).
    stack.wait_until(lambda: f"console of VM {guest.UUIDString()} closed" in
                     (stack_log_dir / "consoleproxy.log").read_text(), timeout=15, message="the console to close")
    assert not list(Path(settings.CREDENTIALS_DIR).glob(f"*/host-{host.pk}/{SSH_KEY_FILE}"))


def test_it_refuses_the_tunnel_when_the_ssh_host_key_is_not_the_pinned_one(console_proxy, harness, guests, alice):
    remote = harness()
    host = ssh_registered(remote)
    guest = guests.define(remote.tcp_uri, name=guest_name(), start=True, vnc_listen="127.0.0.1")
    domain = cached(host, guest)
    remote.replace_ssh_host_key()  # a reinstalled host, or one impersonating it
    browser = logged_in(alice)
    sock = browser.open(console_proxy, browser.token(domain))
    sock.settimeout(30)
    frame = sock.recv_data_frame(True)[1]
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame.data[:2], "big") == 4404 and b"host key changed" in frame.data


def test_it_connects_directly_to_a_tcp_hosts_display_address(console_proxy, harness, guests, alice, stack_log_dir):
    remote = harness()
    host = Host.objects.create(name=f"con-tcp-{remote.index}", transport="tcp", address=remote.address)
    guest = guests.define(remote.tcp_uri, name=guest_name(), start=True, vnc_listen=remote.address)
    domain = cached(host, guest)
    browser = logged_in(alice)
    sock = browser.open(console_proxy, browser.token(domain))
    try:
        assert sock.recv().startswith(b"RFB 003.00")
    finally:
        sock.close()
    assert f"console of VM {guest.UUIDString()} opened by user {alice.pk} (direct)" in (
        stack_log_dir / "consoleproxy.log").read_text()


def test_it_closes_an_open_console_when_the_vm_migrates_away(console_proxy, celery_worker, harness, guests, alice):
    from domains.migration import domain_migrate_enqueue
    from operations.models import Operation
    from tests import stack
    from tests.consoles.test_vnc_proxy import _closed_within

    source, destination = harness(), harness()
    hosts = [Host.objects.create(name=f"con-mig-{h.index}", transport="tcp", address=h.address)
             for h in (source, destination)]
    guest = guests.define(source.tcp_uri, name=guest_name(), start=True, vnc_listen=source.address)
    guests.created.append((destination.tcp_uri, guest.name()))
    domain = cached(hosts[0], guest)
    browser = logged_in(alice)
    sock = browser.open(console_proxy, browser.token(domain))
    assert sock.recv().startswith(b"RFB 003.00")
    sock.send_binary(b"RFB 003.008\n")
    operation = domain_migrate_enqueue(domain=domain, destination=hosts[1], user=alice, options={
        "live": True, "persist_destination": True, "undefine_source": True, "copy_storage": "",
        "bandwidth_mib": None, "auto_converge": False, "postcopy": False})
    stack.wait_until(lambda: Operation.objects.get(pk=operation.pk).is_finished, timeout=120, message="migration")
    finished = Operation.objects.get(pk=operation.pk)
    assert finished.state == "succeeded", finished.error
    assert _closed_within(sock, 5), "the console stayed open after the VM left its host"


def test_the_spice_file_of_a_running_spice_guest_names_its_live_port(local_libvirt, guests, alice):
    import libvirt
    from django.urls import reverse
    from lxml import etree

    from hosts.services import host_register_local
    from tests.guests import small_guest_xml

    name = guest_name()
    xml = etree.fromstring(small_guest_xml(name))
    graphics = xml.find("devices/graphics")
    graphics.set("type", "spice")
    guest = libvirt.open(local_libvirt).defineXML(etree.tostring(xml, encoding="unicode"))
    guests.created.append((local_libvirt, name))
    guests.uuids.append((local_libvirt, guest.UUIDString()))
    guest.create()
    host, _ = host_register_local()
    domain = cached(host, guest)
    live_port = int(etree.fromstring(guest.XMLDesc(0)).find("devices/graphics").get("port"))
    body = logged_in(alice).client.get(reverse("consoles:spice", args=[domain.pk])).content.decode()
    assert f"host=127.0.0.1\nport={live_port}\n" in body and live_port >= 5900
