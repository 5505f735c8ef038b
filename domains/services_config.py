"""Writes for changing a VM: each queues one operation (one at a time per VM, see
domains.services.domain_action_enqueue) with arguments a form has already validated."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from domains.models import Domain
from domains.services import domain_action_enqueue
from operations.models import Operation

User = AbstractBaseUser | None


def domain_disk_attach(*, domain: Domain, user: User, pool: str, volume: str, bus: str, readonly: bool,
                       live: bool, persistent: bool, source: str = "existing", new_size: int | None = None,
                       new_format: str = "qcow2") -> Operation:
    """Attach pool/volume; with source "new", make it first (new_size bytes, new_format), as the VM's own."""
    new = {"new": {"capacity": new_size, "format": new_format}} if source == "new" else {}
    return _enqueue(domain, user, "attach_disk", pool=pool, volume=volume, bus=bus, readonly=readonly,
                    live=live, persistent=persistent, **new)


def domain_disk_detach(*, domain: Domain, user: User, target: str, live: bool, persistent: bool) -> Operation:
    return _enqueue(domain, user, "detach_disk", target=target, live=live, persistent=persistent)


def domain_nic_attach(*, domain: Domain, user: User, network: str, model: str, mac: str, no_boot_rom: bool,
                      live: bool, persistent: bool) -> Operation:
    return _enqueue(domain, user, "attach_nic", network=network, model=model, mac=mac or None,
                    boot_rom=not no_boot_rom, live=live, persistent=persistent)


def domain_nic_detach(*, domain: Domain, user: User, mac: str, live: bool, persistent: bool) -> Operation:
    return _enqueue(domain, user, "detach_nic", mac=mac, live=live, persistent=persistent)


def domain_nic_link_set(*, domain: Domain, user: User, mac: str, state: str, live: bool,
                        persistent: bool) -> Operation:
    return _enqueue(domain, user, "set_nic_link", mac=mac, state=state, live=live, persistent=persistent)


def domain_nic_change(*, domain: Domain, user: User, mac: str, network: str, model: str, live: bool,
                      persistent: bool) -> Operation:
    return _enqueue(domain, user, "update_nic", mac=mac, network=network or None, model=model or None, live=live,
                    persistent=persistent)


def domain_nic_filter_set(*, domain: Domain, user: User, mac: str, filter: str, parameters: dict[str, str],
                          live: bool, persistent: bool) -> Operation:
    return _enqueue(domain, user, "set_nic_filter", mac=mac, filter=filter or None, parameters=parameters,
                    live=live, persistent=persistent)


def domain_vcpus_set(*, domain: Domain, user: User, vcpus: int, maximum: int | None, live: bool,
                     persistent: bool) -> Operation:
    return _enqueue(domain, user, "set_vcpus", vcpus=vcpus, maximum=maximum, live=live, persistent=persistent)


def domain_memory_set(*, domain: Domain, user: User, memory_mib: int, maximum_mib: int | None, live: bool,
                      persistent: bool) -> Operation:
    return _enqueue(domain, user, "set_memory", memory_kib=memory_mib * 1024,
                    maximum_kib=maximum_mib * 1024 if maximum_mib else None, live=live, persistent=persistent)


def domain_media_change(*, domain: Domain, user: User, target: str, pool: str, volume: str, live: bool,
                        persistent: bool) -> Operation:
    """Insert pool/volume into the drive, or eject its medium when no volume is given."""
    return _enqueue(domain, user, "change_media", target=target, pool=pool or None, volume=volume or None,
                    live=live, persistent=persistent)


def domain_boot_order_set(*, domain: Domain, user: User, devices: list[str]) -> Operation:
    return _enqueue(domain, user, "set_boot_order", devices=devices)


def domain_metadata_set(*, domain: Domain, user: User, title: str, description: str, live: bool,
                        persistent: bool) -> Operation:
    return _enqueue(domain, user, "set_metadata", title=title, description=description, live=live,
                    persistent=persistent)


def domain_tags_set(*, domain: Domain, user: User, tags: list[str]) -> Operation:
    """Replace the VM's tags (in its definition's <metadata>, and in the running VM's)."""
    return _enqueue(domain, user, "set_tags", tags=tags)


def domain_xml_define(*, domain: Domain, user: User, xml: str) -> Operation:
    return _enqueue(domain, user, "define_xml", xml=xml)


def domain_xml_refresh(*, domain: Domain, user: User) -> Operation:
    return _enqueue(domain, user, "refresh")


def _enqueue(domain: Domain, user: User, action: str, **arguments) -> Operation:
    return domain_action_enqueue(domain=domain, action=action, user=user, arguments=arguments)
