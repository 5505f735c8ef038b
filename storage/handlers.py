"""Operation handlers for pools and volumes: find, act through virt/, store the new state."""
from __future__ import annotations

import time
from collections.abc import Callable

from domains.models import Domain
from domains.sync import domain_refresh
from hosts.connection import connect_uri
from hosts.models import Host
from operations.models import Operation
from operations.registry import Report, operation_handler
from operations.services import operation_record_libvirt_time
from storage import sync
from storage.choices import FILE_POOL_TYPES
from storage.disks import vetted_copy_format
from storage.models import StoragePool, Volume
from storage.records import records_forget, volume_record_made
from virt import storage as virt_storage
from virt.clone import copy_volume
from virt.connection import pool as connection_pool
from virt.devices import detach_disk
from virt.domains import lookup as lookup_domain
from virt.errors import OperationInvalid, VirtError, translated
from virt.streams import volume_sha256
from virt.types import Connection
from virt.volumes import volume_key
from virt.xml.storage import PoolXML

PoolAct = Callable[[Connection, object, dict, Report], str]

_POOL_ACTS: dict[str, PoolAct] = {
    "build": lambda conn, handle, args, report: virt_storage.build_pool(handle),
    "start": lambda conn, handle, args, report: virt_storage.start_pool(handle),
    "stop": lambda conn, handle, args, report: virt_storage.stop_pool(handle),
    "autostart_on": lambda conn, handle, args, report: virt_storage.set_pool_autostart(handle, enabled=True),
    "autostart_off": lambda conn, handle, args, report: virt_storage.set_pool_autostart(handle, enabled=False),
    "refresh": lambda conn, handle, args, report: virt_storage.refresh_pool(handle),
    "undefine": lambda conn, handle, args, report: virt_storage.undefine_pool(handle),
    "delete": lambda conn, handle, args, report: virt_storage.delete_pool(handle),
}


def act_on_pool(operation: Operation, report: Report, label: str, act: PoolAct) -> str:
    """The frame of every action on one pool: find it, act, time the libvirt work, then store
    the pool and its volumes as libvirt has them now, whatever happened."""
    pool = StoragePool.objects.select_related("host").get(pk=operation.target_id)
    with connection_pool().session(connect_uri(pool.host)) as conn:
        handle = virt_storage.lookup_pool(conn, str(pool.uuid))
        report(10, f"{label}: {pool.name}")
        started = time.perf_counter()
        try:
            return act(conn, handle, operation.arguments, report)
        finally:
            operation_record_libvirt_time(operation_id=operation.pk, milliseconds=(time.perf_counter() - started) * 1000)
            sync.pool_refresh_row(conn, pool)


def _register_pool_action(action: str) -> None:
    label = action.replace("_", " ").capitalize()
    operation_handler(f"pool.{action}")(
        lambda operation, report: act_on_pool(operation, report, label, _POOL_ACTS[action]))


for _action in _POOL_ACTS:
    _register_pool_action(_action)


@operation_handler("pool.define")
def define_pool(operation: Operation, report: Report) -> str:
    """Define, then optionally build, start and autostart. A pool that cannot be built or
    started is undefined again, so that a bad definition leaves nothing behind."""
    host = Host.objects.get(pk=operation.target_id)
    args = operation.arguments
    config = PoolXML.from_xml(args["xml"])
    with connection_pool().session(connect_uri(host)) as conn:
        report(10, f"Defining {config.name}")
        uuid = virt_storage.define_pool(conn, config)
        handle = virt_storage.lookup_pool(conn, uuid)
        try:
            if args.get("build"):
                report(30, f"Building {config.name}")
                virt_storage.build_pool(handle)
            if args.get("start"):
                report(60, f"Starting {config.name}")
                _start_new_pool(handle, config, built=bool(args.get("build")))
            if args.get("autostart"):
                virt_storage.set_pool_autostart(handle, enabled=True)
        except BaseException:
            with translated():
                virt_storage.undefine_pool(handle)
            raise
        active = {uuid} if handle.isActive() else set()
        row = sync.pool_row_for(host=host, summary=virt_storage.pool_summary(handle, active, set()))
        sync.pool_refresh_row(conn, row)
    return f"Defined {config.name}" + (" and started it" if args.get("start") else "")


def _start_new_pool(handle, config: PoolXML, *, built: bool) -> None:
    try:
        with translated():
            virt_storage.start_pool(handle)
    except VirtError as exc:
        missing = "No such file or directory" in str(exc) or "cannot open" in str(exc)
        if config.type == "dir" and missing and not built:
            raise OperationInvalid(f"The folder {config.target_path} does not exist on the host: create it, or tick "
                                   "'Build it' to let libvirt create it. Nothing was defined.") from exc
        raise


# ---------------------------------------------------------------------------------------------
# Volumes


