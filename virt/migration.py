"""Moving a running (or shut off) domain to another host.

The migration is managed by this process, connected to both hosts: `migrate3` runs in a side
thread while the calling thread polls the job statistics for progress and checks whether the
user asked to cancel (then it aborts the job). The migration URI is built by the caller from the
destination host's validated address, never from user text.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from virt.backup import checkpoint_definitions, checkpoints_redefine
from virt.errors import OperationInvalid, VirtError, has_code, lookup_or_none, raises_typed
from virt.migration_checks import (SNAPSHOTS_IN_COPIED_DISKS, SavedSnapshot, cpu_mode, cpu_refusal, host_cpu,
                                   local_devices, passthrough_refusal, snapshots_redefine, snapshots_take_away)
from virt.snapshots import read_tree
from virt.storage import pool_volume_create
from virt.xml.domain import summarize_domain
from virt.xml.storage import PoolXML, VolumeXML

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between two looks at the job statistics (and the cancel flag)
ABORT_WAIT = 30  # seconds to let an aborted migration wind down before giving up on it
MiB = 1024 * 1024


class MigrationFailed(VirtError):
    """The migration did not happen; the VM is still on its source host."""


class MigrationCancelled(MigrationFailed):
    pass


class DestinationLacksCPU(MigrationFailed):
    pass


class DestinationLacksEmulator(MigrationFailed):
    pass


class MigrationBlocked(MigrationFailed):
    """Found before anything moved: what the VM has that cannot go (or not this way)."""


@dataclass(frozen=True)
class MigrationOptions:
    live: bool = True
    persist_destination: bool = True
    undefine_source: bool = True
    copy_storage: bool = False
    bandwidth_mib: int | None = None  # MiB/s; None: no limit
    auto_converge: bool = False
    postcopy: bool = False
    move_snapshots: bool = False  # redefine the snapshots' metadata on the destination
    keep_source_disks: bool = False  # after copy-storage: leave the source's copies of the disks


@dataclass(frozen=True)
class MigrationResult:
    message: str
    kept_source_disks: tuple[str, ...] = ()  # paths of copied disks left on the source host


@dataclass(frozen=True)
class MigrationProgress:
    """One sample of the migration job's statistics."""

    percent: int
    processed: int  # bytes sent so far (memory and disks)
    remaining: int
    total: int
    dirty_rate: int  # memory pages dirtied per second
    iteration: int  # memory pass; post-copy starts after the first

    def describe(self) -> str:
        text = f"{_mib(self.processed)} processed, {_mib(self.remaining)} remaining of {_mib(self.total)}"
        if self.dirty_rate:
            text += f"; dirty rate {self.dirty_rate} pages/s"
        if self.iteration > 1:
            text += f"; pass {self.iteration}"
        return text


Progress = Callable[[MigrationProgress], None]
CancelRequested = Callable[[], bool]


@raises_typed
def migrate(
    source_conn: libvirt.virConnect,
    domain: libvirt.virDomain,
    destination_conn: libvirt.virConnect,
    *,
    destination_address: str,
    options: MigrationOptions,
    progress: Progress,
    cancel_requested: CancelRequested,
) -> str:
    """Migrate `domain` to the destination; returns what happened, in words, or raises a
    MigrationFailed subclass that says why."""
    running = bool(domain.isActive())
    flags = migration_flags(options, running=running)
    params = migration_params(destination_address, options, domain_name=domain.name())
    preflight(source_conn, domain, destination_conn, options, running=running)
    stays_defined = bool(domain.isPersistent()) and not options.undefine_source
    created_volumes = prepare_destination_storage(source_conn, domain, destination_conn) if options.copy_storage else []
    copied = [volume.path() for volume in created_volumes]
    saved = snapshots_take_away(domain, [s.name for s in read_tree(domain)]) if options.move_snapshots else []
    checkpoints = checkpoint_definitions(domain)  # their metadata stays behind: redefined there after
    try:
        migrated, last = _run_and_watch(domain, destination_conn, params, flags, options, progress, cancel_requested)
    except BaseException:
        _delete_quietly(created_volumes)
        snapshots_redefine(domain, saved)  # they stay where the VM stays
        raise
    notes = _snapshots_follow(destination_conn, domain, saved, stays_defined=stays_defined)
    notes += _checkpoints_follow(destination_conn, domain, checkpoints)
    kept: tuple[str, ...] = ()
    if copied:
        kept, note = _source_copies(source_conn, copied, stays_defined=stays_defined, keep=options.keep_source_disks)
        notes.append(note)
    if not running:
        message = "Moved the shut off VM's definition" + ("" if options.undefine_source else " (kept on the source too)")
    else:
        message = _summary(migrated, last, copied=len(created_volumes), options=options)
    return MigrationResult(message="; ".join([message, *notes]), kept_source_disks=kept)


