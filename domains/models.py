from django.db import models
from django.urls import reverse

from domains.choices import ACTIVE_STATES, DOMAIN_STATE_COLOURS, DomainState
from hosts.cached import CachedHostObject


class Domain(CachedHostObject):
    """A VM as last seen on its host: a cache that sync and the event listener keep true."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="domains")
    state = models.PositiveSmallIntegerField(choices=DomainState.choices, default=DomainState.NOSTATE)
    state_reason = models.PositiveSmallIntegerField(default=0)
    vcpus = models.PositiveIntegerField(null=True, blank=True)
    memory_kib = models.PositiveBigIntegerField(null=True, blank=True)
    persistent = models.BooleanField(default=True)
    autostart = models.BooleanField(default=False)
    has_managed_save = models.BooleanField(default=False)
    # The XML summary: OS, disks, NICs, graphics (virt.xml.DomainDescription), never a password.
    details = models.JSONField(default=dict, blank=True)
    # The definition and the running configuration as libvirt gave them, without passwords (no
    # VIR_DOMAIN_XML_SECURE); stored by the config handlers and by "Refresh XML". Empty: none.
    xml_inactive = models.TextField(blank=True, default="")
    xml_live = models.TextField(blank=True, default="")
    # A template is never started from the UI; the mark is also kept in the domain's XML metadata.
    is_template = models.BooleanField(default=False)
    tags = models.JSONField(default=list, blank=True)  # vmsite's tags, from the domain's <metadata> (libvirt's truth)
    # The snapshot tree (virt.snapshots.SnapshotInfo as dicts, depth first), stored after each change.
    snapshots = models.JSONField(default=list, blank=True)

    class Meta(CachedHostObject.Meta):
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="domain_unique_uuid_per_host")]
        indexes = [models.Index(fields=["name"]), models.Index(fields=["state", "name"]),
                   models.Index(fields=["host", "name"])]

    def get_absolute_url(self) -> str:
        return reverse("domains:detail", args=[self.pk])

    @property
    def result_link(self) -> dict[str, str]:
        """How an operation's page links to the VM it acted on or made (operations know no VM)."""
        return {"result_url": self.get_absolute_url(), "result_label": self.name}

    @property
    def state_colour(self) -> str:
        return DOMAIN_STATE_COLOURS.get(self.state, "secondary")

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def memory_mib(self) -> int | None:
        """The memory the VM has now (its balloon's size when it runs), as vcpus is its current count."""
        return None if self.memory_kib is None else self.memory_kib // 1024

    @property
    def max_memory_mib(self) -> int | None:
        maximum = self.details.get("memory_kib")
        return None if maximum is None else maximum // 1024

    @property
    def lacks_memory_balloon(self) -> bool:
        """Its XML has no balloon device: the memory of the running VM cannot change."""
        return self.details.get("has_memory_balloon") is False
