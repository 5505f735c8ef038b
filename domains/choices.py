from django.db import models


class DomainState(models.IntegerChoices):
    """libvirt's virDomainState values."""

    NOSTATE = 0, "No state"
    RUNNING = 1, "Running"
    BLOCKED = 2, "Blocked"
    PAUSED = 3, "Paused"
    SHUTDOWN = 4, "Shutting down"
    SHUTOFF = 5, "Shut off"
    CRASHED = 6, "Crashed"
    PMSUSPENDED = 7, "Suspended (PM)"


DOMAIN_STATE_COLOURS = {
    DomainState.NOSTATE: "secondary",
    DomainState.RUNNING: "success",
    DomainState.BLOCKED: "info",
    DomainState.PAUSED: "warning",
    DomainState.SHUTDOWN: "info",
    DomainState.SHUTOFF: "secondary",
    DomainState.CRASHED: "danger",
    DomainState.PMSUSPENDED: "warning",
}

ACTIVE_STATES = {DomainState.RUNNING, DomainState.BLOCKED, DomainState.PAUSED, DomainState.SHUTDOWN,
                 DomainState.PMSUSPENDED, DomainState.CRASHED}


# The NIC models QEMU offers a guest of each architecture, as libvirt names them. libvirt 9 does not
# list NIC models in its domain capabilities, so the host's cached capabilities (its architecture)
# choose the list; the wizard and "Add NIC" both offer it, first the default.
NIC_MODEL_LABELS = {"virtio": "virtio (paravirtual: the fastest, needs a virtio driver)",
                    "e1000e": "e1000e (Intel 82574, PCI Express)", "e1000": "e1000 (Intel 82540EM, PCI)",
                    "rtl8139": "rtl8139 (Realtek, PCI)"}
X86_NIC_MODELS = ("virtio", "e1000e", "e1000", "rtl8139")
NIC_MODELS_BY_ARCH = {"x86_64": X86_NIC_MODELS, "i686": X86_NIC_MODELS, "aarch64": ("virtio", "e1000e"),
                      "ppc64le": ("virtio", "e1000"), "s390x": ("virtio",)}
DEFAULT_NIC_MODELS = X86_NIC_MODELS  # a host whose architecture is not known yet


def nic_model_choices(capabilities: dict | None) -> list[tuple[str, str]]:
    """The NIC models a VM of a host with these (cached) capabilities may have, as form choices."""
    models = NIC_MODELS_BY_ARCH.get((capabilities or {}).get("arch"), DEFAULT_NIC_MODELS)
    return [(model, NIC_MODEL_LABELS.get(model, model)) for model in models]
