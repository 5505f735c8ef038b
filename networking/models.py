from django.db import models
from django.urls import reverse

from hosts.cached import CachedHostObject


class NetworkMode(models.TextChoices):
    NAT = "nat", "NAT"
    ROUTE = "route", "Routed"
    OPEN = "open", "Open"
    ISOLATED = "isolated", "Isolated"
    BRIDGE = "bridge", "Bridge to a host bridge"
    MACVTAP = "macvtap", "macvtap (direct)"


class VirtualNetwork(CachedHostObject):
    """A libvirt virtual network as last seen on its host: a cache that reconcile keeps true."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="networks")
    active = models.BooleanField(default=False)
    autostart = models.BooleanField(default=False)
    persistent = models.BooleanField(default=True)
    mode = models.CharField(max_length=16, blank=True, default="")
    bridge = models.CharField(max_length=64, blank=True, default="")
    # The XML summary (virt.xml.network.NetworkDescription): subnets, DHCP ranges, static hosts, DNS.
    details = models.JSONField(default=dict, blank=True)

    class Meta(CachedHostObject.Meta):
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="network_unique_uuid_per_host")]

    def get_absolute_url(self) -> str:
        return reverse("networking:detail", args=[self.pk])

    @property
    def result_link(self) -> dict[str, str]:
        """How an operation's page links to the network it acted on or made (operations know no network)."""
        return {"result_url": self.get_absolute_url(), "result_label": f"the network {self.name}"}

    @property
    def mode_label(self) -> str:
        return NetworkMode(self.mode).label if self.mode in NetworkMode.values else self.mode or "—"

    @property
    def subnets(self) -> list[str]:
        return [f"{ip['address']}/{ip['prefix']}" for ip in self.details.get("ips", [])
                if ip.get("address") and ip.get("prefix") is not None]


class Lease(models.Model):
    """A DHCP lease that a network's dnsmasq gave, as last read."""

    network = models.ForeignKey(VirtualNetwork, on_delete=models.CASCADE, related_name="leases")
    mac = models.CharField(max_length=17, db_index=True)
    ip = models.GenericIPAddressField()
    prefix = models.PositiveSmallIntegerField(null=True, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    expiry = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(max_length=4, default="ipv4")
    client_id = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["ip"]

    def __str__(self) -> str:
        return f"{self.mac} {self.ip}"


class HostInterface(CachedHostObject):
    """A host's network interface (physical, bridge, bond, VLAN) as libvirt's interface and
    node-device APIs last showed it. uuid is derived from the name: interfaces have none."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="interfaces")
    kind = models.CharField(max_length=16, blank=True)
    mac = models.CharField(max_length=64, blank=True)
    active = models.BooleanField(default=False)
    # Addresses, MTU, link speed and state, members (bridge, bond), VLAN tag and parent.
    details = models.JSONField(default=dict, blank=True)

    class Meta(CachedHostObject.Meta):
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="interface_unique_uuid_per_host")]


class NetworkFilter(CachedHostObject):
    """A libvirt nwfilter as last read, with its XML (filters hold no secrets)."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="nwfilters")
    chain = models.CharField(max_length=64, blank=True)
    rule_count = models.PositiveIntegerField(default=0)
    references = models.JSONField(default=list, blank=True)
    xml = models.TextField(blank=True)

    class Meta(CachedHostObject.Meta):
        constraints = [models.UniqueConstraint(fields=["host", "uuid"], name="nwfilter_unique_uuid_per_host")]
