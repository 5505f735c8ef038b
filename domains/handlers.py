"""Operation handlers for VM lifecycle actions: load, act through virt/, store the new state."""
from __future__ import annotations

import time
from collections.abc import Callable

import libvirt
from django.conf import settings

from domains import services
from domains.models import Domain
from hosts.connection import connect_uri
from operations.models import Operation
from operations.registry import Report, operation_handler
from operations.services import operation_record_libvirt_time
from virt import domains as virt_domains
from virt.connection import pool
from virt.errors import NotFound

Act = Callable[[libvirt.virConnect, libvirt.virDomain, dict, Report], str]

_ACTS: dict[str, Act] = {
    "start": lambda conn, dom, args, report: virt_domains.start(dom),
    "start_paused": lambda conn, dom, args, report: virt_domains.start(dom, paused=True),
    "shutdown": lambda conn, dom, args, report: virt_domains.shutdown(
        dom, timeout=float(args.get("timeout", settings.DOMAIN_SHUTDOWN_TIMEOUT)), progress=report),
    "force_off": lambda conn, dom, args, report: virt_domains.force_off(dom),
    "reboot": lambda conn, dom, args, report: virt_domains.reboot(dom),
    "reset": lambda conn, dom, args, report: virt_domains.reset(dom),
    "pause": lambda conn, dom, args, report: virt_domains.pause(dom),
    "resume": lambda conn, dom, args, report: virt_domains.resume(dom),
    "save": lambda conn, dom, args, report: virt_domains.managed_save(dom),
    "discard_save": lambda conn, dom, args, report: virt_domains.remove_managed_save(dom),
    "autostart_on": lambda conn, dom, args, report: virt_domains.set_autostart(dom, enabled=True),
    "autostart_off": lambda conn, dom, args, report: virt_domains.set_autostart(dom, enabled=False),
    "rename": lambda conn, dom, args, report: virt_domains.rename(dom, new_name=args["name"]),
    "delete": lambda conn, dom, args, report: virt_domains.delete(
        conn, dom, with_volumes=bool(args.get("with_volumes")), progress=report),
}


def run_domain_action(action: str, operation: Operation, report: Report) -> str:
    domain = Domain.objects.select_related("host").get(pk=operation.target_id)
    with pool().session(connect_uri(domain.host)) as conn:
        dom = virt_domains.lookup(conn, str(domain.uuid))
        report(10, f"{action.replace('_', ' ').capitalize()}: {domain.name}")
        started = time.perf_counter()
        try:
            message = _ACTS[action](conn, dom, operation.arguments, report)
        finally:
            operation_record_libvirt_time(operation_id=operation.pk,
                                          milliseconds=(time.perf_counter() - started) * 1000)
            _refresh(conn, domain)
    return message


def _refresh(conn: libvirt.virConnect, domain: Domain) -> None:
    """Whatever happened, the database shows the VM as libvirt has it now."""
    try:
        live = virt_domains.read_state(virt_domains.lookup(conn, str(domain.uuid)))
    except NotFound:
        live = None
    except libvirt.libvirtError:
        return  # the host went away mid-action: the listener and the next reconcile catch up
    services.domain_apply_state(domain_id=domain.pk, live=live)


def _register(action: str) -> None:
    operation_handler(f"domain.{action}")(lambda operation, report: run_domain_action(action, operation, report))


for _action in _ACTS:
    _register(_action)
