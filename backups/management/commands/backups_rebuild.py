"""Rebuild the backup catalogue of one pool from the manifests in it (after the database was lost or
restored from an older dump): `manage.py backups_rebuild HOST POOL`."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.manifest import MANIFEST_SUFFIX, catalogue_rebuild
from hosts.connection import host_session
from hosts.models import Host
from virt import backup as virt_backup
from virt.errors import VirtError


class Command(BaseCommand):
    help = ("Add to the catalogue the restore points whose manifests are in a backup pool of a host and that "
            "the catalogue lacks (points already in it are left as they are).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("host", help="the host's name in vmsite")
        parser.add_argument("pool", help="the backup pool's name on that host")

    def handle(self, *args, host: str, pool: str, **options) -> None:
        row = Host.objects.filter(name=host).first()
        if row is None:
            raise CommandError(f"No host named {host!r}: see manage.py host_list.")
        try:
            with host_session(row) as conn:
                manifests = virt_backup.read_files(conn, pool, suffix=MANIFEST_SUFFIX)
        except VirtError as exc:
            raise CommandError(f"Could not read the manifests in {pool} on {host}: {exc}") from None
        added, skipped = catalogue_rebuild(host=row, pool_name=pool, manifests=manifests)
        for point in added:
            self.stdout.write(f"added {point.domain_name} {point.kind} {point.name}")
        for line in skipped:
            self.stderr.write(f"skipped {line}")
        self.stdout.write(f"{len(manifests)} manifest(s) in {pool}: {len(added)} restore point(s) added, "
                          f"{len(skipped)} skipped.")
