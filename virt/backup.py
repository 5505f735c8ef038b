"""Backups of a VM's disks into a storage pool of its own host, and restores from them.

A running VM is backed up in push mode (`virDomainBackupBegin`): libvirt's QEMU copies each disk
into a file vmsite made beforehand in the backup pool. A full backup starts a checkpoint chain;
an incremental one copies only the blocks that the previous checkpoint's persistent qcow2 dirty
bitmap recorded, into a qcow2 file whose backing file is the previous restore point's, so that
each file read through its chain is the whole disk as it was. A shut-off VM's volumes are copied
whole by libvirt (`createXMLFrom`). A restore copies the top of a chain into a new volume
(`createXMLFrom` reads through the backing chain: the copy is flat) and defines a new VM.

Every file goes through libvirt's storage API, so the host may be remote. vmsite's checkpoints are
named CHECKPOINT_PREFIX + the restore point's name; others' checkpoints are left alone.
"""
from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import libvirt

from virt.checksums import volume_checksum, volume_matches
from virt.clone import make_distinct
from virt.domains import find_disk_volume, is_running
from virt.devices import other_domain_descriptions, pool_paths
from virt.errors import (AlreadyExists, InvalidArgument, NotFound, OperationInvalid, VirtError, lookup_or_none,
                         raises_typed, tolerating, translated)
from virt.images import read_header, references
from virt.storage import QCOW2_COMPAT, pool_volume_create
from virt.volumes import flush_to_disk, require_free_domain_name, upload_bytes
from virt.xml.backup import BackupXML, CheckpointXML
from virt.xml.base import parse_trusted
from virt.xml.domain import Disk
from virt.xml.domain import Domain as DomainXML
from virt.xml.policy import HostContext, PolicyViolation, require_allowed, volume_paths
from virt.xml.storage import PoolXML, VolumeXML

Progress = Callable[[int, str], None]
Cancelled = Callable[[], bool]

CHECKPOINT_PREFIX = "vmsite-"
AGENT_CHANNEL = "org.qemu.guest_agent.0"
BACKUP_FORMAT = "qcow2"  # backing files and dirty bitmaps need it
_JOB_POLL = 0.05  # seconds between two looks at a backup job's end
_BUILD_WAIT = 3600  # seconds a clean-up waits for libvirt to finish a copy a killed worker had asked for


class BackupCancelled(OperationInvalid):
    """The backup was stopped on request; its partial files are removed."""


@dataclass(frozen=True)
class SourceDisk:
    """A writable disk of the VM as it is now: what a backup copies."""

    target: str
    source: str  # a path, or pool/volume
    format: str
    capacity: int
    qcow2_version: str | None = None  # its volume's compat (0.10, 1.1); None when not a pool volume


@dataclass(frozen=True)
class WrittenDisk:
    """One disk's file of a restore point, in the backup pool."""

    target: str
    source: str
    volume: str  # its name in the backup pool
    path: str
    key: str
    format: str
    capacity: int  # the disk's size as the guest sees it
    size: int  # the file's size on the host
    checksum: str  # "<algorithm>:<hex>" (virt/checksums.py)


@dataclass(frozen=True)
class ChainLink:
    """The restore point an incremental backup continues from."""

    checkpoint: str
    volumes: dict[str, str]  # disk target -> its file's volume name in the backup pool
    sources: dict[str, str]  # disk target -> the disk's source when that point was taken
    paths: dict[str, str] = field(default_factory=dict)  # disk target -> its file's path, as written


@dataclass(frozen=True)
class BackupOutcome:
    kind: str  # "full" or "incremental"
    checkpoint: str  # "" when none was made (a shut-off VM's copy, disks that cannot hold bitmaps)
    consistency: str  # in words: frozen by the guest agent, crash-consistent, or shut off
    disks: list[WrittenDisk]
    seconds: float
    domain_xml: str  # the VM's definition, to define a restored copy from
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# What to back up, and whether a chain can go on


@raises_typed
def source_disks(domain: libvirt.virDomain) -> list[SourceDisk]:
    """The writable disks with a source (not CD-ROMs, not read-only ones), as the VM runs now."""
    xml = DomainXML.from_libvirt(domain.XMLDesc(0))
    disks = []
    conn = domain.connect()
    for disk in writable_disks(xml):
        capacity = domain.blockInfo(disk.target_dev, 0)[0]
        volume = find_disk_volume(conn, disk.source)
        version = _qcow2_version(volume) if volume is not None and disk.driver_type == "qcow2" else None
        disks.append(SourceDisk(target=disk.target_dev, source=disk.source, format=disk.driver_type or "raw",
                                capacity=capacity, qcow2_version=version))
    return disks


