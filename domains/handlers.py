"""Operation handlers for VM lifecycle actions: their own work through virt/, inside the frame that
finds the VM and stores its state as libvirt has it now (operations.frame)."""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from accounts.access import volume_keys_deletable_with
from domains.models import Domain
from domains.sync import domain_refresh
from hosts.connection import host_session
from operations.frame import Frame, Target, operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from virt import domains as virt_domains
from virt import storage as virt_storage
from virt.types import Connection, VolumeHandle
from virt.volumes import volume_key


DOMAIN = Target[Domain](
    rows=lambda: Domain.objects.select_related("host"), session=lambda domain: host_session(domain.host),
    find=lambda conn, domain: virt_domains.lookup(conn, str(domain.uuid)),
    store=lambda frame: domain_refresh(frame.conn, frame.row))

# An action: the frame of its VM -> message.
Act = Callable[[Frame[Domain]], str]

_ACTS: dict[str, Act] = {
    "start": lambda frame: virt_domains.start(frame.handle),
    "start_paused": lambda frame: virt_domains.start(frame.handle, paused=True),
    "shutdown": lambda frame: virt_domains.shutdown(
        frame.handle, timeout=float(frame.arguments.get("timeout", settings.DOMAIN_SHUTDOWN_TIMEOUT)),
        progress=frame.report),
    "force_off": lambda frame: virt_domains.force_off(frame.handle),
    "reboot": lambda frame: virt_domains.reboot(frame.handle),
    "reset": lambda frame: virt_domains.reset(frame.handle),
    "pause": lambda frame: virt_domains.pause(frame.handle),
    "resume": lambda frame: virt_domains.resume(frame.handle),
    "save": lambda frame: virt_domains.managed_save(frame.handle),
    "discard_save": lambda frame: virt_domains.remove_managed_save(frame.handle),
    "autostart_on": lambda frame: virt_domains.set_autostart(frame.handle, enabled=True),
    "autostart_off": lambda frame: virt_domains.set_autostart(frame.handle, enabled=False),
    "rename": lambda frame: virt_domains.rename(frame.handle, new_name=frame.arguments["name"]),
    "delete": lambda frame: virt_domains.delete(
        frame.conn, frame.handle, with_volumes=bool(frame.arguments.get("with_volumes")), progress=frame.report,
        deletable=lambda volume: deletable_with(frame.conn, frame.row, volume)),
}


def deletable_with(conn: Connection, domain: Domain, volume: VolumeHandle) -> bool:
    """Whether "delete with its volumes" may delete this one (the rule is accounts.access's)."""
    key = volume_key(volume)
    used_elsewhere = {key} if any(user.domain_uuid != str(domain.uuid)
                                  for user in virt_storage.volume_users(conn, volume)) else set()
    return key in volume_keys_deletable_with(domain, used_elsewhere=used_elsewhere)


def run_domain_action(action: str, operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, DOMAIN, label=action.replace("_", " ").capitalize()) as frame:
        return _ACTS[action](frame)


def _register(action: str) -> None:
    operation_handler(f"domain.{action}")(lambda operation, report: run_domain_action(action, operation, report))


for _action in _ACTS:
    _register(_action)
