from django.db import models

from hosts.cached import CachedHostObject


class VirtualNetwork(CachedHostObject):
    """A libvirt virtual network as last seen on its host (cached state, read-only for now)."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="networks")
    active = models.BooleanField(default=False)
    autostart = models.BooleanField(default=False)
    persistent = models.BooleanField(default=True)

    class Meta(CachedHostObject.Meta):
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="network_unique_uuid_per_host")]