@raises_typed
def preflight(source_conn: libvirt.virConnect, domain: libvirt.virDomain, destination_conn: libvirt.virConnect,
              options: MigrationOptions, *, running: bool) -> None:
    """Refuse, in words and before anything moves, what libvirt would refuse late or what would
    lose data (see virt.migration_checks)."""
    xml = domain.XMLDesc(0)
    devices = local_devices(xml)
    if devices:
        raise MigrationBlocked(f"{domain.name()} uses {', '.join(devices)}, which cannot follow it to another host: "
                               "remove it first.")
    snapshots = domain.snapshotNum(0)
    if snapshots and not options.move_snapshots:
        raise MigrationBlocked(f"{domain.name()} has {snapshots} snapshot{'s' if snapshots > 1 else ''}, and libvirt "
                               "cannot migrate a VM with snapshots: tick \"Move its snapshots\" to move their "
                               "metadata with it, or delete them first.")
    if snapshots and options.copy_storage:
        raise MigrationBlocked(SNAPSHOTS_IN_COPIED_DISKS)
    if not running:
        return  # a shut off VM gets its CPU when it starts on the destination
    if cpu_mode(xml) == "host-passthrough":
        refusal = passthrough_refusal(source_cpu=host_cpu(source_conn), destination_cpu=host_cpu(destination_conn))
        if refusal:
            raise MigrationBlocked(refusal)
    try:
        # The definition the migration sends, not the live one: on AMD hosts the live CPU lists
        # features QEMU added by itself (topoext), which the destination's hypervisor is then said
        # to lack although the same QEMU gives them there too.
        refusal = cpu_refusal(destination_conn, domain.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE))
    except VirtError as exc:  # the destination cannot even be asked (no usable emulator...)
        raise explain_failure(exc.code, str(exc)) from exc.__cause__
    if refusal:
        raise DestinationLacksCPU("The destination host cannot run this VM's CPU model: pick a destination with the "
                                  f"same or a newer CPU, or give the VM a CPU model both hosts support ({refusal})")




def _snapshots_follow(destination_conn: libvirt.virConnect, domain: libvirt.virDomain, saved: list[SavedSnapshot],
                      *, stays_defined: bool) -> list[str]:
    if not saved:
        return []
    moved = destination_conn.lookupByUUIDString(domain.UUIDString())
    failed = snapshots_redefine(moved, saved)
    if stays_defined:
        snapshots_redefine(domain, saved)  # the source keeps the VM, so its snapshots too
    if failed:
        return [f"{len(saved) - len(failed)} of {len(saved)} snapshots moved; not redefined: {', '.join(failed)}"]
    return [f"{len(saved)} snapshot{'s' if len(saved) > 1 else ''} moved"]


def _checkpoints_follow(destination_conn: libvirt.virConnect, domain: libvirt.virDomain,
                        definitions: list[str]) -> list[str]:
    """libvirt moves the dirty bitmaps (in the disks, or in the migration stream when the disks are
    copied) but not the checkpoints that name them: define them on the destination, parents first,
    so that the VM's next backup there can be incremental."""
    if not definitions:
        return []
    moved = destination_conn.lookupByUUIDString(domain.UUIDString())
    failed = checkpoints_redefine(moved, definitions)
    if failed:
        return [f"{len(definitions) - len(failed)} of {len(definitions)} checkpoints redefined; not redefined "
                f"(the next backup starts a new chain): {', '.join(failed)}"]
    return [f"{len(definitions)} checkpoint{'s' if len(definitions) > 1 else ''} redefined"]


