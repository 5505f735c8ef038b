"""What a restore checks beyond the catalogue's checksums: the VM definition a restore point keeps
holds the console password (the restored VM keeps it; pages and the API never show it), and a
definition read back from a manifest file must pass the allowlist for hand-edited XML before a
restore defines anything from it.

The guest is the small one with a small qcow2 disk; operations run in this process as a worker
runs them (operations.tasks.run_operation)."""
from __future__ import annotations

import json
import uuid

import libvirt
import pytest
from django.urls import reverse

from backups.manifest import MANIFEST_SUFFIX, catalogue_rebuild
from backups.models import RestorePoint
from backups.services import backup_enqueue, restore_enqueue
from domains.models import Domain
from inventory.reconcile import host_reconcile
from operations.choices import OperationState
from operations.tasks import run_operation
from storage.models import StoragePool
from tests.backups.test_interrupted import wait_for
from tests.guests import TEST_GUEST_PREFIX, ScratchPool
from virt import backup as virt_backup
from virt.storage import pool_volume_create
from virt.xml.domain import Domain as DomainXML

LOCAL = "qemu:///system"
PASSWORD = "s3cr3tvn"  # VNC allows 8 characters
pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def guest(guests, scratch_pool):
    """The small guest with a 16 MiB qcow2 disk and a VNC password, running."""
    disk = pool_volume_create(scratch_pool.pool, name="disk.qcow2", capacity=16 * 2**20, allocation=None, fmt="qcow2")
    domain = guests.define(LOCAL, disk_path=disk.path())
    xml = DomainXML.from_libvirt(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
    xml.graphics[0].set_password(PASSWORD)
    libvirt.open(LOCAL).defineXML(xml.to_xml())
    domain.create()
    yield domain
    for checkpoint in domain.listAllCheckpoints(0):
        checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)


def run_until_finished(operation) -> None:
    """Run it here; a suite's Celery worker started by an earlier test of this process may claim it
    first (then this run is a no-op), so wait for it to finish whoever runs it."""
    run_operation(operation.pk)
    wait_for(operation, lambda op: op.is_finished, f"operation {operation.pk} to finish")


def backed_up(local_host, domain: libvirt.virDomain, pool: ScratchPool) -> RestorePoint:
    host_reconcile(host=local_host)
    row = Domain.objects.select_related("host").get(host=local_host, uuid=domain.UUIDString())
    operation = backup_enqueue(domain=row, user=None, pool=StoragePool.objects.get(host=local_host, name=pool.name))
    run_until_finished(operation)
    assert operation.state == OperationState.SUCCEEDED, operation.error
    return RestorePoint.objects.get(domain_uuid=row.uuid)


def restored(local_host, point: RestorePoint, pool: ScratchPool, guests) -> tuple[str, str]:
    """Restore the point as a new VM into pool; (the operation's state, its error)."""
    name = f"{TEST_GUEST_PREFIX}restored-{uuid.uuid4().hex[:6]}"
    guests.created.append((LOCAL, name))
    operation = restore_enqueue(point=point, user=None, name=name,
                                pool=StoragePool.objects.get(host=local_host, name=pool.name))
    run_until_finished(operation)
    return operation.state, operation.error, name


def test_the_console_password_is_kept_for_the_restored_vm_and_shown_nowhere(local_host, guest, backup_pool,
                                                                            scratch_pool, guests, admin_client):
    point = backed_up(local_host, guest, backup_pool)
    assert f"passwd='{PASSWORD}'" in point.domain_xml or f'passwd="{PASSWORD}"' in point.domain_xml
    state, error, name = restored(local_host, point, scratch_pool, guests)
    assert state == OperationState.SUCCEEDED, error
    copy = libvirt.open(LOCAL).lookupByName(name)
    assert DomainXML.from_libvirt(copy.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE)).graphics[0].element.get(
        "passwd") == PASSWORD
    domain = Domain.objects.get(host=local_host, uuid=guest.UUIDString())
    for url in (reverse("domains:detail", args=[domain.pk]), reverse("backups:restore", args=[domain.pk, point.pk]),
                f"/api/v1/vms/{domain.pk}/backups/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert PASSWORD not in response.content.decode(), url
        assert "domain_xml" not in response.content.decode(), url


HOST_FILE = "<disk type='file' device='cdrom'><source file='/etc/shadow'/><target dev='hdc' bus='ide'/><readonly/></disk>"
PASSTHROUGH = ("<hostdev mode='subsystem' type='pci' managed='yes'><source>"
               "<address domain='0x0000' bus='0x00' slot='0x1f' function='0x0'/></source></hostdev>")


@pytest.mark.parametrize("device, refusal", [(HOST_FILE, "/etc/shadow"), (PASSTHROUGH, "hostdev")],
                         ids=["host-file", "passthrough"])
def test_a_manifest_whose_definition_breaks_the_rules_is_not_restored(local_host, guest, backup_pool, scratch_pool,
                                                                     guests, device, refusal):
    point = backed_up(local_host, guest, backup_pool)
    conn = libvirt.open(LOCAL)
    # Someone who can write into the pool rewrites the manifest: the VM now reads a host file, or
    # takes a host's PCI device. The catalogue is lost and rebuilt from the pool's manifests.
    document = json.loads(virt_backup.read_files(conn, backup_pool.name, suffix=MANIFEST_SUFFIX)[point.manifest]
                          .rstrip(b"\x00"))
    document["domain_xml"] = document["domain_xml"].replace("</devices>", f"{device}</devices>")
    virt_backup.delete_files(conn, backup_pool.name, [point.manifest])
    virt_backup.write_file(conn, backup_pool.name, point.manifest, json.dumps(document).encode())
    point.delete()
    added, skipped = catalogue_rebuild(host=local_host, pool_name=backup_pool.name,
                                       manifests=virt_backup.read_files(conn, backup_pool.name, suffix=MANIFEST_SUFFIX))
    assert skipped == [] and [p.definition_from_manifest for p in added] == [True]

    state, error, name = restored(local_host, added[0], scratch_pool, guests)
    assert state == OperationState.FAILED
    assert error.startswith("Refused, nothing was restored") and refusal in error, error
    assert name not in conn.listDefinedDomains()
    scratch_pool.pool.refresh(0)
    assert scratch_pool.pool.listVolumes() == ["disk.qcow2"]  # no copy was made


def test_a_manifest_with_an_allowed_definition_restores(local_host, guest, backup_pool, scratch_pool, guests):
    point = backed_up(local_host, guest, backup_pool)
    conn = libvirt.open(LOCAL)
    point.delete()
    [again], _ = catalogue_rebuild(host=local_host, pool_name=backup_pool.name,
                                   manifests=virt_backup.read_files(conn, backup_pool.name, suffix=MANIFEST_SUFFIX))
    state, error, name = restored(local_host, again, scratch_pool, guests)
    assert state == OperationState.SUCCEEDED, error
    assert conn.lookupByName(name).UUIDString() != guest.UUIDString()
