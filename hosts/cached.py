from django.db import models


class CachedHostObject(models.Model):
    """Something a host has (a VM, a pool, a network), as last seen: a cache that reconcile and
    the event listener keep true. Subclasses add the host foreign key and their own columns."""

    uuid = models.UUIDField()
    name = models.CharField(max_length=255)
    synced_at = models.DateTimeField()  # when this row last changed; Host.synced_at: last full reconcile
    # Bumped on every change, so that live clients can tell when they missed one.
    seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
