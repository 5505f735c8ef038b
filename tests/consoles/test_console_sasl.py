"""Consoles of VMs on a host whose libvirtd asks for a SASL login (auth_tcp = "sasl"): the VNC console
proxy (a websockify process) and the serial console (a consumer of the ASGI server) each open their
own libvirt connection to the host, in their own process, with the host's sealed login; with a wrong
password each says that the SASL login was refused. Real harness libvirtds with a sasldb."""
import json

import libvirt
import pytest
import websocket

from domains.models import Domain
from hosts.models import Host
from tests.consoles.conftest import cached, guest_name, logged_in, serial_guest_xml
from tests.consoles.test_console_sockets import open_socket, reach_the_boot_menu
from tests.consoles.test_vnc_proxy import _close_frame, rfb_banner
from tests.hosts.test_registration import register
from tests.hosts.test_sasl import PASSWORD, connected, edit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SASL_REFUSED = "SASL authentication failed: The host refused the SASL user name and password"


def sasl_host_with_vm(admin_client, harness, guests, name: str) -> Domain:
    """A SASL host registered over TCP with its login, and a running VM on it with VNC and a serial
    console (defined through the host's own socket: TCP would ask the test for a login)."""
    remote = harness(sasl_users={"vmsite": PASSWORD})
    host = register(admin_client, name=name, transport="tcp", address=remote.address, sasl_username="vmsite",
                    sasl_password=PASSWORD)
    assert connected(host) == ""
    vm_name = guest_name()
    guest = libvirt.open(remote.socket_uri).defineXML(serial_guest_xml(vm_name, vnc_listen=remote.address))
    guests.created.append((remote.socket_uri, vm_name))
    guests.uuids.append((remote.socket_uri, guest.UUIDString()))
    guest.create()
    return cached(host, guest)


def serial_socket(asgi_server: str, domain: Domain, session_key: str) -> websocket.WebSocket:
    return open_socket(asgi_server, f"/ws/vms/{domain.pk}/serial/", cookie=f"sessionid={session_key}")


def test_the_vnc_and_serial_consoles_of_a_vm_on_a_sasl_host_open_with_its_login(
        celery_worker, console_proxy, asgi_server, admin_client, harness, guests, alice):
    domain = sasl_host_with_vm(admin_client, harness, guests, "sasl-consoles")
    browser = logged_in(alice)

    vnc = browser.open(console_proxy, browser.token(domain))
    try:
        assert rfb_banner(vnc).startswith(b"RFB 003.00")  # the VM's VNC server, found through the SASL login
    finally:
        vnc.close()

    serial = serial_socket(asgi_server, domain, browser.session_key)
    try:
        status = json.loads(serial.recv())
        assert status["state"] == "connected", status
        reach_the_boot_menu(serial)  # the guest's own output, through the SASL login
    finally:
        serial.close()


def test_with_a_wrong_sasl_password_both_consoles_say_the_login_was_refused(
        celery_worker, console_proxy, asgi_server, admin_client, harness, guests, alice):
    domain = sasl_host_with_vm(admin_client, harness, guests, "sasl-wrong")
    edit(admin_client, domain.host, sasl_username="vmsite", sasl_password="not the password")
    assert connected(Host.objects.get(pk=domain.host_id)).startswith(SASL_REFUSED)
    browser = logged_in(alice)

    vnc = browser.open(console_proxy, browser.token(domain))
    try:
        code, reason = _close_frame(vnc, 30)
    finally:
        vnc.close()
    assert code == 4404 and reason.startswith(SASL_REFUSED), (code, reason)

    serial = serial_socket(asgi_server, domain, browser.session_key)
    try:
        status = json.loads(serial.recv())
    finally:
        serial.close()
    assert status["state"] == "unavailable" and status["message"].startswith(SASL_REFUSED), status
    assert "saslpasswd2 -a libvirt" in status["message"]
