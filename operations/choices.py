from django.db import models


class OperationState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


OPERATION_STATE_COLOURS = {
    OperationState.PENDING: "secondary",
    OperationState.RUNNING: "primary",
    OperationState.SUCCEEDED: "success",
    OperationState.FAILED: "danger",
    OperationState.CANCELLED: "warning",
}

FINISHED_STATES = (OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELLED)
