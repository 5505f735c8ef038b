"""Operation handlers for hosts: they run in a Celery worker and talk to libvirt through virt/."""
from __future__ import annotations

from hosts import services
from hosts.models import Host
from operations.models import Operation
from operations.registry import Report, operation_handler
from virt.connection import pool
from virt.errors import HostUnavailable
from virt.inventory import host_facts, list_domains


@operation_handler("host.sync")
def sync_host(operation: Operation, report: Report) -> str:
    host = Host.objects.get(pk=operation.target_id)
    report(10, f"Connecting to {host.uri}")
    try:
        with pool().session(host.uri) as conn:
            report(40, "Reading domains")
            facts = host_facts(conn)
            domains = list_domains(conn)
    except HostUnavailable as exc:
        services.host_mark_offline(host=host, reason=str(exc))
        raise
    report(80, "Saving inventory")
    counts = services.host_apply_inventory(host=host, facts=facts, domains=domains)
    return (
        f"{counts['total']} domains on {facts.hostname}: {counts['new']} new, "
        f"{counts['changed']} changed, {counts['gone']} gone"
    )
