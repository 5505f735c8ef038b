"""The backup catalogue: restore points and the file each of their disks is in.

A restore point belongs to a VM by UUID (it outlives the VM's row: a deleted VM's backups stay) and
to the host whose backup pool holds its files. An incremental point's files are qcow2 overlays of
its parent's, so a point is restorable while its chain back to a full one is. Each point also has a
manifest file next to its files (backups/manifest.py), from which the catalogue can be rebuilt.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone


class RestorePoint(models.Model):
    class Kind(models.TextChoices):
        FULL = "full", "full"
        INCREMENTAL = "incremental", "incremental"

    class State(models.TextChoices):
        READY = "ready", "ready"  # written and checksummed (a failed backup leaves no point at all)
        MISSING = "missing", "files missing"  # a file of it was not found where the catalogue says

    class Health(models.TextChoices):
        PASSED = "passed", "passed"
        FAILED = "failed", "failed"

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="restore_points")
    domain_uuid = models.UUIDField(db_index=True)
    domain_name = models.CharField(max_length=255)  # when it was taken
    name = models.CharField(max_length=64)  # a UTC time stamp, unique per VM: 20261204-131500
    kind = models.CharField(max_length=16, choices=Kind.choices)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    chain = models.UUIDField()  # the same for a full point and every incremental point after it
    checkpoint = models.CharField(max_length=128, blank=True)  # empty: none (a shut-off copy, raw disks)
    pool_name = models.CharField(max_length=255)  # the backup pool on `host` that holds its files
    manifest = models.CharField(max_length=255)  # the manifest's volume name in that pool
    consistency = models.CharField(max_length=255)  # frozen by the agent, crash-consistent, or shut off
    note = models.TextField(blank=True)  # why a full backup was made where an incremental was asked
    domain_xml = models.TextField()  # the VM's definition (with console passwords), to define a restored copy from
    # True when the point came back from a manifest file (catalogue_rebuild): its definition is then
    # checked against the hand-edit allowlist before a restore defines anything from it.
    definition_from_manifest = models.BooleanField(default=False)
    seconds = models.FloatField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.READY)
    created_at = models.DateTimeField(default=timezone.now)
    # The latest health check (backup.health_check): booted from its files in a temporary VM with no
    # network until the guest agent answered, or not; empty: never checked.
    health = models.CharField(max_length=16, choices=Health.choices, blank=True)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    health_seconds = models.FloatField(null=True, blank=True)
    health_note = models.TextField(blank=True)  # what the check saw, or why it failed

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["domain_uuid", "name"], name="restore_point_unique_name")]
        indexes = [models.Index(fields=["domain_uuid", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.domain_name} {self.kind} backup {self.name}"

    @property
    def size(self) -> int:
        return sum(disk.size for disk in self.disks.all())

    def lineage(self) -> list[RestorePoint]:
        """The chain this point needs, its full point first and itself last."""
        points = [self]
        while points[-1].parent_id is not None:
            points.append(points[-1].parent)
        return points[::-1]


class RestorePointDisk(models.Model):
    """One disk of a restore point: the file it is in, as written."""

    point = models.ForeignKey(RestorePoint, on_delete=models.CASCADE, related_name="disks")
    target = models.CharField(max_length=32)  # vda, sdb...
    source = models.CharField(max_length=1024)  # the disk's image when the point was taken
    volume = models.CharField(max_length=255)  # the file's volume name in the point's pool
    path = models.CharField(max_length=1024)
    format = models.CharField(max_length=16)
    capacity = models.PositiveBigIntegerField()  # the disk's size as the guest sees it
    size = models.PositiveBigIntegerField()  # the file's size
    checksum = models.CharField(max_length=80)  # "<algorithm>:<hex>" (virt/checksums.py)

    class Meta:
        ordering = ["target"]
        constraints = [models.UniqueConstraint(fields=["point", "target"], name="restore_point_disk_unique_target")]

    def __str__(self) -> str:
        return f"{self.target} of {self.point}"


class BackupJob(models.Model):
    """Backups on a schedule: which VMs of one host (evaluated at each run), into which pool of that
    host, when (a cron expression, run by celery beat through its PeriodicTask), how often a new
    chain starts (every N runs, or every N days per VM), which restore points per VM to keep
    (backups/retention.py), and whether each new point is health-checked."""

    class FullEvery(models.TextChoices):
        RUNS = "runs", "runs"
        DAYS = "days", "days"

    class Selection(models.TextChoices):
        CHOSEN = "chosen", "the chosen VMs"
        HOST = "host", "every VM of the host"
        PATTERN = "pattern", "VMs whose name matches a pattern"
        TAG = "tag", "VMs with a tag"

    name = models.CharField(max_length=64, unique=True)
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="backup_jobs")
    selection = models.CharField(max_length=16, choices=Selection.choices, default=Selection.CHOSEN)
    domains = models.ManyToManyField("domains.Domain", blank=True, related_name="backup_jobs")
    pattern = models.CharField(max_length=255, blank=True)  # shell-style (fnmatch), case-sensitive
    tag = models.CharField(max_length=32, blank=True)  # a VM's tag (Domain.tags), for Selection.TAG
    pool_name = models.CharField(max_length=255)
    schedule = models.CharField(max_length=100)  # cron: minute hour day-of-month month day-of-week
    full_every = models.PositiveIntegerField(default=7)  # in full_every_unit; 1 run: every run is a full backup
    full_every_unit = models.CharField(max_length=8, choices=FullEvery.choices, default=FullEvery.RUNS)
    keep_last = models.PositiveIntegerField(default=7)  # restore points per VM (and what they depend on)
    keep_daily = models.PositiveIntegerField(default=0)  # plus the newest point of each of the last N days...
    keep_weekly = models.PositiveIntegerField(default=0)  # ...weeks
    keep_monthly = models.PositiveIntegerField(default=0)  # ...months (that have a point)
    health_check = models.BooleanField(default=False)  # each new point is booted in a temporary VM after it is saved
    # A second copy of each new restore point, in a pool of another host (backups/copies.py); none if null.
    copy_host = models.ForeignKey("hosts.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    copy_pool_name = models.CharField(max_length=255, blank=True)
    enabled = models.BooleanField(default=True)
    runs = models.PositiveIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_note = models.TextField(blank=True)
    last_run_skipped = models.JSONField(default=list, blank=True)  # ["<vm>: why", ...]: on the dashboard until the next run
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"backup job {self.name}"


class RestorePointCopy(models.Model):
    """A restore point's second copy: its files and manifest in a pool of another host (a backup job's
    copy pool), copied through storage streams. An incremental's copy names its parent's copy as its
    backing file, so its bytes (and checksums) differ from the original's: each disk's are kept here."""

    point = models.ForeignKey(RestorePoint, on_delete=models.CASCADE, related_name="copies")
    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="restore_point_copies")
    pool_name = models.CharField(max_length=255)
    manifest = models.CharField(max_length=255)  # the copy's own manifest in that pool
    checksums = models.JSONField(default=dict)  # disk target -> the checksum of its file's copy
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["point", "host", "pool_name"], name="restore_point_copy_unique")]

    def __str__(self) -> str:
        return f"copy of {self.point} in {self.pool_name} on {self.host}"


class AttachedBackupDisk(models.Model):
    """One disk of a restore point, copied into a volume (the VM's own) and attached to the running VM
    read-only, to copy files from; detached and deleted with a button."""

    domain = models.ForeignKey("domains.Domain", on_delete=models.CASCADE, related_name="attached_backup_disks")
    point = models.ForeignKey(RestorePoint, null=True, on_delete=models.SET_NULL, related_name="+")
    point_label = models.CharField(max_length=255)  # "vda of <point>", kept if the point is pruned
    device = models.CharField(max_length=32)  # its target in the VM: vdb...
    pool_name = models.CharField(max_length=255)  # a pool of the VM's host
    volume = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.point_label} attached to {self.domain} as {self.device}"
