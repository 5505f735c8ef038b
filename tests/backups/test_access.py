"""Who may list, back up and restore a VM's backups, on the pages and through the API (the rules
are accounts.access's): a VM's viewers see its restore points; its operators back it up into a pool
that holds its volumes; restoring makes a new VM, so it takes an operator of the host too. Someone
with no right on the VM gets 404, a viewer 403. No daemon: the operations are saved, not run."""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from backups.models import RestorePoint, RestorePointDisk
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from operations.models import Operation
from storage.models import StoragePool, Volume, VolumeRecord
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_failures_left(login_failures_cleared):
    """API tokens count failed logins in Redis: each test starts with none."""


@pytest.fixture
def site(db):
    now = timezone.now()
    host = Host.objects.create(name="bk-host", transport="test", address="default")
    vm = Domain.objects.create(host=host, uuid=uuid.uuid4(), name="bk-vm", state=DomainState.RUNNING, synced_at=now)
    other = Domain.objects.create(host=host, uuid=uuid.uuid4(), name="bk-other", state=DomainState.RUNNING,
                                  synced_at=now)
    own_pool = StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="vm-pool", pool_type="dir", active=True,
                                          synced_at=now)
    StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="backup-pool", pool_type="dir", active=True,
                               synced_at=now)
    StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name="lvm-pool", pool_type="logical", active=True,
                               synced_at=now)
    record = VolumeRecord.objects.create(host=host, key="/vm-pool/bk-vm.qcow2", format="qcow2", owner_uuid=vm.uuid)
    Volume.objects.create(host=host, pool=own_pool, key=record.key, name="bk-vm.qcow2", record=record, synced_at=now)
    point = RestorePoint.objects.create(
        host=host, domain_uuid=vm.uuid, domain_name=vm.name, name="20261204-120000", kind="full", chain=uuid.uuid4(),
        checkpoint="vmsite-20261204-120000", pool_name="backup-pool", manifest="m.manifest.json",
        consistency="crash-consistent", domain_xml="<domain/>")
    RestorePointDisk.objects.create(point=point, target="vda", source="/vm-pool/bk-vm.qcow2", volume="f.qcow2",
                                    path="/backup-pool/f.qcow2", format="qcow2", capacity=2**30, size=2**20,
                                    checksum="blake3:" + "a" * 64)
    return {"host": host, "vm": vm, "other": other, "point": point}


def user_with(role: str, **on) -> Client:
    user = get_user_model().objects.create_user(f"{role}-{uuid.uuid4().hex[:6]}", password="x")
    if on:
        Grant.objects.create(user=user, role=Role.OPERATOR if role == "operator" else Role.VIEWER, **on)
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def urls(site) -> dict[str, str]:
    vm, point = site["vm"], site["point"]
    return {"now": reverse("backups:backup_now", args=[vm.pk]),
            "restore": reverse("backups:restore", args=[vm.pk, point.pk]),
            "api_list": reverse("api:vm_backups", args=[vm.pk]),
            "api_restore": reverse("api:vm_backup_restore", args=[vm.pk, point.pk])}


def test_an_operator_of_another_vm_gets_404_on_the_pages_and_the_api(site):
    client = user_with("operator", domain=site["other"])
    page = urls(site)
    assert client.post(page["now"], {"pool": "vm-pool"}).status_code == 404
    assert client.get(page["restore"]).status_code == 404
    assert client.post(page["restore"], {"name": "x", "pool": "vm-pool"}).status_code == 404
    api = token_client(client.user)
    assert api.get(page["api_list"]).status_code == 404
    assert api.post(page["api_list"], {"pool": "vm-pool"}, format="json").status_code == 404
    assert api.post(page["api_restore"], {"name": "x", "pool": "vm-pool"}, format="json").status_code == 404
    assert not Operation.objects.filter(kind__startswith="backup.").exists()


