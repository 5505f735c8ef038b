"""The storage pages: the nav link, the pool list, the ISO library and its link into the new-VM
wizard, permissions. Rows come from a reconcile of the real libvirtd."""
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import Grant, Role
from inventory.reconcile import host_reconcile
from operations.models import Operation

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def iso(dir_pool, tmp_path):
    """A small ISO image in the pool, made outside libvirt and found by a reconcile."""
    (tmp_path / "readme.txt").write_text("hello\n")
    path = f"{dir_pool.target_path}/tools.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", path, "-V", "TOOLS", str(tmp_path / "readme.txt")], check=True)
    subprocess.run(["virsh", "-q", "-c", "qemu:///system", "pool-refresh", dir_pool.name], check=True,
                   capture_output=True)
    host_reconcile(host=dir_pool.host)
    return dir_pool.volumes.get(name="tools.iso")


def test_the_nav_leads_to_the_pools_with_their_usage(admin_client, dir_pool):
    home = admin_client.get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("storage:list")}"' in home
    page = admin_client.get(reverse("storage:list")).content.decode()
    assert dir_pool.name in page and 'role="progressbar"' in page and dir_pool.target_path in page
    host_page = admin_client.get(reverse("hosts:detail", args=[dir_pool.host.pk])).content.decode()
    assert reverse("storage:pool", args=[dir_pool.pk]) in host_page


def test_the_iso_library_lists_isos_and_hands_one_to_the_new_vm_wizard(admin_client, iso):
    assert iso.format == "iso" and iso.is_iso
    page = admin_client.get(reverse("storage:isos")).content.decode()
    assert "tools.iso" in page and iso.pool.name in page
    link = (f"{reverse('domains:create', args=[iso.host_id])}?cdrom_pool={iso.pool.name}"
            "&amp;cdrom_volume=tools.iso")
    assert link in page
    wizard = admin_client.get(link.replace("&amp;", "&")).content.decode()
    assert 'value="tools.iso"' in wizard


def test_a_volume_page_shows_its_facts_and_a_user_without_permission_cannot_change_it(client, admin_client, iso):
    page = admin_client.get(reverse("storage:volume", args=[iso.pk])).content.decode()
    assert iso.path in page and "Download" in page

    viewer = get_user_model().objects.create_user("viewer", password="x" * 20)
    Grant.objects.create(user=viewer, host=iso.host, role=Role.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("storage:volume", args=[iso.pk])).status_code == 200
    for url, data in ((reverse("storage:volume_action", args=[iso.pk, "wipe"]), {}),
                      (reverse("storage:volume_delete", args=[iso.pk]), {"confirm_name": "tools.iso"}),
                      (reverse("storage:pool_action", args=[iso.pool_id, "stop"]), {}),
                      (reverse("storage:upload", args=[iso.pool_id]), {"name": "x.img", "size": "10"})):
        assert client.post(url, data).status_code == 403, url
    assert not Operation.objects.exists()
    client.logout()
    assert client.get(reverse("storage:list")).status_code == 302  # to the login page


def test_every_form_page_renders(admin_client, iso):
    pool, host = iso.pool, iso.host
    urls = [reverse("storage:define", args=[host.pk]), reverse("storage:pool_delete", args=[pool.pk]),
            reverse("storage:volume_create", args=[pool.pk]), reverse("storage:upload", args=[pool.pk]),
            reverse("storage:volume_clone", args=[iso.pk]), reverse("storage:volume_resize", args=[iso.pk]),
            reverse("storage:volume_delete", args=[iso.pk])]
    urls += [reverse("storage:define_type", args=[host.pk, kind])
             for kind in ("dir", "fs", "netfs", "logical", "disk", "iscsi")]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert b"csrfmiddlewaretoken" in response.content or url.endswith("/new-pool/"), url
    assert admin_client.get(reverse("storage:define_type", args=[host.pk, "rbd"])).status_code == 200
    assert admin_client.post(reverse("storage:define_type", args=[host.pk, "rbd"]), {}).status_code == 404


def test_a_download_of_a_volume_gone_from_its_host_is_a_404_not_a_crash(admin_client, dir_pool):
    from django.utils import timezone

    from storage.models import Volume

    ghost = Volume.objects.create(host=dir_pool.host, pool=dir_pool, key="/nowhere/ghost.img", name="ghost.img",
                                  path="/nowhere/ghost.img", synced_at=timezone.now())
    # The view is async; once a browser test has run, Playwright's sync API keeps an event loop in
    # this thread, where Django's test client cannot run an async view: ask from another thread.
    with ThreadPoolExecutor(1) as thread:
        response = thread.submit(admin_client.get, reverse("storage:volume_download", args=[ghost.pk])).result()
    assert response.status_code == 404 and b"no longer on its host" in response.content
