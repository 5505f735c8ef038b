from django.db import models


class VirtualNetwork(models.Model):
    """A libvirt virtual network as last seen on its host (cached state, read-only for now)."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="networks")
    uuid = models.UUIDField()
    name = models.CharField(max_length=255)
    active = models.BooleanField(default=False)
    autostart = models.BooleanField(default=False)
    persistent = models.BooleanField(default=True)
    synced_at = models.DateTimeField()
    seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="network_unique_uuid_per_host")]

    def __str__(self) -> str:
        return self.name
