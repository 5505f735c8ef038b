"""The migrate form and what it tells (issue 16, bugs 5 and 6), for the smallest grants: a VM's own
operator sees its blockers without learning anything of the hosts' other contents; a VM viewer and
a viewer's token may not migrate; a kept source copy names its VM only to those who may see it."""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from operations.models import Operation
from storage.models import StoragePool, Volume, VolumeRecord
from tests.api.conftest import token_client

pytestmark = [pytest.mark.django_db]
SECRET = "secret-"
DISK = "/var/lib/libvirt/images/web.qcow2"


def user_client(name: str, **grant) -> tuple[Client, object]:
    user = get_user_model().objects.create_user(name, password="x")
    Grant.objects.create(user=user, **grant)
    client = Client()
    client.force_login(user)
    return client, user


@pytest.fixture
def world():
    now = timezone.now()
    source = Host.objects.create(name="src-r", transport="tcp", address="127.0.0.234", status="online")
    destination = Host.objects.create(name="dst-r", transport="tcp", address="127.0.0.235", status="online")
    StoragePool.objects.create(host=source, uuid=uuid.uuid4(), name=f"{SECRET}pool", pool_type="dir",
                               target_path="/var/lib/libvirt/images", active=True, synced_at=now)
    vm = Domain.objects.create(host=source, uuid=uuid.uuid4(), name="web-r", state=DomainState.RUNNING,
                               synced_at=now, snapshots=[{"name": "snap-1", "depth": 0}],
                               details={"disks": [{"device": "disk", "source": DISK, "target": "vda"}]})
    Domain.objects.create(host=source, uuid=uuid.uuid4(), name=f"{SECRET}neighbour", synced_at=now)
    return {"source": source, "destination": destination, "vm": vm}


@pytest.mark.integration  # the token check reads its lockout from Redis
def test_a_vm_operator_is_told_its_vms_blockers_and_nothing_else(world):
    client, user = user_client("vm-operator-r", domain=world["vm"], role=Role.OPERATOR)
    Grant.objects.create(user=user, host=world["destination"], role=Role.OPERATOR)
    response = client.post(reverse("domains:migrate", args=[world["vm"].pk]),
                           {"destination": world["destination"].pk, "live": "on", "persist_destination": "on"})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "web-r has 1 snapshot (snap-1)" in errors["move_snapshots"][0]
    assert "dst-r must see it at the same path" in errors["copy_storage"][0]
    assert SECRET not in response.content.decode()
    api = token_client(user).post(f"/api/v1/vms/{world['vm'].pk}/migrate/",
                                  {"destination": world["destination"].pk, "live": True, "persist_destination": True},
                                  format="json")
    assert api.status_code == 400 and "snap-1" in api.content.decode() and SECRET not in api.content.decode()
    assert not Operation.objects.exists()


@pytest.mark.integration  # the token check reads its lockout from Redis
@pytest.mark.parametrize("grant", ["vm_viewer", "host_viewer"])
def test_a_viewer_may_not_migrate(world, grant):
    target = {"domain": world["vm"]} if grant == "vm_viewer" else {"host": world["source"]}
    client, user = user_client(f"{grant}-r", role=Role.VIEWER, **target)
    url = reverse("domains:migrate", args=[world["vm"].pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"destination": world["destination"].pk, "move_snapshots": "on"}).status_code == 403
    api = token_client(user).post(f"/api/v1/vms/{world['vm'].pk}/migrate/",
                                  {"destination": world["destination"].pk}, format="json")
    assert api.status_code == 403
    assert not Operation.objects.exists()


def test_a_kept_source_copy_names_its_vm_only_to_those_who_may_see_it(world):
    # The VM moved to dst-r with copy-storage; its copy stayed on src-r, recorded as its own.
    Domain.objects.filter(pk=world["vm"].pk).update(host=world["destination"], name=f"{SECRET}moved")
    pool = StoragePool.objects.get(host=world["source"])
    record = VolumeRecord.objects.create(host=world["source"], key=DISK, format="qcow2", owner_uuid=world["vm"].uuid)
    Volume.objects.create(host=world["source"], pool=pool, name="web.qcow2", key=DISK, path=DISK, format="qcow2",
                          record=record, synced_at=timezone.now())
    viewer, _ = user_client("source-viewer-r", host=world["source"], role=Role.VIEWER)
    page = viewer.get(reverse("storage:pool", args=[pool.pk])).content.decode()
    assert "Source copy kept when its VM moved to another host" in page
    assert f"{SECRET}moved" not in page and reverse("domains:detail", args=[world["vm"].pk]) not in page
    both, user = user_client("both-r", host=world["source"], role=Role.VIEWER)
    Grant.objects.create(user=user, domain=world["vm"], role=Role.VIEWER)
    page = both.get(reverse("storage:pool", args=[pool.pk])).content.decode()
    assert f"{SECRET}moved</a> moved to dst-r" in page