def _qcow2_version(volume: libvirt.virStorageVol) -> str:
    """libvirt writes <compat> only for a version 3 image (1.1); a qcow2 volume without it is version 2
    (0.10), which is also what libvirt makes when a volume's XML names no compat. libvirt reads the
    version when it refreshes the volume's pool, so a version 2 answer is asked again after one: the
    image may have been upgraded since (`qemu-img amend`, as bitmap_refusal advises)."""
    compat = VolumeXML.from_libvirt(volume.XMLDesc(0)).compat
    if compat is None:
        try:
            volume.storagePoolLookupByVolume().refresh(0)
        except libvirt.libvirtError:
            return "0.10"  # not refreshed now (a volume is being built in it): libvirt's last reading stands
        compat = VolumeXML.from_libvirt(volume.XMLDesc(0)).compat
    return compat or "0.10"


def writable_disks(xml: DomainXML) -> list[Disk]:
    return [disk for disk in xml.disks
            if disk.device in (None, "disk") and not disk.readonly and disk.source and disk.target_dev]


def bitmap_refusal(disks: list[SourceDisk]) -> str | None:
    """Why these disks cannot be backed up incrementally at all (None: they can)."""
    if not disks:
        return "The VM has no writable disks to back up."
    for disk in disks:
        if disk.format != "qcow2":
            return (f"Disk {disk.target} is {disk.format}: only qcow2 disks hold the dirty bitmaps an incremental "
                    "backup needs, so every backup of this VM is full.")
        if disk.qcow2_version == "0.10":
            return (f"Disk {disk.target} is a version 2 qcow2 image (compat 0.10), which cannot hold dirty bitmaps, so "
                    "every backup of this VM is full. `qemu-img amend -o compat=1.1` upgrades it while the VM is off.")
    return None


@raises_typed
def chain_break(domain: libvirt.virDomain, link: ChainLink, disks: list[SourceDisk]) -> str | None:
    """Why an incremental backup cannot continue from `link` (None: it can). Checked on the VM as it
    is now: its checkpoint must be there, with a bitmap on every disk, and the disks the same."""
    if not is_running(domain):
        return "The VM is not running: a shut-off VM is copied whole."
    now = {disk.target: disk.source for disk in disks}
    if set(now) != set(link.sources):
        return (f"The VM's disks changed since the previous backup ({', '.join(sorted(link.sources))} then, "
                f"{', '.join(sorted(now))} now).")
    for target, source in now.items():
        if link.sources[target] != source:
            return f"Disk {target} is another image now ({source}; it was {link.sources[target]})."
    checkpoint = lookup_or_none(domain.checkpointLookupByName, link.checkpoint, 0,
                                missing=(libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT,))
    if checkpoint is None:
        return (f"The VM has no checkpoint {link.checkpoint} (any more): it was restored, moved to another host or "
                "redefined since the previous backup.")
    try:
        with translated():
            xml = CheckpointXML.from_libvirt(checkpoint.getXMLDesc(libvirt.VIR_DOMAIN_CHECKPOINT_XML_SIZE))
    except VirtError as exc:  # QEMU lacks the bitmap behind the checkpoint
        return f"The checkpoint {link.checkpoint} has lost its dirty bitmaps ({exc})."
    for target in now:
        entry = xml.disk(target)
        if entry is None or entry.checkpoint != "bitmap":
            return f"The checkpoint {link.checkpoint} does not track disk {target}."
        if entry.size is None:  # libvirt counts the changed bytes only where QEMU has the bitmap
            return (f"Disk {target} has no dirty bitmap of the checkpoint {link.checkpoint}: its image was replaced "
                    "or restored since the previous backup.")
    return None


@raises_typed
def chain_files_missing(conn: libvirt.virConnect, pool_name: str, link: ChainLink) -> str | None:
    """Why the backup pool of this host cannot hold an incremental on `link` (None: it can): each of
    the point's files must be in it, at the path it was written to (an incremental's file names it
    as its backing file). Another host reaches them when the pool is shared (NFS, the same folder)."""
    pool = active_pool(conn, pool_name)
    pool.refresh(0)
    for target, name in sorted(link.volumes.items()):
        volume = lookup_or_none(pool.storageVolLookupByName, name)
        if volume is None:
            return f"the previous backup's file {name} is not in the pool {pool_name} on this host."
        if link.paths.get(target, volume.path()) != volume.path():
            return (f"the previous backup's file {name} is at {volume.path()} on this host, not at "
                    f"{link.paths[target]}, where it was written.")
    return None


