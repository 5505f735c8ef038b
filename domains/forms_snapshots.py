"""Input for snapshots, clones and templates, checked against the VM as last seen. The worker
checks libvirt's state again when it acts, with the same words (virt.snapshots.snapshot_refusal)."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from domains.forms import NAME_RULE, validate_domain_name
from domains.models import Domain
from virt.snapshots import snapshot_refusal
from virt.xml.base import check_xml_text

WITH_MEMORY, DISK_ONLY = "memory", "disk"


class _DomainForm(forms.Form):
    def __init__(self, *args, domain: Domain, user=None, **kwargs) -> None:
        self.domain = domain
        self.user = user
        super().__init__(*args, **kwargs)


class SnapshotCreateForm(_DomainForm):
    name = forms.CharField(max_length=300, label="Snapshot name", help_text=NAME_RULE, strip=False)
    description = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    mode = forms.ChoiceField(label="What to save", initial=WITH_MEMORY, widget=forms.RadioSelect, choices=[
        (WITH_MEMORY, "Disks and memory (the VM must be running; reverting resumes it where it was)"),
        (DISK_ONLY, "Disks only (the VM must be shut off)"),
    ])

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("mode", WITH_MEMORY if self.domain.is_active else DISK_ONLY)

    def clean_name(self) -> str:
        name = validate_domain_name(self.cleaned_data["name"])
        if name in snapshot_names(self.domain):
            raise ValidationError(f"{self.domain.name} already has a snapshot named {name!r}.")
        return name

    def clean_description(self) -> str:
        try:
            return check_xml_text(self.cleaned_data["description"])
        except ValueError:
            raise ValidationError("The description holds a control character; use plain text.") from None

    def clean(self) -> dict:
        cleaned = super().clean()
        if "mode" in cleaned:
            disks = [(disk.get("target"), disk.get("source"), disk.get("format"))
                     for disk in self.domain.details.get("disks", []) if disk.get("device") in (None, "disk")]
            refusal = snapshot_refusal(running=self.domain.is_active, with_memory=cleaned["mode"] == WITH_MEMORY,
                                       disks=disks)
            if refusal:
                raise ValidationError(refusal)
        return cleaned

    @property
    def with_memory(self) -> bool:
        return self.cleaned_data["mode"] == WITH_MEMORY


class SnapshotRevertForm(_DomainForm):
    name = forms.CharField(max_length=300, widget=forms.HiddenInput, strip=False)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if name not in snapshot_names(self.domain):
            raise ValidationError(f"{self.domain.name} has no snapshot named {name!r}.")
        return name


class SnapshotDeleteForm(SnapshotRevertForm):
    with_children = forms.BooleanField(required=False, label="Also delete the snapshots below it",
                                       help_text="Otherwise they are kept and hang from its parent.")


class CloneForm(_DomainForm):
    name = forms.CharField(max_length=300, label="Name of the new VM", help_text=NAME_RULE, strip=False)

    def clean_name(self) -> str:
        name = validate_domain_name(self.cleaned_data["name"])
        if Domain.objects.filter(host=self.domain.host, name=name).exists():
            raise ValidationError(f"The host {self.domain.host} already has a VM named {name!r}.")
        return name

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.domain.is_active:
            raise ValidationError("Shut the VM off before cloning it: its disks must not change while they are copied.")
        return cleaned


class TemplateForm(_DomainForm):
    template = forms.BooleanField(required=False)  # checked: mark; unchecked: unmark

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("template"):
            if self.domain.is_template:
                raise ValidationError(f"{self.domain.name} is already a template.")
            if self.domain.is_active:
                raise ValidationError("Shut the VM off before marking it as a template.")
            if not self.domain.persistent:
                raise ValidationError("Only a defined (persistent) VM can be a template.")
        elif not self.domain.is_template:
            raise ValidationError(f"{self.domain.name} is not a template.")
        return cleaned


def snapshot_names(domain: Domain) -> set[str]:
    return {snapshot["name"] for snapshot in domain.snapshots}
