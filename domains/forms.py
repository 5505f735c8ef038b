import re

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from accounts.access import domains_for

from domains.actions import BULK_ACTIONS
from domains.models import Domain

NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
NAME_RULE = "Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."


def validate_domain_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ValidationError(NAME_RULE)
    return name


class RenameForm(forms.Form):
    name = forms.CharField(max_length=300, label="New name", help_text=NAME_RULE, strip=False)

    def __init__(self, *args, domain: Domain, **kwargs) -> None:
        self.domain = domain
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = validate_domain_name(self.cleaned_data["name"])
        if Domain.objects.filter(host=self.domain.host, name=name).exclude(pk=self.domain.pk).exists():
            # Said without naming the host or the other VM: a VM-scoped user may see neither.
            raise ValidationError(f"The name {name!r} is taken on this VM's host: choose another.")
        if self.domain.is_active:
            raise ValidationError("Shut the VM off before renaming it.")
        return name


class DeleteForm(forms.Form):
    with_volumes = forms.BooleanField(required=False, label="Also delete its disk images")
    confirm_name = forms.CharField(max_length=300, label="Type the VM's name to confirm")

    def __init__(self, *args, domain: Domain, **kwargs) -> None:
        self.domain = domain
        super().__init__(*args, **kwargs)

    def clean_confirm_name(self) -> str:
        typed = self.cleaned_data["confirm_name"]
        if typed != self.domain.name:
            raise ValidationError(f"Type {self.domain.name} exactly to confirm.")
        return typed


ID_RE = re.compile(r"\A[0-9]{1,18}\Z")


class IdsField(forms.ModelMultipleChoiceField):
    """Rows chosen by id, each checked to be an id before the database sees it: Django sends the
    list to an SQL IN (...) unchecked, and SQLite fails on an integer past 64 bits.

    With `skip_unknown`, ids outside the queryset (rows that do not exist, or that the user may not
    see) are left out instead of refused, all alike, so that the answer tells neither apart."""

    def __init__(self, *args, skip_unknown: bool = False, **kwargs) -> None:
        self.skip_unknown = skip_unknown
        super().__init__(*args, **kwargs)

    def clean(self, value):
        for pk in value if isinstance(value, (list, tuple)) else []:
            if not ID_RE.match(str(pk)):
                raise ValidationError(self.error_messages["invalid_pk_value"], code="invalid_pk_value",
                                      params={"pk": pk})
        return super().clean(value)

    def _check_values(self, value):
        if self.skip_unknown:
            return self.queryset.filter(pk__in=set(value))
        return super()._check_values(value)


class BulkActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(action.name, action.label) for action in BULK_ACTIONS])
    domains = IdsField(queryset=Domain.objects.none(), skip_unknown=True,
                       error_messages={"required": "Select at least one VM."})

    def __init__(self, *args, user: AbstractBaseUser, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["domains"].queryset = domains_for(user).select_related("host")

    def unseen_count(self) -> int:
        """How many of the ids sent are VMs that do not exist or that the user may not see."""
        return len(set(map(str, self.data.getlist("domains")))) - len(self.cleaned_data["domains"])
