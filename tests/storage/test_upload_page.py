"""The upload page in Chromium: the file goes over the websocket, the progress bar fills, the
SHA-256 is shown; the volume page then offers the download."""
import hashlib
import os

import libvirt
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import expect

from inventory.reconcile import host_reconcile
from storage.models import Volume
from tests.storage.conftest import LOCAL

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MIB = 1024 * 1024


def test_it_uploads_a_file_from_the_page_and_shows_its_sha256(page, asgi_server, dir_pool, tmp_path):
    user = get_user_model().objects.create_superuser("uploader", password="x" * 20)
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    data = os.urandom(24 * MIB + 123)
    (tmp_path / "disk.img").write_bytes(data)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{asgi_server}/storage/pools/{dir_pool.pk}/")
    page.click("#upload-volume")
    page.set_input_files("#id_file", str(tmp_path / "disk.img"))
    page.fill("#id_name", "../bad")
    page.click("#start-upload")
    expect(page.locator("#upload-errors")).to_contain_text("cannot contain '/'")
    page.fill("#id_name", "from-page.img")
    page.click("#start-upload")
    expect(page.locator("#upload-sha256")).to_have_text(hashlib.sha256(data).hexdigest(), timeout=60_000)
    expect(page.locator("#upload-status")).to_have_text(f"Uploaded {len(data)} bytes.")
    assert not errors, errors

    volume = Volume.objects.get(pool=dir_pool, name="from-page.img")
    assert volume.capacity == len(data) and volume.sha256 == hashlib.sha256(data).hexdigest()
    with open(volume.path, "rb") as image:
        assert image.read() == data
    page.click("#upload-volume-link")
    expect(page).to_have_url(f"{asgi_server}/storage/volumes/{volume.pk}/")
    expect(page.locator("#volume-sha256")).to_have_text(volume.sha256)
    with page.expect_download() as download:
        page.click("#download")
    with open(download.value.path(), "rb") as saved:
        assert saved.read() == data


def test_an_open_volume_page_shows_a_change_made_outside_vmsite_once_a_reconcile_finds_it(page, asgi_server,
                                                                                         dir_pool):
    """Volumes have no libvirt events: a change made outside vmsite is found by a reconcile, which
    tells open pages that the host's inventory changed; the volume's page follows it."""
    user = get_user_model().objects.create_superuser("watcher", password="x" * 20)
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    pool = libvirt.open(LOCAL).storagePoolLookupByName(dir_pool.name)
    made = pool.createXML("<volume><name>outside.raw</name><capacity unit='MiB'>16</capacity>"
                          "<target><format type='raw'/></target></volume>", 0)
    host_reconcile(host=dir_pool.host)
    volume = Volume.objects.get(pool=dir_pool, name="outside.raw")
    page.goto(f"{asgi_server}/storage/volumes/{volume.pk}/")
    expect(page.locator("#volume-page")).to_contain_text(f"({16 * MIB} bytes)")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")

    made.resize(32 * MIB, 0)  # by hand, as virsh vol-resize would
    host_reconcile(host=dir_pool.host)
    expect(page.locator("#volume-page")).to_contain_text(f"({32 * MIB} bytes)", timeout=5_000)


def test_an_upload_that_cannot_start_says_why_and_keeps_the_form(page, asgi_server, dir_pool, tmp_path):
    """The POST that starts the session never got through (a dropped connection), or what came back is
    a proxy's page, not the form's answer: the page says so in words, and the same form, file
    included, uploads once the server answers."""
    user = get_user_model().objects.create_superuser("uploader", password="x" * 20)
    client = Client()
    client.force_login(user)
    page.context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": asgi_server}])
    data = os.urandom(MIB + 7)
    (tmp_path / "disk.img").write_bytes(data)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{asgi_server}/storage/pools/{dir_pool.pk}/upload/")
    page.set_input_files("#id_file", str(tmp_path / "disk.img"))
    page.fill("#id_name", "after-failures.img")
    upload_url = f"{asgi_server}/storage/pools/{dir_pool.pk}/upload/"

    def dropped(route):
        route.abort("connectionreset") if route.request.method == "POST" else route.continue_()

    page.route(upload_url, dropped)
    page.click("#start-upload")
    expect(page.locator("#upload-errors")).to_contain_text("the server could not be reached")
    page.unroute(upload_url)

    def gateway_page(route):
        if route.request.method == "POST":
            route.fulfill(status=502, content_type="text/html", body="<html><body>502 Bad Gateway</body></html>")
        else:
            route.continue_()

    page.route(upload_url, gateway_page)
    page.click("#start-upload")
    expect(page.locator("#upload-errors")).to_contain_text("the server answered 502")
    page.unroute(upload_url)
    assert not Volume.objects.filter(pool=dir_pool, name="after-failures.img").exists()

    page.click("#start-upload")
    expect(page.locator("#upload-sha256")).to_have_text(hashlib.sha256(data).hexdigest(), timeout=60_000)
    expect(page.locator("#upload-errors")).to_be_hidden()
    assert not errors, errors