def _source_copies(source_conn: libvirt.virConnect, paths: list[str], *, stays_defined: bool,
                   keep: bool) -> tuple[tuple[str, ...], str]:
    """After a copy-storage migration: remove the source's copies of the disks, unless asked to
    keep them or the source still defines the VM (its definition uses them)."""
    if stays_defined:
        return tuple(paths), "the source's disk copies are kept: its definition of the VM still uses them"
    if keep:
        return tuple(paths), f"the source's copies of {len(paths)} disk{'s' if len(paths) > 1 else ''} are kept, as asked"
    failed = {}
    for path in paths:
        try:
            source_conn.storageVolLookupByPath(path).delete(0)
        except libvirt.libvirtError as exc:
            failed[path] = exc.get_error_message()
    if failed:
        return tuple(failed), "could not remove the source copies: " + ", ".join(
            f"{path} ({reason})" for path, reason in failed.items())
    return (), f"the source copies were removed ({len(paths)} disk{'s' if len(paths) > 1 else ''})"


def migration_flags(options: MigrationOptions, *, running: bool) -> int:
    if not running:
        if options.copy_storage:
            raise OperationInvalid("A shut off VM is migrated by moving its definition only: copy its disks "
                                   "separately, or start it and migrate it live with copy-storage.")
        # libvirt only moves a shut off VM's definition, so it must be kept on the destination.
        flags = libvirt.VIR_MIGRATE_OFFLINE | libvirt.VIR_MIGRATE_PERSIST_DEST
        return flags | (libvirt.VIR_MIGRATE_UNDEFINE_SOURCE if options.undefine_source else 0)
    wanted = {
        libvirt.VIR_MIGRATE_LIVE: options.live,
        libvirt.VIR_MIGRATE_PERSIST_DEST: options.persist_destination,
        libvirt.VIR_MIGRATE_UNDEFINE_SOURCE: options.undefine_source,
        libvirt.VIR_MIGRATE_NON_SHARED_DISK: options.copy_storage,
        libvirt.VIR_MIGRATE_AUTO_CONVERGE: options.auto_converge,
        libvirt.VIR_MIGRATE_POSTCOPY: options.postcopy,
    }
    flags = 0
    for flag, on in wanted.items():
        if on:
            flags |= flag
    return flags


