"""Volumes through the API on a real dir pool: created, resized and refused as on the pages."""
import pytest

from tests.storage.conftest import dir_pool, janitor, local_host, qemu_img_info  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(client, answer) -> dict:
    from tests import stack

    assert answer.status_code == 202, answer.content
    url = answer.json()["url"]
    stack.wait_until(lambda: client.get(url).json()["state"] in ("succeeded", "failed"), timeout=60,
                     message="the volume operation")
    return client.get(url).json()


def test_a_qcow2_volume_is_made_and_grown_through_the_api(celery_worker, dir_pool, api_as):
    admin = api_as("admin")
    result = finished(admin, admin.post(f"/api/v1/pools/{dir_pool.pk}/volumes/",
                                        {"name": "api.qcow2", "format": "qcow2", "capacity": 64,
                                         "capacity_unit": "MiB"}, format="json"))
    assert result["state"] == "succeeded", result["error"]
    volume = admin.get(f"/api/v1/volumes/?pool_id={dir_pool.pk}").json()["results"][0]
    assert volume["name"] == "api.qcow2" and volume["format"] == "qcow2"
    assert qemu_img_info(volume["path"])["virtual-size"] == 64 * 1024 * 1024

    result = finished(admin, admin.post(f"/api/v1/volumes/{volume['id']}/actions/",
                                        {"action": "resize", "capacity": 96, "capacity_unit": "MiB"}, format="json"))
    assert result["state"] == "succeeded", result["error"]
    assert qemu_img_info(volume["path"])["virtual-size"] == 96 * 1024 * 1024


def test_bad_volumes_are_refused_with_the_pages_messages(dir_pool, api_as):
    admin = api_as("admin")
    url = f"/api/v1/pools/{dir_pool.pk}/volumes/"
    for body, field in (({"name": "../x", "format": "raw", "capacity": 1}, "name"),
                        ({"name": "ok.img", "format": "raw", "capacity": 0}, "capacity"),
                        ({"name": "ok.img", "format": "raw", "capacity": 10**9, "capacity_unit": "TiB"}, "capacity"),
                        ({"name": "ok.img", "format": "toaster", "capacity": 1}, "format")):
        answer = admin.post(url, body, format="json")
        assert answer.status_code == 400 and field in answer.json(), (body, answer.content)
    assert api_as("operator", host=dir_pool.host).post(url, {"name": "x.img", "format": "raw", "capacity": 1},
                                                       format="json").status_code == 403


def test_a_new_dir_pool_is_built_unless_told_not_to(celery_worker, local_host, janitor, api_as):
    from storage.models import StoragePool

    admin = api_as("admin")
    url = f"/api/v1/hosts/{local_host.pk}/pools/"
    missing, name = janitor.folder(), janitor.pool_name()
    result = finished(admin, admin.post(url, {"pool_type": "dir", "name": name, "target_path": str(missing),
                                              "start": True}, format="json"))
    assert result["state"] == "succeeded", result["error"]
    assert missing.is_dir() and StoragePool.objects.get(host=local_host, name=name).active

    existing, name = janitor.folder(), janitor.pool_name()  # building keeps a folder that is already there
    existing.mkdir()
    (existing / "kept.img").write_bytes(b"x")
    result = finished(admin, admin.post(url, {"pool_type": "dir", "name": name, "target_path": str(existing),
                                              "start": True}, format="json"))
    assert result["state"] == "succeeded", result["error"]
    assert (existing / "kept.img").read_bytes() == b"x"

    missing, name = janitor.folder(), janitor.pool_name()
    result = finished(admin, admin.post(url, {"pool_type": "dir", "name": name, "target_path": str(missing),
                                              "start": True, "build": False}, format="json"))
    assert result["state"] == "failed" and "does not exist on the host" in result["error"]
