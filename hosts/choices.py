from django.db import models


class Transport(models.TextChoices):
    LOCAL = "local", "Local (qemu:///system)"
    SSH = "ssh", "SSH"
    TLS = "tls", "TLS"
    TCP = "tcp", "TCP (unauthenticated unless SASL is configured)"
    TEST = "test", "libvirt test driver (demo)"


class HostStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not yet contacted"
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    ERROR = "error", "Error"


HOST_STATUS_COLOURS = {
    HostStatus.UNKNOWN: "secondary",
    HostStatus.ONLINE: "success",
    HostStatus.OFFLINE: "danger",
    HostStatus.ERROR: "warning",
}
