from django.conf import settings
from django.db import models

from hosts.cached import CachedHostObject
from storage.choices import UploadState


class StoragePool(CachedHostObject):
    """A storage pool as last seen on its host (cached state)."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="pools")
    pool_type = models.CharField(max_length=32)
    target_path = models.CharField(max_length=1024, blank=True)
    active = models.BooleanField(default=False)
    autostart = models.BooleanField(default=False)
    capacity = models.PositiveBigIntegerField(default=0)
    allocation = models.PositiveBigIntegerField(default=0)
    available = models.PositiveBigIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)  # source host, folder, devices, volume group

    class Meta(CachedHostObject.Meta):
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="pool_unique_uuid_per_host")]

    @property
    def used_percent(self) -> int:
        return round(100 * self.allocation / self.capacity) if self.capacity else 0


class VolumeRecord(models.Model):
    """What vmsite itself knows of a volume, kept while the volume exists, whatever its contents say
    and whether or not its pool is active (the cached Volume row goes when its pool stops).

    `format` is the one vmsite chose (create, clone, upload) or saw first: disks are defined with it
    and images are read with it, never with a format probed from the contents. `owner_uuid` is the VM
    the volume was made for (a VM keeps its UUID across migrations); empty: nobody's, made
    by an administrator or host operator. `shareable`: an administrator allowed it on several VMs."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="volume_records")
    key = models.CharField(max_length=1024)
    format = models.CharField(max_length=16, blank=True)
    owner_uuid = models.UUIDField(null=True, blank=True)
    shareable = models.BooleanField(default=False)
    cloud_init_seed = models.BooleanField(default=False)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "key"], name="volume_record_unique_key_per_host")]

    def __str__(self) -> str:
        return self.key


class VolumeGift(models.Model):
    """A host operator or an administrator gave a volume to a VM (by the VM's UUID): that VM's own
    users may then attach or insert it, as they may its own volumes."""

    record = models.ForeignKey(VolumeRecord, on_delete=models.CASCADE, related_name="gifts")
    domain_uuid = models.UUIDField()
    given_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    given_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record", "domain_uuid"], name="volume_gift_once_per_vm")]


class Volume(models.Model):
    """A volume of an active pool as last seen. Its identity on the host is libvirt's key
    (the path, for file volumes); its name is unique in its pool."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="volumes")
    pool = models.ForeignKey(StoragePool, on_delete=models.CASCADE, related_name="volumes")
    key = models.CharField(max_length=1024)
    name = models.CharField(max_length=255)
    path = models.CharField(max_length=1024, blank=True)
    vol_type = models.CharField(max_length=16, default="file")
    format = models.CharField(max_length=16, blank=True)
    capacity = models.PositiveBigIntegerField(default=0)
    allocation = models.PositiveBigIntegerField(default=0)
    backing_path = models.CharField(max_length=1024, blank=True)
    # Kept by vmsite across reconciles: an upload in progress or cut off, and the last checksum.
    upload_state = models.CharField(max_length=16, choices=UploadState.choices, blank=True)
    upload_note = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    record = models.ForeignKey(VolumeRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    synced_at = models.DateTimeField()
    seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["host", "key"], name="volume_unique_key_per_host")]

    def __str__(self) -> str:
        return f"{self.pool.name}/{self.name}" if self.pool_id else self.name

    @property
    def is_iso(self) -> bool:
        return self.format == "iso" or self.name.lower().endswith(".iso")

    @property
    def recorded_format(self) -> str:
        """The format disks are defined with: vmsite's record, never the probed `format`."""
        return self.record.format if self.record_id else ""

    @property
    def is_cloud_init_seed(self) -> bool:
        """A seed ISO holds password hashes and keys. Seeds made before records were kept are known
        by the name the wizard gives them."""
        return bool(self.record_id and self.record.cloud_init_seed) or self.name.lower().endswith("-cidata.iso")

    @property
    def used_percent(self) -> int:
        return min(100, round(100 * self.allocation / self.capacity)) if self.capacity else 0
