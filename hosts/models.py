from django.db import models
from django.utils import timezone

from hosts.choices import HOST_STATUS_COLOURS, HostStatus, Transport
from hosts.uri import build_uri


class Host(models.Model):
    """A registered libvirt host. The URI is derived from validated parts, never stored as text."""

    name = models.CharField(max_length=64, unique=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    address = models.CharField(max_length=253, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    user = models.CharField(max_length=32, blank=True)
    enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=HostStatus.choices, default=HostStatus.UNKNOWN)
    status_reason = models.CharField(max_length=500, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    libvirt_version = models.CharField(max_length=32, blank=True)
    hypervisor_version = models.CharField(max_length=32, blank=True)
    capabilities = models.JSONField(default=dict, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def uri(self) -> str:
        return build_uri(transport=self.transport, address=self.address, port=self.port, user=self.user)

    @property
    def status_colour(self) -> str:
        return HOST_STATUS_COLOURS[self.status]