def test_a_viewer_sees_the_restore_points_and_gets_403_for_backing_up_and_restoring(site):
    client = user_with("viewer", domain=site["vm"])
    page = urls(site)
    detail = client.get(reverse("domains:detail", args=[site["vm"].pk])).content.decode()
    assert 'data-point="20261204-120000"' in detail and 'id="backup-now-form"' not in detail
    assert f'title="blake3:{"a" * 64}"' in detail  # each disk's checksum, to check its file by hand
    assert client.post(page["now"], {"pool": "vm-pool"}).status_code == 403
    assert client.get(page["restore"]).status_code == 403
    api = token_client(client.user)
    listed = api.get(page["api_list"]).json()
    assert [point["name"] for point in listed["results"]] == ["20261204-120000"]
    assert listed["results"][0]["disks"][0]["checksum"] == "blake3:" + "a" * 64
    assert api.post(page["api_list"], {"pool": "vm-pool"}, format="json").status_code == 403
    assert api.post(page["api_restore"], {"name": "x", "pool": "vm-pool"}, format="json").status_code == 403
    assert not Operation.objects.filter(kind__startswith="backup.").exists()


def test_a_vm_operator_backs_up_into_a_pool_that_holds_its_volumes_only(site):
    client = user_with("operator", domain=site["vm"])
    page = urls(site)
    detail = client.get(reverse("domains:detail", args=[site["vm"].pk])).content.decode()
    assert '<option value="vm-pool"' in detail and "backup-pool" not in detail.split('id="backup-now-form"')[1][:600]
    client.post(page["now"], {"pool": "backup-pool"})  # a pool it may not use: not offered, so refused
    assert not Operation.objects.filter(kind="backup.create").exists()
    response = client.post(page["now"], {"pool": "vm-pool"}, follow=True)
    operation = Operation.objects.get(kind="backup.create")
    assert response.redirect_chain[0][1] == 302
    assert f"{site['vm'].name}: operation #{operation.pk} (backup) queued." in response.content.decode()
    assert operation.target_id == site["vm"].pk and operation.arguments == {"pool": "vm-pool"}
    # One operation at a time on the VM: a second backup is refused while the first is pending.
    response = client.post(page["now"], {"pool": "vm-pool"}, follow=True)
    assert "busy" in response.content.decode()
    assert Operation.objects.filter(kind="backup.create").count() == 1
    api = token_client(client.user)
    assert api.post(page["api_list"], {"pool": "vm-pool"}, format="json").status_code == 409


def test_a_vm_operator_is_told_that_restoring_needs_a_host_operator(site):
    client = user_with("operator", domain=site["vm"])
    page = urls(site)
    response = client.get(page["restore"])
    assert response.status_code == 403
    detail = client.get(reverse("domains:detail", args=[site["vm"].pk])).content.decode()
    assert "that needs an operator&#x27;s right on the host" in detail
    api = token_client(client.user)
    refused = api.post(page["api_restore"], {"name": "copy", "pool": "vm-pool"}, format="json")
    assert refused.status_code == 403 and "operator's right on the host" in refused.json()["detail"]


def test_a_host_operator_restores_as_a_new_vm_with_a_free_name_into_a_file_pool(site):
    client = user_with("operator", host=site["host"])
    page = urls(site)
    form = client.get(page["restore"]).content.decode()
    assert "backup-pool" in form and "lvm-pool" not in form  # restored disks are qcow2 files
    assert client.post(page["restore"], {"name": "bk-other", "pool": "vm-pool"}).status_code == 400  # taken
    assert client.post(page["restore"], {"name": "a b", "pool": "vm-pool"}).status_code == 400
    assert client.post(page["restore"], {"name": "copy", "pool": "lvm-pool"}).status_code == 400
    assert client.post(page["restore"], {"name": "copy", "pool": "vm-pool"}).status_code == 302
    operation = Operation.objects.get(kind="backup.restore")
    assert operation.target_type == "restorepoint" and operation.target_id == site["point"].pk
    assert operation.arguments == {"name": "copy", "pool": "vm-pool"}
    api = token_client(client.user)
    assert api.post(page["api_restore"], {"name": "copy2", "pool": "vm-pool"}, format="json").status_code == 409
    # every pool of the host is a host operator's to back up into (file pools only)
    assert api.post(page["api_list"], {"pool": "lvm-pool"}, format="json").status_code == 400
    assert api.post(page["api_list"], {"pool": "backup-pool"}, format="json").status_code == 202


