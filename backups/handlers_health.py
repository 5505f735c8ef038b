"""The health check of a restore point, as an operation: its files are checked against the catalogue,
then it is booted in a temporary VM with no network until its guest agent answers
(virt/healthcheck.py), and the result, passed or failed, when, how long and why, is recorded on the
point. A failed check fails the operation too, so it shows in the operations log like any failure."""
from __future__ import annotations

from backups.handlers import RESTORE_POINT
from backups.copies import original_chains
from backups.handlers_scratch import scratch_tag
from backups.models import RestorePoint
from backups.services import restore_point_health_record
from operations.frame import operation_frame
from operations.models import Operation
from operations.registry import Report, operation_handler
from virt import backup as virt_backup
from virt import healthcheck
from virt.errors import OperationInvalid, VirtError
from virt.types import Connection


class HealthCheckFailed(OperationInvalid):
    """The point did not boot to an answering guest agent (the reason is recorded on the point)."""


@operation_handler("backup.health_check")
def backup_health_check(operation: Operation, report: Report) -> str:
    with operation_frame(operation, report, RESTORE_POINT) as frame:
        point = frame.row
        try:
            tops = _verified_tops(frame.conn, point, frame.report)
            outcome = healthcheck.health_check(
                frame.conn, domain_xml=point.domain_xml, backup_pool=point.pool_name, tops=tops,
                timeout=float(operation.arguments.get("timeout", 300)), progress=frame.report,
                tag=scratch_tag(operation),
                untrusted=point.definition_from_manifest, emulator=(point.host.capabilities or {}).get("emulator"))
        except VirtError as exc:
            restore_point_health_record(point=point, passed=False, seconds=0.0, note=f"The check could not run: {exc}")
            raise
    restore_point_health_record(point=point, passed=outcome.passed, seconds=outcome.seconds, note=outcome.note)
    if not outcome.passed:
        raise HealthCheckFailed(f"Health check of {point.domain_name}'s backup {point.name} failed: {outcome.note}")
    return f"Health check of {point.domain_name}'s backup {point.name} passed. {outcome.note}"


def _verified_tops(conn: Connection, point: RestorePoint, report: Report) -> dict[str, str]:
    """Each disk's chain checked against the catalogue (virt.backup.verify_chain); the top file of each."""
    tops = {}
    chains = original_chains(point)
    for index, (target, chain) in enumerate(sorted(chains.items())):
        report(2 + 15 * index // len(chains), f"Checking the {len(chain)} file(s) of {target} against the catalogue")
        virt_backup.verify_chain(conn, point.pool_name, chain)
        tops[target] = chain[-1].volume
    return tops
