"""Quick checks (no daemon but qemu-img) of restoring anywhere and second copies: the qcow2 backing name
a copy gets; the networks a restore on another host needs; the forms' refusals (restore on another
host, in place, attach, a job's copy pool); and who may restore where (accounts.access): a VM's
operator restores on a host they operate, not on one they do not, and in place on their VM."""
from __future__ import annotations

import subprocess
import uuid

import libvirt
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from backups.forms import BackupJobForm, RestoreForm
from backups.forms_restores import AttachDiskForm, RestoreInPlaceForm
from backups.models import RestorePoint, RestorePointCopy, RestorePointDisk
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from networking.models import VirtualNetwork
from operations.models import Operation
from storage.models import StoragePool
from tests.api.conftest import token_client
from virt.backup_copies import definition_networks, missing_networks, with_backing_name
from virt.errors import OperationInvalid
from virt.images import references

DEFINITION = ("<domain type='qemu'><name>web</name><memory>65536</memory><os><type>hvm</type></os><devices>"
              "<interface type='network'><source network='lan'/></interface>"
              "<interface type='bridge'><source bridge='br-dmz'/></interface>"
              "<interface type='user'/></devices></domain>")


# ---------------------------------------------------------------------------------------------
# virt: no database


def _overlay(tmp_path, backing_name: str) -> bytes:
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(base), "1M"], check=True, capture_output=True)
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", backing_name, str(top)], check=True,
                   capture_output=True)
    return top.read_bytes()


def test_it_names_a_new_backing_file_in_a_qcow2_header_and_keeps_the_rest(tmp_path):
    image = _overlay(tmp_path, str(tmp_path / "base.qcow2"))
    for name in ("/var/lib/libvirt/images/copies/vmsite-backup-x-vda.qcow2", "/b"):  # longer, then shorter
        changed = with_backing_name(image, name)
        assert len(changed) == len(image)
        assert [ref.name for ref in references(changed, "qcow2") if ref.kind == "backing file"] == [name]
        (tmp_path / "changed.qcow2").write_bytes(changed)
        info = subprocess.run(["qemu-img", "info", "-U", "-f", "qcow2", "--output=json", str(tmp_path / "changed.qcow2")],
                              check=True, capture_output=True, text=True).stdout
        assert f'"backing-filename": "{name}"' in info


def test_it_refuses_a_backing_name_for_what_is_not_an_overlay(tmp_path):
    with pytest.raises(OperationInvalid, match="not a qcow2 image"):
        with_backing_name(b"\0" * 65536, "/x")
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(tmp_path / "flat.qcow2"), "1M"], check=True,
                   capture_output=True)
    with pytest.raises(OperationInvalid, match="names no backing file"):
        with_backing_name((tmp_path / "flat.qcow2").read_bytes(), "/x")
    with pytest.raises(OperationInvalid, match="does not fit"):
        with_backing_name(_overlay(tmp_path, str(tmp_path / "base.qcow2")), "/" + "x" * 70000)


def test_it_lists_the_networks_and_bridges_a_restored_vm_needs():
    assert definition_networks(DEFINITION) == [("network", "lan"), ("bridge", "br-dmz")]
    conn = libvirt.open("test:///default")  # its one network: default, on bridge virbr0
    assert missing_networks(conn, DEFINITION) == ["network lan", "bridge br-dmz"]
    fitting = DEFINITION.replace("'lan'", "'default'").replace("'br-dmz'", "'virbr0'")
    assert missing_networks(conn, fitting) == []


# ---------------------------------------------------------------------------------------------
# forms and rights: the database, no daemon


