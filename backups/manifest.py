"""The manifest written next to each restore point's files in its backup pool: everything the
catalogue keeps of the point, so that the catalogue can be rebuilt from the pool alone
(`catalogue_rebuild`). The files' names are made here too."""
from __future__ import annotations

import json
import uuid as uuid_module
from datetime import datetime

from django.db import transaction

from backups.models import RestorePoint, RestorePointCopy, RestorePointDisk
from hosts.models import Host
from virt.checksums import is_checksum, labelled

MANIFEST_FORMAT = "vmsite-restore-point"
MANIFEST_VERSION = 2  # 1: each disk's "sha256" (a hex SHA-256), read as the checksum "sha256:<hex>"
READABLE_VERSIONS = (1, 2)
MANIFEST_SUFFIX = ".manifest.json"
FILE_PREFIX = "vmsite-backup-"
DISK_FIELDS = ("target", "source", "volume", "path", "format", "capacity", "size", "checksum")


class ManifestInvalid(ValueError):
    pass


def point_stem(domain_uuid: str | uuid_module.UUID, point_name: str) -> str:
    return f"{FILE_PREFIX}{domain_uuid}-{point_name}"


def disk_file_name(domain_uuid: str | uuid_module.UUID, point_name: str, target: str) -> str:
    return f"{point_stem(domain_uuid, point_name)}-{target}.qcow2"


def manifest_name(domain_uuid: str | uuid_module.UUID, point_name: str) -> str:
    return point_stem(domain_uuid, point_name) + MANIFEST_SUFFIX


def manifest_of(point: RestorePoint, disks: list[RestorePointDisk]) -> bytes:
    document = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "vm": {"uuid": str(point.domain_uuid), "name": point.domain_name},
        "name": point.name, "kind": point.kind, "parent": point.parent.name if point.parent_id else None,
        "chain": str(point.chain), "checkpoint": point.checkpoint, "created_at": point.created_at.isoformat(),
        "consistency": point.consistency, "note": point.note, "seconds": point.seconds,
        "domain_xml": point.domain_xml,
        "disks": [{name: getattr(disk, name) for name in DISK_FIELDS} for disk in disks],
    }
    return json.dumps(document, indent=1, sort_keys=True).encode()


def parse_manifest(data: bytes) -> dict:
    try:
        document = json.loads(data.rstrip(b"\x00").decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise ManifestInvalid(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise ManifestInvalid("not a vmsite restore point manifest")
    if document.get("version") not in READABLE_VERSIONS:
        raise ManifestInvalid(f"manifest version {document.get('version')!r} is not one this vmsite reads")
    try:
        if document["version"] == 1:
            _upgrade_from_version_1(document)
        uuid_module.UUID(document["vm"]["uuid"])
        uuid_module.UUID(document["chain"])
        datetime.fromisoformat(document["created_at"])
        if document["kind"] not in RestorePoint.Kind.values or not document["disks"]:
            raise ManifestInvalid("no kind or no disks")
        for disk in document["disks"]:
            if set(disk) != set(DISK_FIELDS):
                raise ManifestInvalid(f"a disk with fields {sorted(disk)}")
            if not is_checksum(disk["checksum"]):
                raise ManifestInvalid(f"a disk whose checksum is {disk['checksum']!r}")
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestInvalid(f"incomplete manifest: {exc}") from None
    return document


def _upgrade_from_version_1(document: dict) -> None:
    """A version 1 manifest's disks, as version 2 has them: "sha256": HEX became "checksum": "sha256:HEX"."""
    for disk in document["disks"]:
        if isinstance(disk.get("sha256"), str):
            disk["checksum"] = labelled("sha256", disk.pop("sha256"))


@transaction.atomic
def catalogue_rebuild(*, host: Host, pool_name: str, manifests: dict[str, bytes]) -> tuple[list[RestorePoint], list[str]]:
    """Add to the catalogue the restore points whose manifests (name -> bytes, as read from the pool)
    it lacks, parents before children; a known point's manifest in another place (a second copy's
    pool) records a copy of it. Returns the points added, and a line per manifest skipped."""
    documents, skipped = [], []
    for name, data in sorted(manifests.items()):
        try:
            documents.append(parse_manifest(data))
        except ManifestInvalid as exc:
            skipped.append(f"{name}: {exc}")
    added = []
    for document in sorted(documents, key=lambda doc: doc["created_at"]):
        vm_uuid = document["vm"]["uuid"]
        known = RestorePoint.objects.filter(domain_uuid=vm_uuid, name=document["name"]).first()
        if known is not None:
            if (known.host_id, known.pool_name) != (host.pk, pool_name):  # a second copy of it (backups/copies.py)
                RestorePointCopy.objects.get_or_create(
                    point=known, host=host, pool_name=pool_name,
                    defaults={"manifest": manifest_name(vm_uuid, document["name"]),
                              "checksums": {disk["target"]: disk["checksum"] for disk in document["disks"]}})
            continue
        parent = None
        if document["parent"]:
            parent = RestorePoint.objects.filter(domain_uuid=vm_uuid, name=document["parent"]).first()
            if parent is None:
                skipped.append(f"{document['name']} of {document['vm']['name']}: its parent {document['parent']} "
                               "has no manifest, so the chain is broken")
                continue
        point = RestorePoint.objects.create(
            host=host, domain_uuid=vm_uuid, domain_name=document["vm"]["name"], name=document["name"],
            kind=document["kind"], parent=parent, chain=document["chain"], checkpoint=document["checkpoint"],
            pool_name=pool_name, manifest=manifest_name(vm_uuid, document["name"]),
            consistency=document["consistency"], note=document["note"], seconds=document["seconds"],
            domain_xml=document["domain_xml"], definition_from_manifest=True, created_at=datetime.fromisoformat(document["created_at"]))
        RestorePointDisk.objects.bulk_create(RestorePointDisk(point=point, **disk) for disk in document["disks"])
        added.append(point)
    return added, skipped
