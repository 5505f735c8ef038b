"""Operation handlers that read a host's whole inventory: they run in a Celery worker, in the host's
frame (operations.frame); the reconcile they run (inventory/reconcile.py) opens its own connection."""
from __future__ import annotations

from hosts import services
from hosts.choices import HostStatus, Transport
from hosts.connection import host_ssh_files_ensure
from hosts.models import Host
from hosts.ssh import SSHMaterialError, host_key_fingerprints
from hosts.sync import host_mark_unreachable
from hosts.targets import HOST
from inventory.reconcile import host_reconcile
from operations.frame import operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from virt.errors import HostUnavailableReason


@operation_handler("host.connect")
def connect_host(operation: Operation, report: Report) -> str:
    """Prove a newly registered or edited host: pin its SSH key on first contact, connect afresh,
    and read everything it has."""
    with operation_frame(operation, report, HOST) as frame:
        host = frame.row
        if host.transport == Transport.SSH and not host.ssh_host_keys:
            frame.report(10, f"Pinning the SSH host key of {host.address}")
            _pin(host)
            frame.report(20, "Pinned " + ", ".join(host_key_fingerprints(host.ssh_host_keys)))
        host_ssh_files_ensure(host)  # a fresh data folder, or one another machine wrote
        frame.report(30, f"Connecting to {host.uri}")
        diffs = host_reconcile(host=host, fresh=True)
        host.refresh_from_db()
    return (f"Connected to {host.hostname}: libvirt {host.libvirt_version}, hypervisor {host.hypervisor_version}; "
            f"{diffs['domains'].total} VMs, {diffs['pools'].total} pools, {diffs['networks'].total} networks")


@operation_handler("host.sync")
def sync_host(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, HOST) as frame:
        host = frame.row
        if host.transport == Transport.SSH and not host.ssh_host_keys:
            raise HostUnavailableReason("The host's SSH key is not pinned yet: connect it first.",
                                        reason="not connected")
        frame.report(20, f"Reading the inventory of {host.uri}")
        diffs = host_reconcile(host=host)
    return f"{diffs['domains']} VMs, {diffs['pools']} pools, {diffs['networks']} networks"


def _pin(host: Host) -> None:
    try:
        services.host_pin_ssh_keys(host=host)
    except SSHMaterialError as exc:
        reason = str(exc).partition(":")[0]
        host_mark_unreachable(host=host, reason=str(exc), status=HostStatus.OFFLINE)
        raise HostUnavailableReason(str(exc), reason=reason) from exc
