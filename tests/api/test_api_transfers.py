"""A script's upload and download with an API token: the API starts the upload, the same socket as
the browser's carries it, the same streamed GET brings it back; no session anywhere."""
import hashlib
import os

import pytest
import websocket
from django.contrib.auth import get_user_model

from accounts.models import AuditAction, AuditEvent
from api.tokens import api_token_issue
from tests.storage.test_transfer import MIB, random_file, remote, remote_pool  # noqa: F401  (fixtures)
from tests.storage.transfer import Script, file_chunks

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def script_for(asgi_server: str, *, admin: bool) -> Script:
    users = get_user_model()
    user = (users.objects.create_superuser if admin else users.objects.create_user)(f"s{os.urandom(3).hex()}")
    return Script(asgi_server, api_token_issue(user=user, name="script", days=None)[1])


def test_a_script_uploads_and_downloads_a_volume_with_its_token(asgi_server, remote_pool, tmp_path):
    size = 24 * MIB
    expected = random_file(tmp_path / "image.bin", size)
    script = script_for(asgi_server, admin=True)
    result = script.upload(remote_pool.pk, file_chunks(tmp_path / "image.bin"), size=size, name="by-script.img")
    assert result.sha256 == expected, result.last_message
    volume_id = remote_pool.volumes.get(name="by-script.img").pk
    assert script.download(volume_id)[0] == expected
    operation = script.http.get(f"{asgi_server}/api/v1/operations/{result.operation}/").json()
    assert operation["state"] == "succeeded" and operation["kind"] == "volume.upload"


def test_tokens_that_may_not_are_refused_on_the_socket_and_the_download(asgi_server, remote_pool, tmp_path):
    admin, viewer = script_for(asgi_server, admin=True), script_for(asgi_server, admin=False)
    started = admin.start_upload(remote_pool.pk, size=MIB, name="theirs.img")
    assert started["http_status"] == 200
    for intruder in (viewer, Script(asgi_server, "vms_00000000_wrong")):
        with pytest.raises(websocket.WebSocketBadStatusException):
            intruder.open_socket(started["socket"]).recv()
    assert viewer.start_upload(remote_pool.pk, size=MIB, name="mine.img")["http_status"] == 404
    some_volume = admin.upload(remote_pool.pk, iter([os.urandom(MIB)]), size=MIB, name="small.img")
    assert some_volume.sha256
    volume_id = remote_pool.volumes.get(name="small.img").pk
    download = f"{asgi_server}/storage/volumes/{volume_id}/download/"
    assert viewer.http.get(download).status_code == 404  # no grant: as a page, not even seen
    wrong = Script(asgi_server, "vms_00000000_wrong").http.get(download)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert AuditEvent.objects.filter(action=AuditAction.TOKEN_REFUSED).count() >= 2
    assert hashlib.sha256(admin.http.get(download).content).hexdigest() == some_volume.sha256


def test_a_token_opens_no_other_page(asgi_server):
    admin = script_for(asgi_server, admin=True)
    answer = admin.http.get(f"{asgi_server}/hosts/", allow_redirects=False)
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login/")


def test_a_token_may_listen_on_the_live_socket_but_not_open_a_console(asgi_server, local_libvirt):
    from django.utils import timezone

    from domains.models import Domain
    from hosts.models import Host

    script = script_for(asgi_server, admin=True)
    live = script.open_socket("/ws/live/")
    assert '"hello"' in live.recv()
    live.close()
    host = Host.objects.create(name="tok-console", transport="test", address="default")
    vm = Domain.objects.create(host=host, uuid="6695eb01-f6a4-8304-79aa-97f2502e1d01", name="c", synced_at=timezone.now())
    with pytest.raises(websocket.WebSocketBadStatusException):
        script.open_socket(f"/ws/vms/{vm.pk}/serial/").recv()
    with pytest.raises(websocket.WebSocketBadStatusException):
        Script(asgi_server, "vms_00000000_wrong").open_socket("/ws/live/").recv()
