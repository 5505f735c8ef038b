"""Creating a VM: volumes first, then the definition; anything created is removed if a step fails."""
from __future__ import annotations

import uuid

from domains.cloudinit import cloud_config, meta_data, seed_iso, user_data
from domains.models import Domain
from domains.sync import host_vms_and_disks_reconcile
from hosts.models import Host
from hosts.targets import CONNECTED_HOST
from operations.frame import operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from operations.services import operation_record_result
from storage.disks import sharing, vetted_volume
from storage.records import volume_record_made
from virt.builder import DiskSpec, DomainSpec, NicSpec, build_domain_xml
from virt.devices import require_free_macs
from virt import domains as virt_domains
from virt.types import Connection, VolumeHandle
from virt.volumes import (
    delete_volume, guest_volume_create, require_free_domain_name, upload_bytes, volume_key, volume_path,
)

GIB = 2**30


@operation_handler("domain.create")
def create_domain(operation: Operation, report: Report) -> str:
    args = operation.arguments
    created: list[tuple[VolumeHandle, str, bool]] = []  # (volume, its format, a cloud-init seed?)
    with operation_frame(operation, report, CONNECTED_HOST) as frame:
        conn, host = frame.conn, frame.row
        require_free_domain_name(conn, args["name"])
        if args.get("nic_mac") and args.get("nic_kind") != "none":
            require_free_macs(conn, [args["nic_mac"]])
        try:
            disks = _disks(conn, host, args, created, frame.report)
            frame.report(70, "Defining the VM" + (" and starting it" if args.get("start_now") else ""))
            dom = virt_domains.define(conn, build_domain_xml(_spec(host, args, disks)),
                                      autostart=bool(args.get("autostart")))
        except Exception:
            for volume, _fmt, _seed in created:  # nothing half-made is left behind
                delete_volume(volume)
            raise
        vm_uuid = virt_domains.domain_uuid(dom)
        for volume, fmt, seed in created:  # the volumes made for the VM are the VM's
            volume_record_made(host=host, key=volume_key(volume), format=fmt, owner_uuid=vm_uuid,
                               cloud_init_seed=seed)
        if args.get("start_now"):  # a VM that fails to start stays defined, with its disks
            virt_domains.start(dom)
    host_vms_and_disks_reconcile(host=host)
    created_row = Domain.objects.filter(host=host, uuid=vm_uuid).first()
    if created_row is not None:
        operation_record_result(operation_id=operation.pk, **created_row.result_link)
    return f"Created {args['name']}" + (" and started it" if args.get("start_now") else "")


def _disks(conn: Connection, host: Host, args: dict, created: list, report: Report) -> list[DiskSpec]:
    """Existing volumes are used with their recorded format, after their headers are checked, and
    only when no other VM uses them (unless shareable); new ones are recorded as the new VM's."""
    disks = []
    bus, cache = args["disk_bus"], args["disk_cache"]
    if args["disk_source"] == "new":
        report(20, f"Creating a {args['disk_size_gib']} GiB {args['disk_format']} volume")
        volume = guest_volume_create(conn, args["disk_pool"], f"{args['name']}-disk0.{args['disk_format']}",
                               capacity_bytes=args["disk_size_gib"] * GIB, fmt=args["disk_format"])
        created.append((volume, args["disk_format"], False))
        disks.append(DiskSpec(path=volume_path(volume), format=args["disk_format"], bus=bus, cache=cache))
    elif args["disk_source"] == "existing":
        volume, record = vetted_volume(conn, host=host, pool_name=args["disk_pool"], volume_name=args["disk_volume"])
        sharing(conn, volume=volume, record=record, domain_uuid="", readonly=False)
        disks.append(DiskSpec(path=volume.path, format=volume.format, bus=bus, cache=cache))
    cdrom_bus = "sata" if bus == "virtio" else bus
    if args.get("cdrom_volume"):
        iso, record = vetted_volume(conn, host=host, pool_name=args["cdrom_pool"], volume_name=args["cdrom_volume"])
        sharing(conn, volume=iso, record=record, domain_uuid="", readonly=True)
        disks.append(DiskSpec(path=iso.path, device="cdrom", format=iso.format, bus=cdrom_bus))
    if args.get("cloud_init"):
        report(45, "Writing the cloud-init seed image")
        seed = _seed_volume(conn, args)
        created.append((seed, "raw", True))
        disks.append(DiskSpec(path=volume_path(seed), device="cdrom", format="raw", bus=cdrom_bus))
    return disks


def _seed_volume(conn: Connection, args: dict) -> VolumeHandle:
    hostname = args.get("ci_hostname") or args["name"]
    config = cloud_config(hostname=hostname, user=args["ci_user"], ssh_keys=args.get("ci_ssh_keys") or [],
                          password_hash=args.get("ci_password_hash") or None)
    image = seed_iso(user_data_text=user_data(config, args.get("ci_user_data") or ""),
                     meta_data_text=meta_data(instance_id=str(uuid.uuid4()), hostname=hostname))
    volume = guest_volume_create(conn, args.get("disk_pool") or args["cdrom_pool"], f"{args['name']}-cidata.iso",
                           capacity_bytes=len(image), fmt="raw")
    try:
        upload_bytes(conn, volume, image)
    except Exception:
        delete_volume(volume)
        raise
    return volume


def _spec(host: Host, args: dict, disks: list[DiskSpec]) -> DomainSpec:
    caps = host.capabilities or {}
    boot = [args["boot_first"]] + [device for device in ("hd", "cdrom") if device != args["boot_first"]]
    return DomainSpec(
        name=args["name"], virt_type="kvm" if caps.get("kvm") else "qemu", arch=caps.get("arch") or "x86_64",
        machine=args["machine"], emulator=caps.get("emulator"), firmware=args["firmware"],
        vcpus=args["vcpus"], max_vcpus=args["max_vcpus"], memory_kib=args["memory_mib"] * 1024,
        max_memory_kib=args["max_memory_mib"] * 1024, cpu_mode=args["cpu_mode"], cpu_model=args.get("cpu_model"),
        cpu_disabled_features=_cpu_features_to_disable(caps, args["cpu_mode"]),
        disks=disks, nics=_nics(args), boot=boot, vnc=args["vnc"], vnc_listen=_vnc_listen(host),
        serial=args["serial"], title=args.get("title") or None, description=args.get("description") or None,
    )


def _cpu_features_to_disable(caps: dict, cpu_mode: str) -> list[str]:
    """On AMD hosts, KVM only emulates Intel's arch-capabilities MSR, and QEMU 7.2 aborts when a
    (nested) KVM refuses to set it ("failed to set MSR 0x10a"). AMD CPUs have no such MSR, so a
    guest loses nothing when it is hidden."""
    if caps.get("cpu_vendor") == "AMD" and cpu_mode in ("host-passthrough", "host-model"):
        return ["arch-capabilities"]
    return []


def _nics(args: dict) -> list[NicSpec]:
    kind = args["nic_kind"]
    if kind == "none":
        return []
    source = {"network": args.get("nic_network"), "bridge": args.get("nic_bridge"),
              "direct": args.get("nic_direct_dev")}[kind]
    return [NicSpec(kind=kind, source=source, model=args["nic_model"], mac=args.get("nic_mac") or None,
                    direct_mode=args.get("nic_direct_mode") or "bridge", boot_rom=args.get("nic_boot_rom", True))]


def _vnc_listen(host: Host) -> str:
    """Generated guests listen on the host's loopback; a harness host's loopback is its own 127.0.0.N."""
    if host.address.startswith("127."):
        return host.address
    return "127.0.0.1"
