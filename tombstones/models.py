from django.conf import settings
from django.db import models


class Tombstone(models.Model):
    """What is left of a VM or network that is gone from its host: enough for its old page to say
    what happened, when, by whom, and (a VM that left its row for another) where it is now.
    `viewer_ids`: users who held a grant on the object itself, the only ones besides host viewers
    and administrators who may read this (accounts.access.may_see_tombstone)."""

    kind = models.CharField(max_length=32)  # the model's name, as Operation.target_type: "domain", "virtualnetwork"
    object_id = models.PositiveBigIntegerField()
    uuid = models.UUIDField()
    name = models.CharField(max_length=255)
    host = models.ForeignKey("hosts.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    host_name = models.CharField(max_length=255)
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                           related_name="+")
    how = models.CharField(max_length=255)  # in words: "deleted by operation #12", "gone outside vmsite"
    viewer_ids = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "object_id"], name="tombstone_lookup")]
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"
