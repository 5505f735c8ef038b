"""Operation handlers for pools and volumes: their own work through virt/, inside the frame that
finds the pool or volume and stores the pool and its volumes as libvirt has them now
(operations.frame)."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

from domains.models import Domain
from domains.sync import domain_refresh
from hosts.connection import connect_uri, host_session
from hosts.targets import CONNECTED_HOST
from operations.frame import Frame, Target, operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from storage import sync
from storage.choices import FILE_POOL_TYPES
from storage.disks import vetted_copy_format
from storage.models import StoragePool, Volume
from storage.records import records_forget, volume_record_made
from virt import domains as virt_domains
from virt import storage as virt_storage
from virt.clone import copy_volume
from virt.devices import detach_disk
from virt.errors import OperationInvalid, VirtError
from virt.checksums import volume_digest
from virt.types import Connection
from virt.volumes import volume_key
from virt.xml.storage import PoolXML

POOL = Target[StoragePool](
    rows=lambda: StoragePool.objects.select_related("host"), session=lambda pool: host_session(pool.host),
    find=lambda conn, pool: virt_storage.lookup_pool(conn, str(pool.uuid)),
    store=lambda frame: sync.pool_refresh_row(frame.conn, frame.row))
VOLUME = Target[Volume](
    rows=lambda: Volume.objects.select_related("pool", "host"), session=lambda volume: host_session(volume.host),
    find=lambda conn, volume: virt_storage.lookup_volume(conn, str(volume.pool.uuid), volume.name),
    store=lambda frame: sync.pool_refresh_row(frame.conn, frame.row.pool))

_POOL_ACTS: dict[str, Callable[..., str]] = {  # (the pool's handle) -> message
    "build": virt_storage.build_pool,
    "start": virt_storage.start_pool,
    "stop": virt_storage.stop_pool,
    "autostart_on": partial(virt_storage.set_pool_autostart, enabled=True),
    "autostart_off": partial(virt_storage.set_pool_autostart, enabled=False),
    "refresh": virt_storage.refresh_pool,
    "undefine": virt_storage.undefine_pool,
    "delete": virt_storage.delete_pool,
}


def _register_pool_action(action: str) -> None:
    label, act = action.replace("_", " ").capitalize(), _POOL_ACTS[action]

    def run(operation: Operation, report: Report) -> str:
        with operation_frame(operation, report, POOL, label=label) as frame:
            return act(frame.handle)

    operation_handler(f"pool.{action}")(run)


for _action in _POOL_ACTS:
    _register_pool_action(_action)


@operation_handler("pool.define")
def define_pool(operation: Operation, report: Report) -> str:
    """Define, then optionally build, start and autostart. A pool that cannot be built or
    started is undefined again, so that a bad definition leaves nothing behind."""
    args = operation.arguments
    config = PoolXML.from_xml(args["xml"])
    with operation_frame(operation, report, CONNECTED_HOST) as frame:
        frame.report(10, f"Defining {config.name}")
        uuid = virt_storage.define_pool(frame.conn, config)
        handle = virt_storage.lookup_pool(frame.conn, uuid)
        try:
            if args.get("build"):
                frame.report(30, f"Building {config.name}")
                virt_storage.build_pool(handle)
            if args.get("start"):
                frame.report(60, f"Starting {config.name}")
                _start_new_pool(handle, config, built=bool(args.get("build")))
            if args.get("autostart"):
                virt_storage.set_pool_autostart(handle, enabled=True)
        except BaseException:
            virt_storage.undefine_pool(handle)
            raise
        live = virt_storage.refetch_pool(frame.conn, uuid)
        if live is not None:  # the row made at once, so that the user can be sent to its page
            sync.pool_refresh_row(frame.conn, sync.pool_row_for(host=frame.row, summary=live[0]))
    return f"Defined {config.name}" + (" and started it" if args.get("start") else "")


def _start_new_pool(handle, config: PoolXML, *, built: bool) -> None:
    try:
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
    args = operation.arguments
    backing = Volume.objects.select_related("pool").filter(pk=args.get("backing_id")).first()
    with operation_frame(operation, report, POOL) as frame:
        pool = frame.row
        frame.report(20, f"Creating {args['name']}")
        backing_handle = (virt_storage.lookup_volume(frame.conn, str(backing.pool.uuid), backing.name)
                          if backing is not None else None)
        file_pool = pool.pool_type in FILE_POOL_TYPES
        # Image files are thin unless asked (libvirt would allocate a raw one in full); a logical
        # volume or a partition is all there, and has no image format.
        allocation = args.get("allocation")
        made = virt_storage.pool_volume_create(
            frame.handle, name=args["name"], capacity=args["capacity"],
            allocation=allocation if allocation is not None else (0 if file_pool else None),
            fmt=args["format"] if file_pool else None, backing=backing_handle)
        # Made from a pool page: an administrator's, nobody's VM's.
        volume_record_made(host=pool.host, key=volume_key(made), format=args["format"] if file_pool else "raw")
    return f"Created {args['name']} ({args['format']})"


@operation_handler("volume.clone")
def clone_volume(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, VOLUME, label="Clone") as frame:
        volume, name = frame.row, frame.arguments["name"]
        fmt = vetted_copy_format(frame.conn, host=volume.host, volume=frame.handle)
        copy = copy_volume(frame.handle, name, uri=connect_uri(volume.host), fmt=fmt, progress=lambda done: frame.report(
            10 + int(85 * done), f"Copying {volume.name} to {name}"))
        volume_record_made(host=volume.host, key=volume_key(copy), format=fmt)
        return f"Copied {volume.name} to {name}"


@operation_handler("volume.resize")
def resize_volume(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, VOLUME, label="Resize") as frame:
        return virt_storage.resize_volume(frame.handle, capacity=int(frame.arguments["capacity"]),
                                          shrink=bool(frame.arguments.get("shrink")))


@operation_handler("volume.wipe")
def wipe_volume(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, VOLUME, label="Wipe") as frame:
        _refuse_if_used(frame.conn, frame.handle, "wiped")
        return virt_storage.wipe_volume(frame.handle)


@operation_handler("volume.checksum")
def checksum_volume(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, VOLUME, label="Checksum") as frame:
        volume = frame.row
        digest = volume_digest(frame.conn, frame.handle, algorithm="sha256", progress=lambda done, total: frame.report(
            10 + int(88 * done / total) if total else 98, f"Reading {volume.name}"))
        Volume.objects.filter(pk=volume.pk).update(sha256=digest)
        return f"SHA-256 {digest}"


@operation_handler("volume.delete")
def delete_volume(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, VOLUME, label="Delete") as frame:
        volume, conn, handle = frame.row, frame.conn, frame.handle
        users = virt_storage.volume_users(conn, handle)
        if users and not frame.arguments.get("detach"):
            _refuse_if_used(conn, handle, "deleted")
        for user in users:
            frame.report(30, f"Detaching {user.target_dev} from {user.domain_name}")
            _detach_from(frame, user)
        _refuse_if_used(conn, handle, "deleted")  # a running guest may not have released it yet
        frame.report(80, f"Deleting {volume.name}")
        key = volume_key(handle)
        message = virt_storage.delete_volume(handle)
        records_forget(host=volume.host, keys=[key])
        return message


def _detach_from(frame: Frame[Volume], user: virt_storage.VolumeUser) -> None:
    """Take the volume out of one VM that uses it, and show that VM as it is now."""
    domain = virt_domains.lookup(frame.conn, user.domain_uuid)
    detach_disk(domain, target_dev=user.target_dev, live=user.running, persistent=virt_domains.is_persistent(domain))
    for row in Domain.objects.select_related("host").filter(host=frame.row.host, uuid=user.domain_uuid):
        domain_refresh(frame.conn, row)


def _refuse_if_used(conn: Connection, handle, what: str) -> None:
    users = virt_storage.volume_users(conn, handle)
    if users:
        names = ", ".join(sorted({user.domain_name for user in users}))
        raise OperationInvalid(f"The volume is in use by {names}: it was not {what}. Detach it from "
                               f"{'them' if len(users) > 1 else 'it'} first (a running guest must release it).")


@operation_handler("pool.discover")
def discover_sources(operation: Operation, report: Report) -> str:
    """What the server offers, stored with the operation for the new-pool page to list."""
    args = operation.arguments
    with operation_frame(operation, report, CONNECTED_HOST) as frame:
        frame.report(20, f"Asking {args['source_host']}")
        found = virt_storage.find_pool_sources(frame.conn, args["pool_type"], args["source_host"])
    Operation.objects.filter(pk=operation.pk).update(arguments={**args, "found": found})
    what = "export(s)" if args["pool_type"] == "netfs" else "target(s)"
    return f"{args['source_host']} offers {len(found)} {what}"
