"""Operation handlers that change a VM's devices and settings: their own work through
virt.devices, inside the VM's frame (operations.frame), which also stores its XML whatever
happened."""
from __future__ import annotations

from collections.abc import Callable

from domains.handlers import DOMAIN
from domains.models import Domain
from domains.sync import domain_xml_store
from operations.frame import Frame, operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from storage.disks import sharing, vetted_volume
from storage.models import StoragePool
from storage.records import records_forget, volume_record_made
from storage.sync import pool_refresh_row
from virt import devices
from virt.types import Connection, DomainHandle, VolumeHandle
from virt.volumes import delete_volume, guest_volume_create, volume_key

Change = Callable[[Connection, DomainHandle, dict, Domain], str]  # (connection, VM, arguments, row) -> message


def _scope(args: dict) -> dict:
    return {"live": bool(args.get("live")), "persistent": bool(args.get("persistent"))}


def _attach_disk(conn: Connection, dom: DomainHandle, args: dict, domain: Domain) -> str:
    made = _make_new_volume(conn, args, domain) if args.get("new") else None
    try:
        volume, record = vetted_volume(conn, host=domain.host, pool_name=args["pool"], volume_name=args["volume"])
        readonly = bool(args.get("readonly"))
        shareable = sharing(conn, volume=volume, record=record, domain_uuid=str(domain.uuid), readonly=readonly)
        attached = devices.attach_disk(conn, dom, volume=volume, bus=args["bus"], readonly=readonly,
                                       shareable=shareable, **_scope(args))
    except Exception:
        if made is not None:  # nothing half-made is left behind
            records_forget(host=domain.host, keys=[volume_key(made)])
            delete_volume(made)
        raise
    finally:
        if made is not None:
            _refresh_pool_row(conn, domain, args["pool"])
    if made is None:
        return attached
    return f"Created {args['volume']} ({args['new']['format']}); {attached[0].lower()}{attached[1:]}"


def _make_new_volume(conn: Connection, args: dict, domain: Domain) -> VolumeHandle:
    """The new disk's volume, recorded as the VM's own (its owner's users may use it, and it goes with the VM)."""
    fmt = args["new"]["format"]
    made = guest_volume_create(conn, args["pool"], args["volume"], capacity_bytes=int(args["new"]["capacity"]), fmt=fmt)
    volume_record_made(host=domain.host, key=volume_key(made), format=fmt, owner_uuid=domain.uuid)
    return made


def _refresh_pool_row(conn: Connection, domain: Domain, pool_name: str) -> None:
    pool = StoragePool.objects.filter(host=domain.host, name=pool_name).first()
    if pool is not None:
        pool_refresh_row(conn, pool)


def _change_media(conn: Connection, dom: DomainHandle, args: dict, domain: Domain) -> str:
    volume = None
    if args.get("volume"):
        volume, record = vetted_volume(conn, host=domain.host, pool_name=args["pool"], volume_name=args["volume"])
        sharing(conn, volume=volume, record=record, domain_uuid=str(domain.uuid), readonly=True)
    return devices.change_media(conn, dom, target_dev=args["target"], volume=volume, **_scope(args))


_CHANGES: dict[str, Change] = {
    "attach_disk": _attach_disk,
    "detach_disk": lambda conn, dom, args, domain: devices.detach_disk(dom, target_dev=args["target"], **_scope(args)),
    "attach_nic": lambda conn, dom, args, domain: devices.attach_nic(
        conn, dom, network=args["network"], model=args["model"], mac=args.get("mac"),
        boot_rom=bool(args.get("boot_rom")), **_scope(args)),
    "detach_nic": lambda conn, dom, args, domain: devices.detach_nic(dom, mac=args["mac"], **_scope(args)),
    "set_nic_link": lambda conn, dom, args, domain: devices.update_nic(
        conn, dom, mac=args["mac"], link_state=args["state"], **_scope(args)),
    "update_nic": lambda conn, dom, args, domain: devices.update_nic(
        conn, dom, mac=args["mac"], network=args.get("network"), model=args.get("model"), **_scope(args)),
    "set_nic_filter": lambda conn, dom, args, domain: devices.update_nic(
        conn, dom, mac=args["mac"], filter_name=args.get("filter"), filter_parameters=args.get("parameters") or {},
        **_scope(args)),
    "set_vcpus": lambda conn, dom, args, domain: devices.set_vcpus(
        dom, count=int(args["vcpus"]), maximum=args.get("maximum"), **_scope(args)),
    "set_memory": lambda conn, dom, args, domain: devices.set_memory(
        dom, memory_kib=int(args["memory_kib"]), maximum_kib=args.get("maximum_kib"), **_scope(args)),
    "change_media": _change_media,
    "set_boot_order": lambda conn, dom, args, domain: devices.set_boot_order(conn, dom, devices=list(args["devices"])),
    "set_metadata": lambda conn, dom, args, domain: devices.set_metadata(
        dom, title=args.get("title", ""), description=args.get("description", ""), **_scope(args)),
    "set_tags": lambda conn, dom, args, domain: devices.set_tags(dom, tags=list(args["tags"])),
    "define_xml": lambda conn, dom, args, domain: devices.define_xml(
        conn, dom, xml=args["xml"], emulator=(domain.host.capabilities or {}).get("emulator")),
    "refresh": lambda conn, dom, args, domain: "Read the VM's state and XML",
}


def run_domain_change(action: str, operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, DOMAIN, label=config_label(action), stores=(store_xml,)) as frame:
        return _CHANGES[action](frame.conn, frame.handle, frame.arguments, frame.row)


def store_xml(frame: Frame[Domain]) -> None:
    """The VM's inactive and live XML, as the XML pages show them."""
    inactive, live = devices.read_xml(frame.handle)
    domain_xml_store(domain_id=frame.row.pk, inactive=inactive, live=live)


def config_label(action: str) -> str:
    return action.replace("_", " ").capitalize()


def _register(action: str) -> None:
    operation_handler(f"domain.{action}")(lambda operation, report: run_domain_change(action, operation, report))


for _action in _CHANGES:
    _register(_action)
