from django.db import models

from hosts.cached import CachedHostObject


class StoragePool(CachedHostObject):
    """A storage pool as last seen on its host (cached state, read-only for now)."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="pools")
    pool_type = models.CharField(max_length=32)
    target_path = models.CharField(max_length=1024, blank=True)
    active = models.BooleanField(default=False)
    autostart = models.BooleanField(default=False)
    capacity = models.PositiveBigIntegerField(default=0)
    allocation = models.PositiveBigIntegerField(default=0)
    available = models.PositiveBigIntegerField(default=0)

    class Meta(CachedHostObject.Meta):
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="pool_unique_uuid_per_host")]

    @property
    def used_percent(self) -> int:
        return round(100 * self.allocation / self.capacity) if self.capacity else 0