@pytest.fixture
def site(db):
    now = timezone.now()
    home = Host.objects.create(name="home", transport="test", address="default")
    away = Host.objects.create(name="away", transport="test", address="default")
    vm = Domain.objects.create(host=home, uuid=uuid.uuid4(), name="web", state=DomainState.RUNNING, synced_at=now)
    for host, name in ((home, "images"), (home, "backups"), (away, "restores"), (away, "copies")):
        StoragePool.objects.create(host=host, uuid=uuid.uuid4(), name=name, pool_type="dir", active=True,
                                   synced_at=now)
    VirtualNetwork.objects.create(host=away, uuid=uuid.uuid4(), name="default", bridge="virbr0", synced_at=now)
    point = RestorePoint.objects.create(
        host=home, domain_uuid=vm.uuid, domain_name=vm.name, name="20261204-120000", kind="full", chain=uuid.uuid4(),
        pool_name="backups", manifest="m.manifest.json", consistency="crash-consistent", domain_xml=DEFINITION)
    RestorePointDisk.objects.create(point=point, target="vda", source="/images/web.qcow2", volume="f.qcow2",
                                    path="/backups/f.qcow2", format="qcow2", capacity=2**30, size=2**20,
                                    checksum="blake3:" + "a" * 64)
    copy = RestorePointCopy.objects.create(point=point, host=away, pool_name="copies", manifest="m.manifest.json",
                                           checksums={"vda": "blake3:" + "b" * 64})
    admin = get_user_model().objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", password="x")
    return {"home": home, "away": away, "vm": vm, "point": point, "copy": copy, "admin": admin}


def _errors(form) -> str:
    assert not form.is_valid()
    return " ".join(error for errors in form.errors.values() for error in errors)


def test_a_restore_on_another_host_needs_its_pool_and_networks_there(site):
    point, away, admin = site["point"], site["away"], site["admin"]
    form = RestoreForm({"name": "web2", "host": away.pk, "pool": "images"}, point=point, user=admin)
    assert "away has no active dir, fs or netfs pool named 'images'" in _errors(form)
    form = RestoreForm({"name": "web2", "host": away.pk, "pool": "restores"}, point=point, user=admin)
    assert "away has no network lan, bridge br-dmz, which the VM's network cards use" in _errors(form)
    form = RestoreForm({"name": "web2", "host": away.pk, "pool": "restores", "network": "dmz"}, point=point, user=admin)
    assert "away has no network named 'dmz' (its networks: default)" in _errors(form)
    form = RestoreForm({"name": "web2", "host": away.pk, "pool": "restores", "network": "default",
                        "source": str(site["copy"].pk)}, point=point, user=admin)
    assert form.is_valid(), form.errors
    assert form.elsewhere and form.cleaned_data["source"] == site["copy"]
    form = RestoreForm({"name": "web2", "pool": "images", "network": "default"}, point=point, user=admin)
    assert "A network is chosen only for a restore on another host." in _errors(form)
    form = RestoreForm({"name": "web2", "pool": "images"}, point=point, user=admin)
    assert form.is_valid() and not form.elsewhere and form.cleaned_data["host"] == site["home"]


def test_in_place_and_attach_are_refused_in_the_wrong_state_or_unconfirmed(site):
    vm, point = site["vm"], site["point"]
    assert "shut it off first" in _errors(RestoreInPlaceForm({"confirm": "on"}, point=point, domain=vm))
    vm.state = DomainState.SHUTOFF
    assert "what they hold now is lost" in _errors(RestoreInPlaceForm({}, point=point, domain=vm))
    assert RestoreInPlaceForm({"confirm": "on"}, point=point, domain=vm).is_valid()
    form = AttachDiskForm({"disk": "vda", "pool": "images"}, point=point, domain=vm, user=site["admin"])
    assert "attached to a running VM" in _errors(form)
    vm.state = DomainState.RUNNING
    form = AttachDiskForm({"disk": "vdz", "pool": "images"}, point=point, domain=vm, user=site["admin"])
    assert "vdz" in _errors(form)


def test_a_jobs_second_copy_goes_to_a_pool_of_another_host(site):
    home, away, admin = site["home"], site["away"], site["admin"]
    job = {"name": "nightly", "host": home.pk, "selection": "host", "pool_name": "backups", "schedule": "0 3 * * *",
           "full_every": 7, "keep_last": 7, "enabled": "on"}
    assert "a copy on the same host is lost with it" in _errors(
        BackupJobForm({**job, "copy_host": home.pk, "copy_pool_name": "images"}, user=admin))
    assert "Give the pool of away" in _errors(BackupJobForm({**job, "copy_host": away.pk}, user=admin))
    assert "away has no active dir, fs or netfs pool named 'images' (its backup pools: copies, restores)" in _errors(
        BackupJobForm({**job, "copy_host": away.pk, "copy_pool_name": "images"}, user=admin))
    assert "Choose the host the second copy goes to" in _errors(
        BackupJobForm({**job, "copy_pool_name": "copies"}, user=admin))
    assert BackupJobForm({**job, "copy_host": away.pk, "copy_pool_name": "copies"}, user=admin).is_valid()


