"""The upload page in Chromium: the file goes over the websocket, the progress bar fills, the
SHA-256 is shown; the volume page then offers the download."""
import hashlib
import os

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import expect

from storage.models import Volume

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
