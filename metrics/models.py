from django.db import models


class Resolution(models.IntegerChoices):
    FINE = 0, "every few seconds (last hour)"
    MINUTE = 1, "per minute (last day)"


class Sample(models.Model):
    """One point of a VM's graphs (domain set) or of its host's (domain null: the host itself, and
    the sums of its VMs). Rates are per second over the interval that ends at `at`."""

    host = models.ForeignKey("hosts.Host", on_delete=models.CASCADE, related_name="+")
    domain = models.ForeignKey("domains.Domain", on_delete=models.CASCADE, null=True, related_name="+")
    resolution = models.PositiveSmallIntegerField(choices=Resolution.choices, default=Resolution.FINE)
    at = models.DateTimeField()
    cpu_percent = models.FloatField()
    memory_kib = models.PositiveBigIntegerField()
    disk_read_bps = models.FloatField(default=0)
    disk_write_bps = models.FloatField(default=0)
    disk_read_iops = models.FloatField(default=0)
    disk_write_iops = models.FloatField(default=0)
    net_rx_bps = models.FloatField(default=0)
    net_tx_bps = models.FloatField(default=0)
    # Host rows only: the sums over its running VMs at the same moment.
    vms_cpu_percent = models.FloatField(default=0)
    vms_memory_kib = models.PositiveBigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["domain", "resolution", "at"], name="sample_domain_series"),
                   models.Index(fields=["host", "resolution", "at"], name="sample_host_series")]
