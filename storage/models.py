from django.db import models


class StoragePool(models.Model):
    """A storage pool as last seen on its host (cached state, read-only for now)."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="pools")
    uuid = models.UUIDField()
    name = models.CharField(max_length=255)
    pool_type = models.CharField(max_length=32)
    target_path = models.CharField(max_length=1024, blank=True)
    active = models.BooleanField(default=False)
    autostart = models.BooleanField(default=False)
    capacity = models.PositiveBigIntegerField(default=0)
    allocation = models.PositiveBigIntegerField(default=0)
    available = models.PositiveBigIntegerField(default=0)
    synced_at = models.DateTimeField()
    seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="pool_unique_uuid_per_host")]

    def __str__(self) -> str:
        return self.name

    @property
    def used_percent(self) -> int:
        return round(100 * self.allocation / self.capacity) if self.capacity else 0
