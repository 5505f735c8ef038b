"""Input for "back up now" and "restore as a new VM", checked against what the user may reach
(accounts.access) and the VM as last seen; the worker checks libvirt's state again when it acts."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from accounts.access import backup_pools_for, restore_pools_for
from backups.models import RestorePoint
from backups.services import backup_state_refusal
from domains.forms import NAME_RULE, validate_domain_name
from domains.models import Domain


class BackupNowForm(forms.Form):
    pool = forms.ChoiceField(label="Backup pool", help_text="A file pool of the VM's host; a chain stays in one pool.")

    def __init__(self, *args, domain: Domain, user, **kwargs) -> None:
        self.domain = domain
        super().__init__(*args, **kwargs)
        self.pools = {pool.name: pool for pool in backup_pools_for(user, domain).order_by("name")}
        self.fields["pool"].choices = [(name, name) for name in self.pools]

    def clean_pool(self):
        return self.pools[self.cleaned_data["pool"]]  # ChoiceField already refused a name not offered

    def clean(self) -> dict:
        cleaned = super().clean()
        if not self.pools:
            raise ValidationError(no_backup_pool_refusal(self.domain))
        refusal = backup_state_refusal(self.domain)
        if refusal:
            raise ValidationError(refusal)
        return cleaned


def no_backup_pool_refusal(domain: Domain) -> str:
    return (f"There is no backup pool for {domain.name} that you may use: backups go into an active dir, fs or "
            "netfs pool of its host that holds its volumes (any such pool, for a host operator). Ask a host operator.")


class RestoreForm(forms.Form):
    name = forms.CharField(max_length=300, label="Name of the new VM", help_text=NAME_RULE, strip=False)
    pool = forms.ChoiceField(label="Pool for its disks")

    def __init__(self, *args, point: RestorePoint, user, **kwargs) -> None:
        self.point = point
        super().__init__(*args, **kwargs)
        self.pools = {pool.name: pool for pool in restore_pools_for(user, point).order_by("name")}
        self.fields["pool"].choices = [(name, name) for name in self.pools]

    def clean_name(self) -> str:
        name = validate_domain_name(self.cleaned_data["name"])
        if Domain.objects.filter(host=self.point.host, name=name).exists():
            raise ValidationError(f"The host {self.point.host} already has a VM named {name!r}.")
        return name

    def clean_pool(self):
        return self.pools[self.cleaned_data["pool"]]

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.point.state != RestorePoint.State.READY:
            raise ValidationError(f"The backup {self.point.name} is {self.point.get_state_display()}: it cannot be "
                                  "restored.")
        return cleaned
