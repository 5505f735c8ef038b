"""Second copies of restore points (issue 18): a backup job may name a pool on another host; after each
of its runs' points is saved, `backup.copy` (backups/handlers_copies.py) copies the point's files and a
manifest there through storage streams. The catalogue records each copy (RestorePointCopy); a restore
reads from the point's own pool or from a copy (`RestoreSource`); pruning a point deletes its copies'
files too; rebuilding the catalogue from a copy pool's manifests records copies of known points
(backups/manifest.py)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from backups.manifest import manifest_of
from backups.models import RestorePoint, RestorePointCopy, RestorePointDisk
from hosts.connection import connect_uri, host_session
from hosts.models import Host
from operations.models import Operation
from operations.services import OperationBusy, operation_enqueue
from virt import backup as virt_backup
from virt.backup import ChainFile
from virt.errors import OperationInvalid, VirtError

COPY_OF = "copy_of"  # the key a copy's manifest names the original's host and pool under


def copy_enqueue(*, point: RestorePoint, host: Host, pool_name: str, user: AbstractBaseUser | None) -> Operation:
    """Queue the copy of the point (and of any point it rests on that lacks one there) into pool_name of host."""
    return operation_enqueue(kind="backup.copy", target=point, host=host, user=user,
                             arguments={"host": host.pk, "pool": pool_name}, exclusive=True,
                             label=f"{point}: copy to {pool_name} on {host}")


def copy_after_backup(operation: Operation, point: RestorePoint) -> str:
    """After a job's backup saved its point: its copy queued, when the job names a copy pool; in words."""
    host_id, pool_name = operation.arguments.get("copy_host"), operation.arguments.get("copy_pool")
    host = Host.objects.filter(pk=host_id).first() if host_id else None
    if host is None or not pool_name:
        return ""
    try:
        queued = copy_enqueue(point=point, host=host, pool_name=pool_name, user=operation.user)
    except OperationBusy as exc:
        return f" Its copy to {pool_name} on {host} was not queued: {exc}."
    return f" Its copy to {pool_name} on {host} is operation #{queued.pk}."


def copy_manifest(point: RestorePoint, disks: list[RestorePointDisk], copied: dict[str, tuple[str, str]]) -> bytes:
    """The manifest a copy pool holds for a point: the point's, with each disk's path and checksum as
    copied (copied: target -> (path, checksum)) and where the original is."""
    document = json.loads(manifest_of(point, disks))
    for disk in document["disks"]:
        disk["path"], disk["checksum"] = copied[disk["target"]]
    document[COPY_OF] = {"host": point.host.name, "pool": point.pool_name}
    return json.dumps(document, indent=1, sort_keys=True).encode()


def copies_delete(point: RestorePoint) -> list[str]:
    """Before a pruned point's row goes: its copies' files and manifests, on their hosts. A host that
    cannot be reached keeps its files (said in the list returned); the rows go with the point."""
    failures = []
    for copy in point.copies.select_related("host"):
        files = [copy.manifest] + [disk.volume for disk in point.disks.all()]
        try:
            with host_session(copy.host) as conn:
                virt_backup.delete_files(conn, copy.pool_name, files)
        except VirtError as exc:
            failures.append(f"the copy of {point.name} on {copy.host} stays ({exc})")
    return failures


@dataclass(frozen=True)
class RestoreSource:
    """Where a restore reads a point's chains from: its own pool, or a copy's."""

    host: Host
    pool_name: str
    chains: dict[str, list[ChainFile]]  # disk target -> its files, oldest first, with their checksums there
    label: str

    @property
    def uri(self) -> str:
        return connect_uri(self.host)

    def tops(self) -> dict[str, str]:
        return {target: chain[-1].volume for target, chain in self.chains.items()}


def original_chains(point: RestorePoint) -> dict[str, list[ChainFile]]:
    """Each disk's chain of files where the point was taken, oldest first, as the catalogue has them."""
    return _chains(point, point.lineage(), lambda link, link_disk: link_disk.checksum)


def _chains(point: RestorePoint, lineage: list[RestorePoint],
            checksum: Callable[[RestorePoint, RestorePointDisk], str]) -> dict[str, list[ChainFile]]:
    """disk target -> its files along the lineage, oldest first; checksum(link, its disk) says what
    each file must hash to where it is read."""
    return {disk.target: [ChainFile(volume=link_disk.volume, format=link_disk.format,
                                    checksum=checksum(link, link_disk))
                          for link in lineage for link_disk in link.disks.filter(target=disk.target)]
            for disk in point.disks.all()}


def restore_source(point: RestorePoint, copy_id: int | None = None) -> RestoreSource:
    """The point's chains where it was taken (copy_id None) or in one of its copies (every point of
    its lineage must have a copy in that pool: a copy job copies missing parents first)."""
    if copy_id is None:
        return RestoreSource(host=point.host, pool_name=point.pool_name, chains=original_chains(point),
                             label=f"{point.pool_name} on {point.host}")
    lineage = point.lineage()
    copy = point.copies.select_related("host").get(pk=copy_id)
    copies = {link.pk: RestorePointCopy.objects.filter(point=link, host=copy.host, pool_name=copy.pool_name).first()
              for link in lineage}
    absent = [link.name for link in lineage if copies[link.pk] is None]
    if absent:
        raise OperationInvalid(f"The copy in {copy.pool_name} on {copy.host} lacks the point(s) "
                               f"{', '.join(absent)} it rests on: restore from the original instead.")
    chains = _chains(point, lineage, lambda link, link_disk: copies[link.pk].checksums[link_disk.target])
    return RestoreSource(host=copy.host, pool_name=copy.pool_name, chains=chains,
                         label=f"the copy in {copy.pool_name} on {copy.host}")