def test_a_backup_is_refused_while_the_vm_is_in_a_state_that_cannot_be_backed_up(site):
    Domain.objects.filter(pk=site["vm"].pk).update(state=DomainState.CRASHED)
    client = user_with("operator", host=site["host"])
    response = client.post(urls(site)["now"], {"pool": "backup-pool"}, follow=True)
    assert "a backup is taken of a running, paused or shut-off VM" in response.content.decode()
    assert not Operation.objects.filter(kind="backup.create").exists()


def test_who_may_health_check_a_point_on_the_pages_and_the_api(site):
    """A VM's operators may (it leaves nothing behind), while the point is on the VM's host; a point on
    another host needs an operator of that host; viewers get 403, others 404."""
    vm, point = site["vm"], site["point"]
    page = reverse("backups:health_check", args=[vm.pk, point.pk])
    api_url = reverse("api:vm_backup_health_check", args=[vm.pk, point.pk])
    assert user_with("operator", domain=site["other"]).post(page).status_code == 404
    viewer = user_with("viewer", domain=vm)
    assert viewer.post(page).status_code == 403
    assert token_client(viewer.user).post(api_url).status_code == 403
    operator = user_with("operator", domain=vm)
    assert 'data-action="health_check"' in operator.get(reverse("domains:detail", args=[vm.pk])).content.decode()
    assert operator.post(page).status_code == 302
    operation = Operation.objects.get(kind="backup.health_check")
    assert operation.target_type == "restorepoint" and operation.target_id == point.pk
    assert operation.arguments == {"timeout": 300}
    assert token_client(operator.user).post(api_url).status_code == 409  # one at a time per point
    busy = operator.post(page, follow=True).content.decode()
    assert "The backup 20261204-120000 is" in busy

    elsewhere = Host.objects.create(name="bk-elsewhere", transport="test", address="default")
    RestorePoint.objects.filter(pk=point.pk).update(host=elsewhere)  # the VM moved on after this backup
    Operation.objects.all().delete()
    refused = token_client(operator.user).post(api_url)
    assert refused.status_code == 403 and "boots a temporary VM on bk-elsewhere" in refused.json()["detail"]
    assert operator.post(page).status_code == 403
    host_operator = user_with("operator", host=elsewhere)
    Grant.objects.create(user=host_operator.user, role=Role.OPERATOR, domain=vm)
    assert token_client(host_operator.user).post(api_url).status_code == 202


def test_the_vm_page_shows_a_points_health(site):
    from datetime import timedelta

    from backups.services import restore_point_health_record

    restore_point_health_record(point=site["point"], passed=False, seconds=61.26,
                                note="The guest agent did not answer within 60 s of the start.")
    client = user_with("viewer", domain=site["vm"])
    page = client.get(reverse("domains:detail", args=[site["vm"].pk])).content.decode()
    assert "text-bg-danger" in page and "failed" in page and "did not answer within 60 s" in page
    assert 'data-action="health_check"' not in page  # a viewer sees the result, not the button
    listed = token_client(client.user).get(reverse("api:vm_backups", args=[site["vm"].pk])).json()["results"][0]
    assert listed["health"] == "failed" and listed["health_seconds"] == 61.3
    site["point"].refresh_from_db()
    assert timezone.now() - site["point"].health_checked_at < timedelta(minutes=1)
