"""The migration that makes restore points' checksums name their algorithm: the points recorded
before it were hashed with SHA-256, and keep being checked with it."""
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from backups.models import RestorePointCopy, RestorePointDisk

BACKUPS_BEFORE = ("backups", "0006_job_retention_tags_health_check")


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def _before():
    """Every app as it is now, but backups before the migration."""
    return [node for node in _latest() if node[0] != "backups"] + [BACKUPS_BEFORE]


@pytest.mark.django_db(transaction=True)
def test_the_checksums_recorded_before_are_labelled_sha256_and_go_back_only_while_no_point_is_blake3():
    old = _migrate(_before())
    host = old.get_model("hosts", "Host").objects.create(name="h", transport="tcp", address="127.0.0.1")
    point = old.get_model("backups", "RestorePoint").objects.create(
        host=host, domain_uuid=uuid.uuid4(), domain_name="vm", name="20261204-120000", kind="full", chain=uuid.uuid4(),
        pool_name="backups", manifest="m.manifest.json", consistency="crash-consistent", domain_xml="<domain/>")
    old.get_model("backups", "RestorePointDisk").objects.create(
        point=point, target="vda", source="/a", volume="f.qcow2", path="/b/f.qcow2", format="qcow2", capacity=1, size=1,
        sha256="a" * 64)
    old.get_model("backups", "RestorePointCopy").objects.create(
        point=point, host=host, pool_name="copies", manifest="m.manifest.json", sha256s={"vda": "b" * 64})

    _migrate(_latest())
    assert RestorePointDisk.objects.get().checksum == "sha256:" + "a" * 64
    assert RestorePointCopy.objects.get().checksums == {"vda": "sha256:" + "b" * 64}

    old = _migrate(_before())  # only SHA-256 checksums: they go back as they were
    assert old.get_model("backups", "RestorePointDisk").objects.get().sha256 == "a" * 64
    assert old.get_model("backups", "RestorePointCopy").objects.get().sha256s == {"vda": "b" * 64}

    _migrate(_latest())
    RestorePointDisk.objects.update(checksum="blake3:" + "c" * 64)
    with pytest.raises(RuntimeError, match="BLAKE3"):
        _migrate(_before())
    assert RestorePointDisk.objects.get().checksum == "blake3:" + "c" * 64
