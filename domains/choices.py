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