@operation_handler("volume.create")
def create_volume(operation: Operation, report: Report) -> str:
    pool = StoragePool.objects.select_related("host").get(pk=operation.target_id)
    args = operation.arguments
    backing = Volume.objects.select_related("pool").filter(pk=args.get("backing_id")).first()
    with connection_pool().session(connect_uri(pool.host)) as conn:
        handle = virt_storage.lookup_pool(conn, str(pool.uuid))
        report(20, f"Creating {args['name']}")
        try:
            backing_handle = (virt_storage.lookup_volume(conn, str(backing.pool.uuid), backing.name)
                              if backing is not None else None)
            file_pool = pool.pool_type in FILE_POOL_TYPES
            # Image files are thin unless asked (libvirt would allocate a raw one in full); a logical
            # volume or a partition is all there, and has no image format.
            allocation = args.get("allocation")
            made = virt_storage.pool_volume_create(
                handle, name=args["name"], capacity=args["capacity"],
                allocation=allocation if allocation is not None else (0 if file_pool else None),
                fmt=args["format"] if file_pool else None, backing=backing_handle)
            # Made from a pool page: an administrator's, nobody's VM's.
            volume_record_made(host=pool.host, key=volume_key(made), format=args["format"] if file_pool else "raw")
        finally:
            sync.pool_refresh_row(conn, pool)
    return f"Created {args['name']} ({args['format']})"


def act_on_volume(operation: Operation, report: Report, act) -> str:
    """The frame of every action on one volume; the pool's rows are refreshed afterwards."""
    volume = Volume.objects.select_related("pool", "host").get(pk=operation.target_id)
    uri = connect_uri(volume.host)
    with connection_pool().session(uri) as conn:
        handle = virt_storage.lookup_volume(conn, str(volume.pool.uuid), volume.name)
        report(10, f"{operation.kind.partition('.')[2].capitalize()}: {volume}")
        started = time.perf_counter()
        try:
            return act(conn, handle, volume, uri, operation.arguments, report)
        finally:
            operation_record_libvirt_time(operation_id=operation.pk, milliseconds=(time.perf_counter() - started) * 1000)
            sync.pool_refresh_row(conn, volume.pool)


@operation_handler("volume.clone")
def clone_volume(operation: Operation, report: Report) -> str:
    def act(conn, handle, volume, uri, args, report):
        fmt = vetted_copy_format(conn, host=volume.host, volume=handle)
        copy = copy_volume(handle, args["name"], uri=uri, fmt=fmt, progress=lambda done: report(
            10 + int(85 * done), f"Copying {volume.name} to {args['name']}"))
        volume_record_made(host=volume.host, key=volume_key(copy), format=fmt)
        return f"Copied {volume.name} to {args['name']}"
    return act_on_volume(operation, report, act)


@operation_handler("volume.resize")
def resize_volume(operation: Operation, report: Report) -> str:
    return act_on_volume(operation, report, lambda conn, handle, volume, uri, args, report: virt_storage.resize_volume(
        handle, capacity=int(args["capacity"]), shrink=bool(args.get("shrink"))))


@operation_handler("volume.wipe")
def wipe_volume(operation: Operation, report: Report) -> str:
    def act(conn, handle, volume, uri, args, report):
        _refuse_if_used(conn, handle, "wiped")
        return virt_storage.wipe_volume(handle)
    return act_on_volume(operation, report, act)


@operation_handler("volume.checksum")
def checksum_volume(operation: Operation, report: Report) -> str:
    def act(conn, handle, volume, uri, args, report):
        digest = volume_sha256(uri, str(volume.pool.uuid), volume.name, size=volume.allocation or volume.capacity,
                               progress=lambda done: report(10 + int(88 * min(1.0, done)), f"Reading {volume.name}"))
        Volume.objects.filter(pk=volume.pk).update(sha256=digest)
        return f"SHA-256 {digest}"
    return act_on_volume(operation, report, act)


@operation_handler("volume.delete")
def delete_volume(operation: Operation, report: Report) -> str:
    def act(conn, handle, volume, uri, args, report):
        users = virt_storage.volume_users(conn, handle)
        if users and not args.get("detach"):
            _refuse_if_used(conn, handle, "deleted")
        for user in users:
            report(30, f"Detaching {user.target_dev} from {user.domain_name}")
            domain = lookup_domain(conn, user.domain_uuid)
            detach_disk(domain, target_dev=user.target_dev, live=user.running, persistent=bool(domain.isPersistent()))
            for row in Domain.objects.select_related("host").filter(host=volume.host, uuid=user.domain_uuid):
                domain_refresh(conn, row)
        _refuse_if_used(conn, handle, "deleted")  # a running guest may not have released it yet
        report(80, f"Deleting {volume.name}")
        key = volume_key(handle)
        message = virt_storage.delete_volume(handle)
        records_forget(host=volume.host, keys=[key])
        return message
    return act_on_volume(operation, report, act)


def _refuse_if_used(conn: Connection, handle, what: str) -> None:
    users = virt_storage.volume_users(conn, handle)
    if users:
        names = ", ".join(sorted({user.domain_name for user in users}))
        raise OperationInvalid(f"The volume is in use by {names}: it was not {what}. Detach it from "
                               f"{'them' if len(users) > 1 else 'it'} first (a running guest must release it).")


@operation_handler("pool.discover")
def discover_sources(operation: Operation, report: Report) -> str:
    """What the server offers, stored with the operation for the new-pool page to list."""
    host = Host.objects.get(pk=operation.target_id)
    args = operation.arguments
    with connection_pool().session(connect_uri(host)) as conn:
        report(20, f"Asking {args['source_host']}")
        found = virt_storage.find_pool_sources(conn, args["pool_type"], args["source_host"])
    Operation.objects.filter(pk=operation.pk).update(arguments={**args, "found": found})
    what = "export(s)" if args["pool_type"] == "netfs" else "target(s)"
    return f"{args['source_host']} offers {len(found)} {what}"
