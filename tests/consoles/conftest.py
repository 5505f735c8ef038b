"""The console tests' stack (the console proxy is tests/conftest.py's): users with and without the console right, guests
named vmsite-con-* (this suite's prefix), and a scripted RFB/websocket client."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
import websocket
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from lxml import etree

from domains.models import Domain
from accounts.models import Grant, Role
from hosts.models import Host
from hosts.services import host_register_local
from inventory.reconcile import host_reconcile
from tests.guests import small_guest_xml

PASSWORD = "correct horse battery staple"
PREFIX = "vmsite-con-"


@pytest.fixture
def local_host(local_libvirt) -> Host:
    host, _ = host_register_local()
    return host


CONSOLE_USERS: set[str] = set()  # user names that get an operator grant on every host when they log in


def make_user(name: str, *, console: bool = True):
    """A user who may open consoles (an operator on the hosts of the test) or only look (a viewer)."""
    user = get_user_model().objects.create_user(name, password=PASSWORD)
    (CONSOLE_USERS.add if console else CONSOLE_USERS.discard)(name)
    return user


def grant_hosts(user) -> None:
    """Operator (console right) or viewer grants on every host the test has made so far."""
    role = Role.OPERATOR if user.get_username() in CONSOLE_USERS else Role.VIEWER
    for host in Host.objects.exclude(grants__user=user):
        Grant.objects.create(user=user, host=host, role=role)


def take_console_right(user) -> None:
    Grant.objects.filter(user=user).update(role=Role.VIEWER)


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def bob():
    return make_user("bob")


def guest_name() -> str:
    return f"{PREFIX}{uuid.uuid4().hex[:8]}"


def serial_guest_xml(name: str, *, vnc_listen: str = "127.0.0.1") -> str:
    """A diskless guest whose SeaBIOS talks on the serial console and waits in its boot menu."""
    domain = etree.fromstring(small_guest_xml(name, vnc_listen=vnc_listen))
    os_element = domain.find("os")
    etree.SubElement(os_element, "bootmenu", enable="yes", timeout="60000")
    etree.SubElement(os_element, "bios", useserial="yes")
    devices = domain.find("devices")
    serial = etree.SubElement(devices, "serial", type="pty")
    etree.SubElement(serial, "target", port="0")
    console = etree.SubElement(devices, "console", type="pty")
    etree.SubElement(console, "target", type="serial", port="0")
    return etree.tostring(domain, encoding="unicode")


def cached(host: Host, guest) -> Domain:
    host_reconcile(host=host)
    return Domain.objects.select_related("host").get(host=host, uuid=guest.UUIDString())


@dataclass
class Browser:
    """A logged-in session as a browser holds it: a Django test client and its session cookie."""

    client: Client
    origin: str

    @property
    def session_key(self) -> str:
        return self.client.cookies["sessionid"].value

    def token(self, domain: Domain) -> str:
        response = self.client.post(reverse("consoles:token", args=[domain.pk]))
        assert response.status_code == 200, response.content
        return response.json()["token"]

    def open(self, port: int, token: str, *, query: str = "", origin: str | None = None,
             cookie: str | None = None) -> websocket.WebSocket:
        return websocket.create_connection(
            f"ws://127.0.0.1:{port}/?token={token}{query}", timeout=10,
            origin=self.origin if origin is None else origin,
            cookie=f"sessionid={self.session_key}" if cookie is None else cookie,
            suppress_origin=origin == "")


def logged_in(user, origin: str | None = None) -> Browser:
    grant_hosts(user)
    client = Client()
    assert client.login(username=user.get_username(), password=PASSWORD)
    # By default a page of the suite's ASGI server: the site's own origin (vmsite/settings_test.py).
    return Browser(client=client, origin=origin or f"http://127.0.0.1:{settings.VMSITE_PORT}")