# ---------------------------------------------------------------------------------------------
# Backing up


@raises_typed
def back_up_running(conn: libvirt.virConnect, domain: libvirt.virDomain, *, pool_name: str,
                    volume_names: dict[str, str], checkpoint: str | None, since: ChainLink | None,
                    progress: Progress, cancelled: Cancelled, poll_interval: float = 0.5) -> BackupOutcome:
    """Push-mode backup of a running VM into `pool_name`: each disk into the volume named for it in
    volume_names. checkpoint: the name of the checkpoint to start (None: none, the disks cannot hold
    bitmaps); since: the restore point to count changes from (None: a full backup). On failure or
    cancel, the job is aborted and the files and the new checkpoint are removed."""
    started = time.monotonic()
    disks = source_disks(domain)
    pool = active_pool(conn, pool_name)
    domain_xml = saved_definition(domain)
    made: list[libvirt.virStorageVol] = []
    try:
        backup = BackupXML.new()
        backup.mode = "push"
        if since is not None:
            backup.incremental = since.checkpoint
        for disk in disks:
            parent = pool.storageVolLookupByName(since.volumes[disk.target]) if since is not None else None
            volume = pool_volume_create(pool, name=volume_names[disk.target], capacity=disk.capacity, allocation=None,
                                        fmt=BACKUP_FORMAT, backing=parent)
            made.append(volume)
            backup.add_file_disk(name=disk.target, target_file=volume.path(), driver_type=BACKUP_FORMAT)
        checkpoint_xml = _checkpoint_xml(checkpoint, disks) if checkpoint else None
        progress(5, "Starting the backup job")
        consistency = _begin(domain, backup, checkpoint_xml)
        _wait_for_job(domain, progress, cancelled, poll_interval)
    except BaseException:
        _undo(domain, made, checkpoint)
        raise
    progress(90, "Checksumming the files")
    written = [_written(conn, disk, volume) for disk, volume in zip(disks, made)]
    return BackupOutcome(kind="incremental" if since is not None else "full", checkpoint=checkpoint or "",
                         consistency=consistency, disks=written, seconds=time.monotonic() - started,
                         domain_xml=domain_xml)