def test_a_vm_operator_with_no_pool_of_theirs_sees_why_no_disk_can_be_attached(site):
    """Found in a walk: the button was enabled with an empty pool list, and only its refusal said why."""
    vm, point = site["vm"], site["point"]
    client = _operator(domain=vm)
    panel = client.get(reverse("domains:detail", args=[vm.pk])).content.decode()
    reason = "There is no file pool of home you may make web&#x27;s volumes in: ask a host operator."
    assert f'data-action="attach_disk" disabled title="{reason}"' in panel
    form = AttachDiskForm({"disk": "vda", "pool": "images"}, point=point, domain=vm, user=client.user)
    assert "There is no file pool of home you may make web's volumes in" in _errors(form)


def _operator(**grants) -> Client:
    user = get_user_model().objects.create_user(f"op-{uuid.uuid4().hex[:6]}", password="x")
    for field, target in grants.items():
        Grant.objects.create(user=user, role=Role.OPERATOR, **{field: target})
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def no_failures_left(login_failures_cleared):
    """API tokens count failed logins in Redis."""


def test_a_vm_operator_restores_on_a_host_they_operate_and_in_place_on_their_vm(site, no_failures_left):
    vm, point, away = site["vm"], site["point"], site["away"]
    client = _operator(domain=vm, host=away)  # the VM's operator, and an operator of another host only
    restore = reverse("backups:restore", args=[vm.pk, point.pk])
    page = client.get(restore).content.decode()
    assert 'label="away"' in page and 'label="home"' not in page  # only pools of hosts they operate
    refused = client.post(restore, {"name": "web2", "host": site["home"].pk, "pool": "images"})
    assert refused.status_code == 400 and "Select a valid choice" in refused.content.decode()
    answer = client.post(restore, {"name": "web2", "host": away.pk, "pool": "restores", "network": "default"})
    assert answer.status_code == 302
    operation = Operation.objects.get(kind="backup.restore_elsewhere")
    assert operation.arguments == {"name": "web2", "host": away.pk, "pool": "restores", "copy": None,
                                   "network": "default"}
    assert operation.host_id == away.pk
    # In place and attach: the VM's operator, by the API too (the VM is running: in place is refused).
    api = token_client(client.user)
    in_place = reverse("api:vm_backup_restore_in_place", args=[vm.pk, point.pk])
    refused = api.post(in_place, {"confirm": True}, format="json")
    assert refused.status_code == 400 and "shut it off first" in str(refused.json())
    Domain.objects.filter(pk=vm.pk).update(state=DomainState.SHUTOFF)
    assert api.post(in_place, {"confirm": True, "source": site["copy"].pk}, format="json").status_code == 202
    assert Operation.objects.get(kind="backup.restore_in_place").arguments == {"point": point.pk,
                                                                              "copy": site["copy"].pk}
    # The same on the pages: unconfirmed, refused with the reason; a disk is attached only while it runs.
    page_in_place = reverse("backups:restore_in_place", args=[vm.pk, point.pk])
    Operation.objects.filter(kind="backup.restore_in_place").delete()
    said = client.post(page_in_place, {}, follow=True).content.decode()
    assert "what they hold now is lost" in said and not Operation.objects.filter(kind="backup.restore_in_place")
    said = client.post(reverse("backups:attach_disk", args=[vm.pk, point.pk]), {"disk": "vda", "pool": "images"},
                       follow=True).content.decode()
    assert "attached to a running VM" in said and not Operation.objects.filter(kind="backup.attach_disk")
    response = client.post(page_in_place, {"confirm": "on"}, follow=True)
    assert response.redirect_chain[0][1] == 302
    operation = Operation.objects.get(kind="backup.restore_in_place")
    assert f"{vm.name}: operation #{operation.pk} (backup.restore_in_place) queued." in response.content.decode()
    panel = client.get(reverse("domains:detail", args=[vm.pk])).content.decode()
    assert "copy: copies on away" in panel and 'data-action="restore_in_place"' in panel
    assert 'data-action="attach_disk" disabled title="web is shut off: a backup' in panel
    viewer = get_user_model().objects.create_user(f"viewer-{uuid.uuid4().hex[:6]}", password="x")
    Grant.objects.create(user=viewer, role=Role.VIEWER, domain=vm)
    assert token_client(viewer).post(in_place, {"confirm": True}, format="json").status_code == 403
