from django.db import models
from django.utils import timezone

from hosts.choices import HOST_STATUS_COLOURS, HostStatus, Transport
from hosts.uri import build_uri


class SSHKey(models.Model):
    """An SSH key pair. Its private half is sealed (hosts/credentials.py): only a process holding the
    key-encryption key opens it, and only while a connection needs it."""

    name = models.CharField(max_length=64, unique=True)
    private_key_sealed = models.TextField(blank=True)
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"


class Host(models.Model):
    """A registered libvirt host. The URI is derived from validated parts, never stored as text."""

    name = models.CharField(max_length=64, unique=True)
    transport = models.CharField(max_length=8, choices=Transport.choices)
    address = models.CharField(max_length=253, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    username = models.CharField(max_length=32, blank=True)
    ssh_key = models.ForeignKey(SSHKey, null=True, blank=True, on_delete=models.PROTECT, related_name="hosts")
    # The host's SSH keys as known_hosts lines, pinned on first connection.
    ssh_host_keys = models.TextField(blank=True)
    # TLS client files (libvirt's pkipath: cacert.pem, clientcert.pem, clientkey.pem), sealed.
    tls_ca_sealed = models.TextField(blank=True)
    tls_cert_sealed = models.TextField(blank=True)
    tls_key_sealed = models.TextField(blank=True)
    # The libvirtd SASL login (auth_tcp / auth_tls = "sasl"); the password sealed.
    sasl_username = models.CharField(max_length=255, blank=True)
    sasl_password_sealed = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=HostStatus.choices, default=HostStatus.UNKNOWN)
    status_reason = models.CharField(max_length=500, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    libvirt_version = models.CharField(max_length=32, blank=True)
    hypervisor_version = models.CharField(max_length=32, blank=True)
    cpu_count = models.PositiveIntegerField(null=True, blank=True)
    memory_kib = models.PositiveBigIntegerField(null=True, blank=True)
    capabilities = models.JSONField(default=dict, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def uri(self) -> str:
        return build_uri(transport=self.transport, address=self.address, port=self.port, user=self.username)

    @property
    def status_colour(self) -> str:
        return HOST_STATUS_COLOURS[self.status]

    @property
    def has_tls_files(self) -> bool:
        return bool(self.tls_ca_sealed and self.tls_cert_sealed and self.tls_key_sealed)

    @property
    def has_sasl_login(self) -> bool:
        return bool(self.sasl_username and self.sasl_password_sealed)