@raises_typed
def back_up_shut_off(conn: libvirt.virConnect, domain: libvirt.virDomain, *, pool_name: str,
                     volume_names: dict[str, str], progress: Progress,
                     vet: Callable[[libvirt.virStorageVol], str]) -> BackupOutcome:
    """A shut-off VM: each disk's volume copied whole by libvirt into the backup pool (a full
    restore point with no checkpoint). vet checks each source volume and gives its format."""
    if is_running(domain):
        raise OperationInvalid("The VM is running: it is backed up through a backup job, not copied.")
    started = time.monotonic()
    pool = active_pool(conn, pool_name)
    xml = DomainXML.from_libvirt(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    planned = []
    for disk in writable_disks(xml):
        source = find_disk_volume(conn, disk.source)
        if source is None:
            raise OperationInvalid(f"Disk {disk.target_dev} ({disk.source}) is not a volume of a storage pool: "
                                   "vmsite copies only pool volumes.")
        planned.append((disk, source, vet(source)))
    if not planned:
        raise OperationInvalid("The VM has no writable disks to back up.")
    made: list[libvirt.virStorageVol] = []
    try:
        for index, (disk, source, fmt) in enumerate(planned):
            progress(5 + 80 * index // len(planned), f"Copying {disk.target_dev} ({index + 1} of {len(planned)})")
            copy = VolumeXML.new()
            copy.name = volume_names[disk.target_dev]
            copy.capacity = source.info()[1]
            copy.format = BACKUP_FORMAT
            copy.compat = QCOW2_COMPAT
            made.append(pool.createXMLFrom(copy.to_xml(), source, 0))
            flush_to_disk(conn, made[-1])
    except BaseException:
        _undo(domain, made, None)
        raise
    progress(90, "Checksumming the files")
    written = []
    for (disk, source, fmt), volume in zip(planned, made):
        described = SourceDisk(target=disk.target_dev, source=disk.source, format=fmt, capacity=source.info()[1])
        written.append(_written(conn, described, volume))
    return BackupOutcome(kind="full", checkpoint="", consistency="shut off: its disks were copied whole",
                         disks=written, seconds=time.monotonic() - started,
                         domain_xml=saved_definition(domain))


def saved_definition(domain: libvirt.virDomain) -> str:
    """The definition a restore point keeps, to define a restored copy from: the persistent one,
    with its console passwords (XML_SECURE), which the restored VM keeps. It stays in the worker,
    the catalogue and the manifest: pages and the API never show it."""
    flags = libvirt.VIR_DOMAIN_XML_SECURE
    if domain.isPersistent():
        flags |= libvirt.VIR_DOMAIN_XML_INACTIVE
    return domain.XMLDesc(flags)


def _checkpoint_xml(name: str, disks: list[SourceDisk]) -> CheckpointXML:
    xml = CheckpointXML.new()
    xml.name = name
    xml.description = "made by vmsite for a backup"
    for disk in disks:
        xml.add_disk(disk.target, bitmap=True)
    return xml


def _begin(domain: libvirt.virDomain, backup: BackupXML, checkpoint: CheckpointXML | None) -> str:
    """Start the job, with the guest's filesystems frozen around its start when the agent is there;
    the consistency that gives, in words."""
    frozen = None
    if agent_connected(domain):
        try:
            with translated():
                frozen = domain.fsFreeze(None, 0)
        except VirtError:
            frozen = None  # an agent that cannot freeze: the backup is crash-consistent, and says so
    try:
        domain.backupBegin(backup.to_xml(), checkpoint.to_xml() if checkpoint else None,
                           libvirt.VIR_DOMAIN_BACKUP_BEGIN_REUSE_EXTERNAL)
    finally:
        if frozen is not None:
            with tolerating(libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
                            libvirt.VIR_ERR_OPERATION_FAILED):
                domain.fsThaw(None, 0)
    if frozen is None:
        return "crash-consistent: no guest agent answered, so filesystems were not frozen"
    return f"consistent: the guest agent froze {frozen} filesystem(s) for the start of the backup"


@raises_typed
def agent_connected(domain: libvirt.virDomain) -> bool:
    """Whether the guest agent's channel is connected (the live XML says so)."""
    root = parse_trusted(domain.XMLDesc(0))
    target = root.find(f"./devices/channel/target[@name='{AGENT_CHANNEL}']")
    return target is not None and target.get("state") == "connected"


def _wait_for_job(domain: libvirt.virDomain, progress: Progress, cancelled: Cancelled, poll_interval: float) -> None:
    """Until the backup job ends: progress from its stats; on cancel, abort it. Raises if it failed.
    Its end is looked for every _JOB_POLL seconds (a job of a second must not wait half a second
    more for its next look); progress and the cancel flag are read every poll_interval."""
    aborted = False
    looked = -poll_interval
    while True:
        stats = domain.jobStats(0)
        if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
            break
        if time.monotonic() - looked >= poll_interval:
            looked = time.monotonic()
            total, done = stats.get("disk_total", 0), stats.get("disk_processed", 0)
            if total:
                progress(5 + 85 * done // total, f"Copied {done // 2**20} of {total // 2**20} MiB")
            if not aborted and cancelled():
                with tolerating(libvirt.VIR_ERR_OPERATION_INVALID):  # finished meanwhile
                    domain.abortJob()
                aborted = True
        time.sleep(min(_JOB_POLL, poll_interval))
    completed = domain.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    if aborted:
        raise BackupCancelled("The backup was cancelled: the job was aborted and its files removed.")
    if not completed.get("success", completed.get("type") == libvirt.VIR_DOMAIN_JOB_COMPLETED):
        reason = completed.get("errmsg") or "libvirt gave no reason"
        raise OperationInvalid(f"The backup job failed: {reason}. Its files were removed.")


def _undo(domain: libvirt.virDomain, volumes: list[libvirt.virStorageVol], checkpoint: str | None) -> None:
    """After a failed or cancelled backup: no file and no checkpoint of it is left."""
    for volume in volumes:
        try:
            volume.delete(0)
        except libvirt.libvirtError:
            pass  # already gone
    if checkpoint:
        made = lookup_or_none(domain.checkpointLookupByName, checkpoint, 0,
                              missing=(libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT,))
        if made is not None:
            with tolerating(libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_OPERATION_FAILED):
                made.delete(0)


def _written(conn: libvirt.virConnect, disk: SourceDisk,
             volume: libvirt.virStorageVol) -> WrittenDisk:
    xml = VolumeXML.from_libvirt(volume.XMLDesc(0))  # libvirt reads the one file's sizes anew for it
    return WrittenDisk(target=disk.target, source=disk.source, volume=volume.name(), path=volume.path(),
                       key=volume.key(), format=BACKUP_FORMAT, capacity=disk.capacity,
                       size=xml.physical or xml.allocation or 0, checksum=volume_checksum(conn, volume))


def active_pool(conn: libvirt.virConnect, name: str) -> libvirt.virStoragePool:
    pool = lookup_or_none(conn.storagePoolLookupByName, name)
    if pool is None:
        raise NotFound(f"The host has no storage pool named {name!r}.", code=libvirt.VIR_ERR_NO_STORAGE_POOL)
    if not pool.isActive():
        raise OperationInvalid(f"The storage pool {name!r} is not active: start it first.")
    return pool


@raises_typed
def drop_checkpoints(domain: libvirt.virDomain, *, keep: frozenset[str] = frozenset()) -> int:
    """Remove vmsite's checkpoints (and their bitmaps) but those named in keep: all of them before a
    new chain starts, or the ones an interrupted backup left. How many went. Ones whose bitmaps are
    already gone lose their metadata only."""
    dropped = 0
    for checkpoint in domain.listAllCheckpoints(libvirt.VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL)[::-1]:
        if not checkpoint.getName().startswith(CHECKPOINT_PREFIX) or checkpoint.getName() in keep:
            continue
        try:
            with translated():
                checkpoint.delete(0)
        except VirtError:
            with tolerating(libvirt.VIR_ERR_NO_DOMAIN_CHECKPOINT):
                checkpoint.delete(libvirt.VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
        dropped += 1
    return dropped


@raises_typed
def checkpoint_definitions(domain: libvirt.virDomain) -> list[str]:
    """The XML of each of the VM's checkpoints, parents first: what redefines them elsewhere. None
    where the hypervisor's driver has no checkpoints."""
    with tolerating(libvirt.VIR_ERR_NO_SUPPORT):
        return [checkpoint.getXMLDesc(0)
                for checkpoint in domain.listAllCheckpoints(libvirt.VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL)]
    return []


@raises_typed
def checkpoints_redefine(domain: libvirt.virDomain, definitions: list[str]) -> list[str]:
    """Define checkpoints read with checkpoint_definitions on `domain` (a VM that moved to another
    host), parents first. Metadata only: whether the bitmaps came along, chain_break asks QEMU before
    the next backup. Returns the names that failed, each with libvirt's reason."""
    failed = []
    for definition in definitions:
        try:
            with translated():
                domain.checkpointCreateXML(definition, libvirt.VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE)
        except VirtError as exc:
            failed.append(f"{CheckpointXML.from_libvirt(definition).name} ({exc})")
    return failed


@raises_typed
def abort_stale_job(domain: libvirt.virDomain, *, owns: Callable[[str], bool], poll_interval: float = 0.2,
                    timeout: float = 120) -> bool:
    """Abort a backup job that a worker which died left running, if its files are ones `owns`
    (a path -> bool) recognises; whether there was one. Another tool's backup job is left alone."""
    if not is_running(domain):
        return False  # QEMU is gone, and its job with it
    stats = domain.jobStats(0)
    if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
        return False
    if stats.get("operation") != libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP:
        return False
    running = lookup_or_none(domain.backupGetXMLDesc, 0, missing=(libvirt.VIR_ERR_NO_DOMAIN_BACKUP,))
    if running is None or not any(owns(disk.target_file or "") for disk in BackupXML.from_libvirt(running).disks):
        return False
    with tolerating(libvirt.VIR_ERR_OPERATION_INVALID):  # it ended meanwhile
        domain.abortJob()
    deadline = time.monotonic() + timeout
    while domain.jobStats(0).get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE:
        if time.monotonic() > deadline:
            raise OperationInvalid("A backup job left by an interrupted backup does not stop: try again later.")
        time.sleep(poll_interval)
    return True


# ---------------------------------------------------------------------------------------------
# Files of the backup pool


@raises_typed
def file_names(conn: libvirt.virConnect, pool_name: str, *, prefix: str) -> list[str]:
    """The names of the pool's volumes that start with prefix, as the pool holds them now."""
    pool = active_pool(conn, pool_name)
    pool.refresh(0)
    return sorted(name for name in pool.listVolumes() if name.startswith(prefix))


@raises_typed
def write_file(conn: libvirt.virConnect, pool_name: str, name: str, data: bytes) -> str:
    """A small file (a manifest) as a raw volume of the pool; its key."""
    pool = active_pool(conn, pool_name)
    if lookup_or_none(pool.storageVolLookupByName, name) is not None:
        raise AlreadyExists(f"The pool {pool_name!r} already has a volume named {name!r}.")
    volume = pool_volume_create(pool, name=name, capacity=len(data), allocation=None, fmt="raw")
    try:
        upload_bytes(conn, volume, data)
        flush_to_disk(conn, volume)
    except BaseException:
        with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
            volume.delete(0)
        raise
    return volume.key()


@raises_typed
def read_files(conn: libvirt.virConnect, pool_name: str, *, suffix: str, limit: int = 1024 * 1024) -> dict[str, bytes]:
    """The small files of a pool whose names end with suffix (manifests), name -> bytes."""
    pool = active_pool(conn, pool_name)
    pool.refresh(0)
    found = {}
    for volume in pool.listAllVolumes(0):
        if volume.name().endswith(suffix) and volume.info()[1] <= limit:
            found[volume.name()] = read_header(conn, volume, limit)
    return found


@raises_typed
def remove_scratch(conn: libvirt.virConnect, *, pool_name: str, prefix: str) -> list[str]:
    """What a worker that died midway left of work whose temporary names start with prefix: VMs of
    that name are destroyed (a health check's, should libvirt not have done it yet), then the pool's
    volumes of that name deleted. What went, in words."""
    gone = []
    for domain in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        if domain.name().startswith(prefix):
            with tolerating(libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
                domain.destroy()
                gone.append(f"VM {domain.name()}")
    return gone + _delete_volumes(conn, pool_name, lambda names: [name for name in sorted(names)
                                                                  if name.startswith(prefix)])


@raises_typed
def refresh_once_built(pool: libvirt.virStoragePool, *, timeout: float = _BUILD_WAIT,
                       poll_interval: float = 0.5) -> None:
    """Refresh the pool once libvirt writes none of its volumes any more. A copy libvirt makes
    (`createXMLFrom`: libvirtd's own qemu-img) goes on when the worker that asked for it is killed,
    and until it ends libvirt refuses to refresh the pool or to delete that volume."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            pool.refresh(0)
            return
        except libvirt.libvirtError as exc:
            if "asynchronous jobs" not in (exc.get_error_message() or "") or time.monotonic() > deadline:
                raise
        time.sleep(poll_interval)


@raises_typed
def remove_unused(conn: libvirt.virConnect, *, pool_name: str, names: list[str], unless_vm: str) -> list[str]:
    """The volumes an interrupted restore was making for the VM `unless_vm`, deleted, unless that VM
    is defined on the host (the restore got as far as defining it: they are its disks now). What went."""
    if lookup_or_none(conn.lookupByName, unless_vm) is not None:
        return []
    return remove_volumes(conn, pool_name=pool_name, names=names)


@raises_typed
def remove_volumes(conn: libvirt.virConnect, *, pool_name: str, names: list[str]) -> list[str]:
    """The named volumes an interrupted operation was making, deleted (once libvirt has finished
    writing them). What went, in words."""
    return _delete_volumes(conn, pool_name, lambda _present: names)


def _delete_volumes(conn: libvirt.virConnect, pool_name: str,
                    choose: Callable[[list[str]], list[str]]) -> list[str]:
    """The volumes `choose(names of the pool's volumes)` picks, deleted from the pool if it is active
    (refreshed first: a killed worker's files may be unknown to it). What went, in words."""
    pool = lookup_or_none(conn.storagePoolLookupByName, pool_name)
    if pool is None or not pool.isActive():
        return []
    refresh_once_built(pool)
    gone = []
    for name in choose(pool.listVolumes()):
        volume = lookup_or_none(pool.storageVolLookupByName, name)
        if volume is not None:
            with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
                volume.delete(0)
                gone.append(f"volume {name}")
    return gone


@raises_typed
def delete_files(conn: libvirt.virConnect, pool_name: str, names: list[str]) -> None:
    pool = lookup_or_none(conn.storagePoolLookupByName, pool_name)
    if pool is None:
        return
    for name in names:
        volume = lookup_or_none(pool.storageVolLookupByName, name)
        if volume is not None:
            with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
                volume.delete(0)


# ---------------------------------------------------------------------------------------------
# Restoring


@dataclass(frozen=True)
class ChainFile:
    """One file of a restore point's chain, oldest first, as the catalogue knows it."""

    volume: str
    format: str
    checksum: str


@dataclass(frozen=True)
class RestoredDisk:
    target: str
    volume: str
    path: str
    key: str


@raises_typed
def verify_chain(conn: libvirt.virConnect, pool_name: str, chain: list[ChainFile], *, checksums: bool = True) -> None:
    """Each file of a chain is there, in the format the catalogue says, names as its backing file
    exactly the file before it, and (checksums) has the checksum the catalogue recorded."""
    pool = active_pool(conn, pool_name)
    pool.refresh(0)
    previous_path = None
    for link in chain:
        volume = lookup_or_none(pool.storageVolLookupByName, link.volume)
        if volume is None:
            raise NotFound(f"The backup file {link.volume} is missing from the pool {pool_name}.",
                           code=libvirt.VIR_ERR_NO_STORAGE_VOL)
        reported = VolumeXML.from_libvirt(volume.XMLDesc(0)).format or "raw"
        if reported != link.format:
            raise OperationInvalid(f"The backup file {link.volume} reads as {reported}, but was written as "
                                   f"{link.format}: it was changed since. Nothing was restored.")
        backing = [ref.name for ref in references(read_header(conn, volume), link.format)
                   if ref.kind == "backing file"]
        if backing != ([previous_path] if previous_path else []):
            raise OperationInvalid(f"The backup file {link.volume} names {backing or 'no backing file'} where its "
                                   f"chain has {previous_path or 'none'}: it was changed since. Nothing was restored.")
        if checksums:
            _require_checksum(conn, volume, link)
        previous_path = volume.path()


def _require_checksum(conn: libvirt.virConnect, volume: libvirt.virStorageVol, link: ChainFile,
                      stop: threading.Event | None = None) -> None:
    if not volume_matches(conn, volume, link.checksum, stop=stop):
        raise OperationInvalid(f"The backup file {link.volume} does not have the checksum recorded when it was "
                               "written: it is damaged. Nothing was restored.")


class _ChecksumsAside(threading.Thread):
    """The checksums of a restore's chain files, read while the copies are made (they read the same
    files): the restored VM is defined only once they all match."""

    def __init__(self, conn: libvirt.virConnect, pool_name: str, files: list[ChainFile]) -> None:
        super().__init__(name="restore-checksums", daemon=True)
        self.conn, self.pool_name, self.files = conn, pool_name, files
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with translated():
                pool = active_pool(self.conn, self.pool_name)
                for link in self.files:
                    _require_checksum(self.conn, pool.storageVolLookupByName(link.volume), link, self.stop)
        except BaseException as exc:  # handed to the restoring thread, which raises it
            self.error = exc

    def require_match(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


@raises_typed
def restore_as_new_vm(conn: libvirt.virConnect, *, domain_xml: str, backup_pool: str, tops: dict[str, str],
                      target_pool: str, new_name: str, progress: Progress, verify_files: list[ChainFile],
                      untrusted: bool = False, emulator: str | None = None,
                      before_making: Callable[[list[str]], None] = lambda names: None,
                      ) -> tuple[str, list[RestoredDisk]]:
    """Define a new VM (new name, UUID and MACs) from a restore point's saved definition, each backed
    up disk a flat copy of its chain's top file (tops: disk target -> volume name) in target_pool.
    Writable disks that were not backed up are left out. untrusted: the definition was read from a
    manifest file, which anyone who can write into the pool could have written, so it must pass the
    allowlist for hand-edited XML (virt/xml/policy.py, against this host, emulator its own) before
    anything is copied. verify_files: the chain files whose checksums must match the catalogue's,
    checked while the copies are made (their names, formats and backing files are verify_chain's,
    before). before_making gets the names of the volumes it is about to make in target_pool, all free
    (none is made before it returns). Returns the new VM's UUID and its disks; on failure or a
    mismatch, the copies are removed."""
    require_free_domain_name(conn, new_name)
    checksums = _ChecksumsAside(conn, backup_pool, verify_files)
    source_pool = active_pool(conn, backup_pool)
    destination = active_pool(conn, target_pool)
    xml = DomainXML.from_xml(domain_xml) if untrusted else DomainXML.from_libvirt(domain_xml)
    planned = plan_restored_disks(xml, tops, new_name, PoolXML.from_libvirt(destination.XMLDesc(0)).target_path)
    make_distinct(xml, new_name)
    if untrusted:
        require_restorable(conn, xml, emulator)
    taken = [name for _, name, _ in planned if lookup_or_none(destination.storageVolLookupByName, name) is not None]
    if taken:
        raise AlreadyExists(f"The pool {target_pool!r} already has a volume named {taken[0]!r}. Nothing was restored.")
    before_making([name for _, name, _ in planned])
    made: list[libvirt.virStorageVol] = []
    restored = []
    checksums.start()
    try:
        for index, (target, name, path) in enumerate(planned):
            progress(10 + 70 * index // len(planned), f"Copying {target} into {target_pool}")
            top = source_pool.storageVolLookupByName(tops[target])
            copy = VolumeXML.new()
            copy.name = name
            copy.capacity = top.info()[1]
            copy.format = BACKUP_FORMAT
            copy.compat = QCOW2_COMPAT
            volume = destination.createXMLFrom(copy.to_xml(), top, 0)
            made.append(volume)
            flush_to_disk(conn, volume)
            if volume.path() != path:
                raise OperationInvalid(f"The pool {target_pool!r} put {name} at {volume.path()}, not at {path}.")
            require_flat_copy(conn, volume, capacity=copy.capacity)
            restored.append(RestoredDisk(target=target, volume=name, path=path, key=volume.key()))
        progress(80, f"Waiting for the checksums of {len(verify_files)} file(s), read while copying")
        checksums.require_match()
        progress(85, f"Defining {new_name}")
        new = conn.defineXML(xml.to_xml())
    except BaseException:
        checksums.stop.set()  # no longer needed: it ends with the segments it has asked for
        checksums.join()
        for volume in made:
            with tolerating(libvirt.VIR_ERR_NO_STORAGE_VOL):
                volume.delete(0)
        raise
    return new.UUIDString(), restored


def require_flat_copy(conn: libvirt.virConnect, volume: libvirt.virStorageVol, *, capacity: int) -> None:
    """The written image reads as what was asked: a qcow2 file of the disk's size naming no other file."""
    written = VolumeXML.from_libvirt(volume.XMLDesc(0))
    found = references(read_header(conn, volume), BACKUP_FORMAT)
    if (written.format or "raw") != BACKUP_FORMAT or written.capacity != capacity or found:
        raise OperationInvalid(f"The restored copy {volume.name()} is not a flat qcow2 image of {capacity} bytes "
                               f"(it reads as {written.format}, {written.capacity} bytes"
                               f"{', naming ' + found[0].name if found else ''}). Nothing was restored.")


def plan_restored_disks(xml: DomainXML, tops: dict[str, str], new_name: str,
                         pool_path: str | None) -> list[tuple[str, str, str]]:
    """Point each backed-up disk at the volume its copy will be (target, volume name, path); drop
    the writable disks that were not backed up."""
    if not pool_path:
        raise OperationInvalid("A restored disk goes into a pool with a folder (a dir, fs or NFS pool).")
    planned = []
    for disk in writable_disks(xml):
        if disk.target_dev not in tops:
            disk.element.getparent().remove(disk.element)
            continue
        name = f"{new_name}-{disk.target_dev}.qcow2"
        path = posixpath.join(pool_path, name)
        point_disk_at(disk, path)
        planned.append((disk.target_dev, name, path))
    return planned


def require_restorable(conn: libvirt.virConnect, xml: DomainXML, emulator: str | None) -> None:
    """A definition read from a manifest, with its disks pointed at their restored copies, against
    the allowlist as the new VM of this host: what a user could not define by hand, a file cannot."""
    pools = pool_paths(conn)
    used_elsewhere: dict[str, bool] = {}
    for description in other_domain_descriptions(conn, except_uuid=None):
        for path, writes in volume_paths(parse_trusted(description), pools).items():
            used_elsewhere[path] = used_elsewhere.get(path, False) or writes
    context = HostContext(uuid="", pools=pools, emulator=emulator, name=xml.name,
                          own_paths=frozenset(volume_paths(xml.element, pools)), used_elsewhere=used_elsewhere)
    try:
        require_allowed(xml.element, context)
    except PolicyViolation as exc:
        raise InvalidArgument(f"Refused, nothing was restored: the VM definition in this restore point's manifest "
                              f"breaks the rules for a new VM: {exc}") from None


def point_disk_at(disk: Disk, path: str) -> None:
    """A plain qcow2 file disk at path: no pool reference, no backing chain of the original."""
    disk.type = "file"
    for source in disk.element.findall("source"):  # a file's source, whatever the original's was
        disk.element.remove(source)
    for backing in disk.element.findall("backingStore"):
        disk.element.remove(backing)
    disk.source_file = path
    disk.driver_name = "qemu"
    disk.driver_type = BACKUP_FORMAT
