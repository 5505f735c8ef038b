"""Operation handlers for VM lifecycle actions: load, act through virt/, store the new state."""
from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings

from accounts.access import volume_keys_deletable_with
from domains.models import Domain
from domains.sync import domain_refresh
from hosts.connection import connect_uri
from operations.models import Operation
from operations.registry import Report, operation_handler
from operations.services import operation_record_libvirt_time
from virt import domains as virt_domains
from virt import storage as virt_storage
from virt.connection import pool
from virt.errors import VirtError, translated
from virt.types import Connection, DomainHandle, VolumeHandle
from virt.volumes import volume_key

# An action: (connection, libvirt handle, operation arguments, progress report, cached row) -> message.
Act = Callable[[Connection, DomainHandle, dict, Report, Domain], str]
# A store: records something more of the VM after an action (its XML, its snapshot tree).
Store = Callable[[Connection, DomainHandle, Domain], None]

_ACTS: dict[str, Act] = {
    "start": lambda conn, dom, args, report, row: virt_domains.start(dom),
    "start_paused": lambda conn, dom, args, report, row: virt_domains.start(dom, paused=True),
    "shutdown": lambda conn, dom, args, report, row: virt_domains.shutdown(
        dom, timeout=float(args.get("timeout", settings.DOMAIN_SHUTDOWN_TIMEOUT)), progress=report),
    "force_off": lambda conn, dom, args, report, row: virt_domains.force_off(dom),
    "reboot": lambda conn, dom, args, report, row: virt_domains.reboot(dom),
    "reset": lambda conn, dom, args, report, row: virt_domains.reset(dom),
    "pause": lambda conn, dom, args, report, row: virt_domains.pause(dom),
    "resume": lambda conn, dom, args, report, row: virt_domains.resume(dom),
    "save": lambda conn, dom, args, report, row: virt_domains.managed_save(dom),
    "discard_save": lambda conn, dom, args, report, row: virt_domains.remove_managed_save(dom),
    "autostart_on": lambda conn, dom, args, report, row: virt_domains.set_autostart(dom, enabled=True),
    "autostart_off": lambda conn, dom, args, report, row: virt_domains.set_autostart(dom, enabled=False),
    "rename": lambda conn, dom, args, report, row: virt_domains.rename(dom, new_name=args["name"]),
    "delete": lambda conn, dom, args, report, row: virt_domains.delete(
        conn, dom, with_volumes=bool(args.get("with_volumes")), progress=report,
        deletable=lambda volume: deletable_with(conn, row, volume)),
}


def deletable_with(conn: Connection, domain: Domain, volume: VolumeHandle) -> bool:
    """Whether "delete with its volumes" may delete this one (the rule is accounts.access's)."""
    key = volume_key(volume)
    used_elsewhere = {key} if any(user.domain_uuid != str(domain.uuid)
                                  for user in virt_storage.volume_users(conn, volume)) else set()
    return key in volume_keys_deletable_with(domain, used_elsewhere=used_elsewhere)


def run_domain_action(action: str, operation: Operation, report: Report) -> str:
    return act_on_domain(operation, report, action.replace("_", " ").capitalize(), _ACTS[action])


def act_on_domain(operation: Operation, report: Report, label: str, act: Act, *, stores: tuple[Store, ...] = ()
                  ) -> str:
    """The frame of every action on one VM: find it, act, time the libvirt work, then, whatever
    happened, store what the action may have changed and the VM's state as libvirt has it now."""
    domain = Domain.objects.select_related("host").get(pk=operation.target_id)
    with pool().session(connect_uri(domain.host)) as conn:
        dom = virt_domains.lookup(conn, str(domain.uuid))
        report(10, f"{label}: {domain.name}")
        started = time.perf_counter()
        try:
            return act(conn, dom, operation.arguments, report, domain)
        finally:
            operation_record_libvirt_time(operation_id=operation.pk,
                                          milliseconds=(time.perf_counter() - started) * 1000)
            for store in stores:
                _quietly(store, conn, dom, domain)
            domain_refresh(conn, domain)


def _quietly(store: Store, conn: Connection, dom: DomainHandle, domain: Domain) -> None:
    try:
        with translated():
            store(conn, dom, domain)
    except VirtError:
        pass  # the VM or its host went away: domain_refresh removes or keeps the row as it should


def _register(action: str) -> None:
    operation_handler(f"domain.{action}")(lambda operation, report: run_domain_action(action, operation, report))


for _action in _ACTS:
    _register(_action)
