"""Input for restoring a VM in place from one of its backups, and for attaching one disk of a backup
to the running VM; checked against what the user may reach (accounts.access) and the VM as last seen."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from accounts.access import backup_pools_for
from backups.models import RestorePoint
from backups.restores import attach_refusal, in_place_refusal
from domains.models import Domain


def _source_choices(point: RestorePoint) -> tuple[list[tuple[str, str]], dict]:
    copies = {str(copy.pk): copy for copy in point.copies.select_related("host")}
    choices = [("", f"{point.pool_name} on {point.host}")] + [
        (pk, f"the copy in {copy.pool_name} on {copy.host}") for pk, copy in copies.items()]
    return choices, copies


def _ready(point: RestorePoint) -> None:
    if point.state != RestorePoint.State.READY:
        raise ValidationError(f"The backup {point.name} is {point.get_state_display()}: it cannot be restored.")


class RestoreInPlaceForm(forms.Form):
    source = forms.ChoiceField(required=False, label="Read the backup from")
    confirm = forms.BooleanField(required=False, label="Overwrite the VM's disks with this backup")

    def __init__(self, *args, point: RestorePoint, domain: Domain, **kwargs) -> None:
        self.point, self.domain = point, domain
        super().__init__(*args, **kwargs)
        self.fields["source"].choices, self.copies = _source_choices(point)

    def clean_source(self):
        return self.copies.get(self.cleaned_data.get("source") or "")

    def clean(self) -> dict:
        cleaned = super().clean()
        _ready(self.point)
        refusal = in_place_refusal(self.domain)
        if refusal:
            raise ValidationError(refusal)
        if not cleaned.get("confirm"):
            raise ValidationError(f"Confirm that {self.domain.name}'s disks are to be overwritten with the backup "
                                  f"{self.point.name}: what they hold now is lost.")
        return cleaned


def no_attach_pool_refusal(domain: Domain) -> str:
    """Why a user with no pool to copy a backup's disk into (backup_pools_for) cannot attach one."""
    return f"There is no file pool of {domain.host} you may make {domain.name}'s volumes in: ask a host operator."


class AttachDiskForm(forms.Form):
    disk = forms.ChoiceField(label="Disk of the backup")
    pool = forms.ChoiceField(label="Pool for its copy", help_text="A file pool of the VM's host you may make its "
                                                                  "volumes in; the copy is deleted on detach.")

    def __init__(self, *args, point: RestorePoint, domain: Domain, user, **kwargs) -> None:
        self.point, self.domain = point, domain
        super().__init__(*args, **kwargs)
        self.fields["disk"].choices = [(disk.target, disk.target) for disk in point.disks.all()]
        self.pools = {pool.name: pool for pool in backup_pools_for(user, domain).filter(active=True).order_by("name")}
        self.fields["pool"].choices = [(name, name) for name in self.pools]

    def clean_pool(self):
        return self.pools[self.cleaned_data["pool"]]

    def clean(self) -> dict:
        cleaned = super().clean()
        _ready(self.point)
        if not self.pools:
            raise ValidationError(no_attach_pool_refusal(self.domain))
        refusal = attach_refusal(self.domain)
        if refusal:
            raise ValidationError(refusal)
        return cleaned
