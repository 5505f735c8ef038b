"""Migrating a VM to another registered host: the form that checks the request, and the service
that queues it."""
from __future__ import annotations

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from accounts.access import OPERATE, hosts_for
from domains.models import Domain
from domains.services import domain_action_enqueue
from hosts.choices import HostStatus, Transport
from hosts.models import Host
from operations.models import Operation

MAX_BANDWIDTH_MIB = 100_000
# The options the handler reads, as the form cleans them.
OPTION_FIELDS = ("live", "persist_destination", "undefine_source", "copy_storage", "bandwidth_mib",
                 "auto_converge", "postcopy")


def _movable_to(user: AbstractBaseUser | None):
    """Hosts this user may move VMs to: enabled, real (not the test driver), operated by them. Hosts
    they may not see are never offered, named or described (accounts.access.hosts_for)."""
    if user is None:
        return Host.objects.none()
    return hosts_for(user, OPERATE).filter(enabled=True).exclude(transport=Transport.TEST)


def migration_destinations(domain: Domain, user: AbstractBaseUser | None):
    """Hosts the VM could go to: those the user may move VMs to, other than its own."""
    return _movable_to(user).exclude(pk=domain.host_id).order_by("name")


def migration_peers(host: Host, user: AbstractBaseUser | None):
    """Hosts a new VM on `host` could later move to, as this user: the wizard's CPU default."""
    return _movable_to(user).exclude(pk=host.pk).order_by("name")


class MigrateForm(forms.Form):
    destination = forms.ModelChoiceField(
        queryset=Host.objects.none(), label="Destination host",
        error_messages={"required": "Choose the host to move the VM to.",
                        "invalid_choice": "Choose one of the hosts offered: enabled hosts you operate."})
    live = forms.BooleanField(required=False, label="Live: keep the VM running while it moves")
    persist_destination = forms.BooleanField(required=False, initial=True,
                                             label="Define the VM on the destination (persistent)")
    undefine_source = forms.BooleanField(required=False, initial=True, label="Remove its definition from the source")
    copy_storage = forms.BooleanField(required=False, label="Copy its disks (storage not shared between the hosts)",
                                      help_text="The destination needs an active storage pool at the same folder.")
    bandwidth_mib = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_BANDWIDTH_MIB, label="Bandwidth limit (MiB/s)",
        help_text="Empty: no limit.",
        error_messages={"min_value": "The bandwidth limit is at least 1 MiB/s.",
                        "max_value": f"The bandwidth limit is at most {MAX_BANDWIDTH_MIB} MiB/s.",
                        "invalid": "Enter the bandwidth limit as a whole number of MiB/s."})
    auto_converge = forms.BooleanField(required=False, label="Auto-converge: slow the VM down if it dirties memory "
                                                             "faster than it can be sent")
    postcopy = forms.BooleanField(required=False, label="Post-copy: switch to the destination after the first "
                                                        "pass and fetch the rest on demand")

    def __init__(self, *args, domain: Domain, user: AbstractBaseUser | None = None, **kwargs) -> None:
        self.domain = domain
        super().__init__(*args, **kwargs)
        # The VM's own host validates too (when the user operates it), to get a message that says so.
        self.fields["destination"].queryset = _movable_to(user)
        self.fields["live"].initial = domain.is_active
        self.destination_hosts = migration_destinations(domain, user)

    def clean_destination(self) -> Host:
        host = self.cleaned_data["destination"]
        if host.pk == self.domain.host_id:
            raise ValidationError(f"The VM is already on {host.name}: choose another host.")
        if host.status != HostStatus.ONLINE:
            reason = f" ({host.status_reason})" if host.status_reason else ""
            raise ValidationError(f"{host.name} is {host.get_status_display().lower()}{reason}: "
                                  "bring it back online or choose another host.")
        return host

    def clean(self) -> dict:
        cleaned = super().clean()
        if cleaned.get("postcopy") and not cleaned.get("live"):
            self.add_error("postcopy", "Post-copy needs a live migration: tick Live too, or untick post-copy.")
        if not self.domain.is_active:
            self._check_offline(cleaned)
        return cleaned

    def _check_offline(self, cleaned: dict) -> None:
        if cleaned.get("live"):
            self.add_error("live", "The VM is not running, so it cannot move live: untick Live to move its "
                                   "definition only.")
        if cleaned.get("copy_storage"):
            self.add_error("copy_storage", "A shut off VM moves as its definition only: its disks cannot be "
                                           "copied with it. Start it first, or copy the disks separately.")
        if not cleaned.get("persist_destination"):
            self.add_error("persist_destination", "A shut off VM is moved by defining it on the destination: "
                                                  "keep this ticked.")

    def options(self) -> dict:
        return {name: self.cleaned_data[name] for name in OPTION_FIELDS}


def domain_migrate_enqueue(*, domain: Domain, destination: Host, options: dict,
                           user: AbstractBaseUser | None) -> Operation:
    """Queue the migration of `domain` to `destination`. Raises DomainBusy like every VM action."""
    arguments = {"destination_host_id": destination.pk, "destination": destination.name,
                 **{name: options.get(name) for name in OPTION_FIELDS}}
    return domain_action_enqueue(domain=domain, action="migrate", user=user, arguments=arguments)
