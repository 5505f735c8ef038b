from django.conf import settings
from django.db import models
from django.utils import timezone

from operations.choices import FINISHED_STATES, OPERATION_STATE_COLOURS, OperationState


RESULT_SHOWN_SECONDS = 60


class Operation(models.Model):
    """One change to a host, saved before it is queued: the audit log and the progress bar."""

    kind = models.CharField(max_length=64, db_index=True)
    # The target, named generically so that hosts, domains, pools and networks all fit.
    target_type = models.CharField(max_length=32)
    target_id = models.PositiveBigIntegerField()
    target_label = models.CharField(max_length=255)
    # The page that shows what the operation made or acted on, and the words of the link to it
    # ("vm1", "the network default"), recorded by the app that owns it: operations/ knows no object app.
    result_url = models.CharField(max_length=255, blank=True)
    result_label = models.CharField(max_length=255, blank=True)
    host = models.ForeignKey("hosts.Host", null=True, blank=True, on_delete=models.SET_NULL, related_name="operations")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    arguments = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=OperationState.choices, default=OperationState.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    # Set by a user while the operation runs; handlers that can stop midway poll it.
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=255, blank=True)
    # Milliseconds spent in the action's own libvirt calls: tells a slow host from a slow vmsite.
    libvirt_ms = models.PositiveIntegerField(null=True, blank=True)
    seq = models.PositiveBigIntegerField(default=0)  # bumped on every change, for live pages
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When its task message was last handed to the queue (None: never; the sweep sends it again
    # if no worker has claimed it a while after, operations_requeue_lost).
    queued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "heartbeat_at"]),
            models.Index(fields=["target_type", "target_id", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.target_label} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def shows_status(self) -> bool:
        """Pages show its progress box while it runs and for a minute after, so its result is seen."""
        return not self.is_finished or (self.finished_at is not None and
                                         (timezone.now() - self.finished_at).total_seconds() < RESULT_SHOWN_SECONDS)

    @property
    def state_colour(self) -> str:
        return OPERATION_STATE_COLOURS[self.state]

    @property
    def duration(self) -> str:
        """How long it ran, as people read it ("0.43 s", "12 s", "3 min 05 s", "1 h 02 min"); "" if it has not."""
        if not (self.started_at and self.finished_at):
            return ""
        seconds = (self.finished_at - self.started_at).total_seconds()
        if seconds < 10:
            return f"{seconds:.2f} s"
        minutes, whole_seconds = divmod(round(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        if hours:
            return f"{hours} h {minutes:02d} min"
        return f"{minutes} min {whole_seconds:02d} s" if minutes else f"{whole_seconds} s"