def migration_params(destination_address: str, options: MigrationOptions, *, domain_name: str) -> dict:
    """The typed parameters of migrate3. `destination_address` must be the host's validated address."""
    params: dict = {libvirt.VIR_MIGRATE_PARAM_DEST_NAME: domain_name}
    if destination_address:
        host = _uri_host(destination_address)
        params[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://{host}"
        if _is_loopback(destination_address):
            # Several hosts on one machine (127.0.0.N): the destination must listen on its own
            # address, not on every address, or the incoming ports would collide.
            params[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = destination_address
    if options.bandwidth_mib:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = int(options.bandwidth_mib)
    return params


# ---------------------------------------------------------------------------------------------
# Storage for copy-storage: the destination needs each disk's volume, empty, at the same path.


@dataclass(frozen=True)
class _VolumeSpec:
    path: str
    pool_path: str
    name: str
    capacity: int  # bytes
    format: str | None


@raises_typed
def prepare_destination_storage(source_conn: libvirt.virConnect, domain: libvirt.virDomain,
                                destination_conn: libvirt.virConnect) -> list[libvirt.virStorageVol]:
    """Create, in the destination pool at the same folder, an empty volume like each of the VM's
    disks, so that copy-storage has somewhere to write. Returns the volumes created."""
    specs = [_volume_spec(source_conn, path) for path in _disk_paths(domain)]
    pools = _pools_by_path(destination_conn)
    for spec in specs:
        if spec.pool_path not in pools:
            raise MigrationFailed(f"The destination host has no active storage pool at {spec.pool_path} "
                                  f"for the disk {spec.path}: create one there first.")
        if _volume_exists(destination_conn, spec.path):
            raise MigrationFailed(f"The destination host already has a file at {spec.path}: vmsite will not "
                                  "overwrite it. Remove it there, or migrate without copying storage.")
    created = []
    try:
        for spec in specs:
            created.append(pool_volume_create(pools[spec.pool_path], name=spec.name, capacity=spec.capacity,
                                              allocation=None, fmt=spec.format))
    except VirtError as exc:
        if not isinstance(exc.__cause__, libvirt.libvirtError):
            raise  # vmsite's own refusal (the name is taken...), already in words
        _delete_quietly(created)
        raise MigrationFailed(f"Could not create the disk on the destination: {exc}") from exc
    return created


def _disk_paths(domain: libvirt.virDomain) -> list[str]:
    disks = summarize_domain(domain.XMLDesc(0)).disks
    return [disk.source for disk in disks if disk.device == "disk" and disk.source]


def _volume_spec(conn: libvirt.virConnect, path: str) -> _VolumeSpec:
    volume = lookup_or_none(conn.storageVolLookupByPath, path)
    pool = lookup_or_none(volume.storagePoolLookupByVolume) if volume is not None else None
    if pool is None:
        raise MigrationFailed(f"The disk {path} is not a volume of a storage pool on the source host, so "
                              "vmsite cannot prepare it on the destination.")
    described = VolumeXML.from_libvirt(volume.XMLDesc(0))
    return _VolumeSpec(path=path, pool_path=PoolXML.from_libvirt(pool.XMLDesc(0)).target_path or "",
                       name=volume.name(), capacity=volume.info()[1], format=described.format)


def _pools_by_path(conn: libvirt.virConnect) -> dict[str, libvirt.virStoragePool]:
    pools = conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
    return {PoolXML.from_libvirt(pool.XMLDesc(0)).target_path: pool for pool in pools}


def _volume_exists(conn: libvirt.virConnect, path: str) -> bool:
    return lookup_or_none(conn.storageVolLookupByPath, path, missing=(libvirt.VIR_ERR_NO_STORAGE_VOL,)) is not None


def _delete_quietly(volumes: list[libvirt.virStorageVol]) -> None:
    for volume in volumes:
        try:
            volume.delete(0)
        except libvirt.libvirtError as exc:
            logger.warning("could not remove the volume %s made for a failed migration: %s", volume.path(), exc)


# ---------------------------------------------------------------------------------------------
# Running the migration


class _Migration(threading.Thread):
    """migrate3 in a thread of its own: it blocks until the migration ends."""

    def __init__(self, domain: libvirt.virDomain, destination_conn: libvirt.virConnect, params: dict, flags: int):
        super().__init__(name=f"migrate-{domain.name()}", daemon=True)
        self.args = (destination_conn, params, flags)
        self.domain = domain
        self.result: libvirt.virDomain | None = None
        self.error: libvirt.libvirtError | None = None

    def run(self) -> None:
        try:
            self.result = self.domain.migrate3(*self.args)
        except libvirt.libvirtError as exc:
            self.error = exc


def _run_and_watch(domain: libvirt.virDomain, destination_conn: libvirt.virConnect, params: dict, flags: int,
                   options: MigrationOptions, progress: Progress, cancel_requested: CancelRequested
                   ) -> tuple[libvirt.virDomain, MigrationProgress | None]:
    migration = _Migration(domain, destination_conn, params, flags)
    migration.start()
    watch = _Watch(domain, options)
    try:
        while migration.is_alive():
            migration.join(POLL_INTERVAL)
            if migration.is_alive():
                watch.look(progress, cancel_requested)
    except BaseException:
        # The task's time limit, a lost database: never leave a migration running unwatched.
        _abort(domain, watch.postcopy_started)
        migration.join(ABORT_WAIT)
        raise
    if migration.error is not None:
        raise _explain(migration.error, aborted=watch.aborted)
    return migration.result, watch.last


class _Watch:
    """What the polling thread has seen and done so far."""

    def __init__(self, domain: libvirt.virDomain, options: MigrationOptions) -> None:
        self.domain, self.options = domain, options
        self.last: MigrationProgress | None = None
        self.aborted = self.postcopy_started = False

    def look(self, progress: Progress, cancel_requested: CancelRequested) -> None:
        sample = _sample(self.domain)
        if sample is not None:
            self.last = sample
            progress(sample)
        if not self.aborted and cancel_requested():
            self.aborted = _abort(self.domain, self.postcopy_started)
        if self.options.postcopy and not self.postcopy_started and sample is not None and sample.iteration > 1:
            self.postcopy_started = _start_postcopy(self.domain)


def _sample(domain: libvirt.virDomain) -> MigrationProgress | None:
    try:
        stats = domain.jobStats()
    except libvirt.libvirtError:
        return None  # the job finished (or the VM left) between two looks
    if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE or not stats.get("data_total"):
        return None  # not started yet: nothing to show
    return progress_from_stats(stats)


def progress_from_stats(stats: dict) -> MigrationProgress:
    total = int(stats.get("data_total", 0))
    remaining = int(stats.get("data_remaining", 0))
    percent = 100 - (100 * remaining // total) if total else 0
    return MigrationProgress(percent=max(0, min(100, percent)), processed=int(stats.get("data_processed", 0)),
                             remaining=remaining, total=total, dirty_rate=int(stats.get("memory_dirty_rate", 0)),
                             iteration=int(stats.get("memory_iteration", 0)))


def _abort(domain: libvirt.virDomain, postcopy_started: bool) -> bool:
    if postcopy_started:
        logger.warning("cancel of %s ignored: post-copy has started and cannot be undone", domain.name())
        return False
    try:
        domain.abortJob()
    except libvirt.libvirtError as exc:
        logger.info("abortJob on %s: %s", domain.name(), exc)  # it finished meanwhile
        return False
    return True


def _start_postcopy(domain: libvirt.virDomain) -> bool:
    try:
        domain.migrateStartPostCopy(0)
    except libvirt.libvirtError as exc:
        logger.info("post-copy switch of %s refused: %s", domain.name(), exc)
        return False
    return True


def _summary(migrated: libvirt.virDomain, last: MigrationProgress | None, *, copied: int,
             options: MigrationOptions) -> str:
    parts = [f"Migrated {'live' if options.live else 'paused'}"]
    stats = _completed_stats(migrated)
    # The destination's copy of the statistics counts memory only; the last sample saw the disks too.
    transferred = max(int(stats.get("data_processed", 0)), last.processed if last else 0)
    parts.append(f"{_mib(transferred)} of data transferred")
    if stats.get("time_elapsed"):
        parts[-1] += f" in {int(stats['time_elapsed']) / 1000:.1f} s"
    if copied:
        parts.append(f"with {copied} disk{'s' if copied > 1 else ''} copied")
    return ", ".join(parts)


def _completed_stats(domain: libvirt.virDomain) -> dict:
    """The statistics of the finished migration, which libvirt hands to the destination."""
    try:
        return domain.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return {}


# ---------------------------------------------------------------------------------------------
# Errors

# How libvirt 9 words them (src/cpu/, src/qemu/qemu_capabilities.c, qemu_process.c).
_CPU_NEEDLES = ("CPU is incompatible", "guest CPU doesn't match", "CPU model", "Host CPU does not provide")
_EMULATOR_NEEDLES = ("QEMU binary", "No emulator found", "Emulator '")


def _explain(exc: libvirt.libvirtError, *, aborted: bool) -> VirtError:
    if aborted and has_code(exc, libvirt.VIR_ERR_OPERATION_ABORTED):
        return MigrationCancelled("The migration was cancelled; the VM is still on its source host.",
                                  code=exc.get_error_code())
    return explain_failure(exc.get_error_code(), exc.get_error_message() or str(exc))


def explain_failure(code: int | None, message: str) -> VirtError:
    """A failed migration in words: the destination's missing CPU model or emulator named as such."""
    if code == libvirt.VIR_ERR_CPU_INCOMPATIBLE or any(needle in message for needle in _CPU_NEEDLES):
        return DestinationLacksCPU(
            "The destination host cannot run this VM's CPU model: pick a destination with the same or a "
            f"newer CPU, or give the VM a CPU model both hosts support (libvirt: {message})", code=code)
    if any(needle in message for needle in _EMULATOR_NEEDLES):
        return DestinationLacksEmulator(
            "The destination host lacks the emulator this VM uses (or it does not run there): install "
            f"the same QEMU system emulator on it (libvirt: {message})", code=code)
    if "Postcopy is not supported" in message:
        return MigrationFailed("These hosts cannot migrate post-copy (their kernel offers QEMU no userfaultfd): "
                               f"migrate without post-copy (libvirt: {message})", code=code)
    return MigrationFailed(f"Migration failed: {message}", code=code)


def _uri_host(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address  # a DNS name, validated when the host was registered


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _mib(amount: int) -> str:
    return f"{amount / MiB:.1f} MiB"
