"""Fixtures that start the real stack on demand: libvirtd, Redis, Celery workers, the ASGI server,
Chromium. Every process a fixture starts, it stops by pid."""
from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import libvirt
import pytest
import redis
from django.conf import settings
from lxml import etree

from tests import stack

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests make
# between page actions are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

TEST_GUEST_PREFIX = "vmsite-test-"


@pytest.fixture(scope="session")
def stack_log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stack-logs")


@pytest.fixture(scope="session")
def redis_ready() -> redis.Redis:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {settings.REDIS_URL} does not answer ({exc}); `make test` starts it")
    client.flushdb()  # the suite's own database (settings_test): stale tasks of an earlier run go
    return client


@pytest.fixture(scope="session")
def local_libvirt() -> str:
    uri = settings.LIBVIRT_LOCAL_URI
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd does not answer on {uri} ({exc}); `make test` starts it")
    return uri


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, redis_ready, local_libvirt, stack_log_dir):
    worker = stack.start_worker("worker", log_dir=stack_log_dir)
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, redis_ready, stack_log_dir) -> str:
    server, url = stack.start_asgi_server(log_dir=stack_log_dir)
    yield url
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, stack_log_dir, request):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    page.screenshot(path=str(stack_log_dir / f"{request.node.name}.png"))
    context.close()


class GuestFactory:
    """Small, quiet guests (TESTING.md) that the test owns and that are removed afterwards."""

    def __init__(self) -> None:
        self.created: list[tuple[str, str]] = []

    def define(self, uri: str, *, name: str | None = None, start: bool = False,
               vnc_listen: str = "127.0.0.1") -> libvirt.virDomain:
        name = name or f"{TEST_GUEST_PREFIX}{uuid.uuid4().hex[:8]}"
        conn = libvirt.open(uri)
        domain = conn.defineXML(small_guest_xml(name, vnc_listen=vnc_listen))
        self.created.append((uri, name))
        if start:
            domain.create()
        return domain

    def cleanup(self) -> None:
        for uri, name in self.created:
            try:
                conn = libvirt.open(uri)
                domain = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            if domain.isActive():
                domain.destroy()
            if domain.isPersistent():
                domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)


@pytest.fixture
def guests():
    factory = GuestFactory()
    yield factory
    factory.cleanup()


def small_guest_xml(name: str, *, vnc_listen: str = "127.0.0.1") -> str:
    """A diskless 32 MiB guest that stays in SeaBIOS: enough for lifecycle and console tests."""
    domain_type = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"
    domain = etree.Element("domain", type=domain_type)
    etree.SubElement(domain, "name").text = name
    etree.SubElement(domain, "memory", unit="MiB").text = "32"
    etree.SubElement(domain, "vcpu").text = "1"
    os_element = etree.SubElement(domain, "os")
    etree.SubElement(os_element, "type", arch="x86_64", machine="pc").text = "hvm"
    etree.SubElement(os_element, "boot", dev="hd")
    devices = etree.SubElement(domain, "devices")
    graphics = etree.SubElement(devices, "graphics", type="vnc", autoport="yes", listen=vnc_listen)
    etree.SubElement(graphics, "listen", type="address", address=vnc_listen)
    etree.SubElement(devices, "memballoon", model="none")
    return etree.tostring(domain, encoding="unicode")


def virsh(uri: str, *args: str) -> str:
    return subprocess.run(["virsh", "-c", uri, *args], check=True, capture_output=True, text=True).stdout
