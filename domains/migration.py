"""Migrating a VM to another registered host: the form that checks the request, and the service
that queues it."""
from __future__ import annotations

import posixpath

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError

from accounts.access import OPERATE, hosts_for
from domains.models import Domain
from domains.services import domain_action_enqueue
from hosts.choices import HostStatus, Transport
from hosts.models import Host
from operations.models import Operation
from storage.models import StoragePool
from virt.migration_checks import SNAPSHOTS_IN_COPIED_DISKS, cpu_mode, local_devices, passthrough_refusal

MAX_BANDWIDTH_MIB = 100_000
# The options the handler reads, as the form cleans them.
OPTION_FIELDS = ("live", "persist_destination", "undefine_source", "copy_storage", "bandwidth_mib",
                 "auto_converge", "postcopy", "move_snapshots", "keep_source_disks")


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
    move_snapshots = forms.BooleanField(
        required=False, label="Move its snapshots: redefine their metadata on the destination",
        help_text="libvirt cannot migrate a VM that has snapshots. Their data stays inside the disk images, so "
                  "this needs storage both hosts share.")
    keep_source_disks = forms.BooleanField(
        required=False, label="Keep the source's copies of its disks after a copy-storage migration",
        help_text="Unticked, they are removed once the VM runs on the destination. Kept, the source pool lists "
                  "them as this VM's.")

    def __init__(self, *args, domain: Domain, user: AbstractBaseUser | None = None, **kwargs) -> None:
        self.domain = domain
        super().__init__(*args, **kwargs)
        # The VM's own host validates too (when the user operates it), to get a message that says so.
        self.fields["destination"].queryset = _movable_to(user)
        self.fields["live"].initial = domain.is_active
        self.destination_hosts = migration_destinations(domain, user)

    def notices(self) -> list[str]:
        """What the page says before any destination is chosen: what this VM has that needs a choice
        (the same checks refuse the form if it is not made)."""
        said = []
        count = len(self.domain.snapshots or [])
        if count:
            said.append(f"{self.domain.name} has {count} snapshot{'s' if count > 1 else ''}: libvirt cannot migrate "
                        "a VM with snapshots. Tick \"Move its snapshots\" (over storage both hosts share), or "
                        "delete them first.")
        xml = self.domain.xml_live or self.domain.xml_inactive
        if xml and local_devices(xml):
            said.append(f"{self.domain.name} uses {', '.join(local_devices(xml))}: remove it before migrating.")
        if xml and self.domain.is_active and cpu_mode(xml) == "host-passthrough":
            said.append("Its CPU is host-passthrough: it can move live only to a host with the same CPU.")
        return said

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
        if cleaned.get("keep_source_disks") and not cleaned.get("copy_storage"):
            self.add_error("keep_source_disks", "Only a copy-storage migration leaves copies behind: tick \"Copy its "
                                                "disks\" too, or untick this.")
        self._check_snapshots(cleaned)
        destination = cleaned.get("destination")
        if isinstance(destination, Host):
            self._check_storage(cleaned, destination)
            self._check_definition(destination)
        return cleaned

    def _check_snapshots(self, cleaned: dict) -> None:
        names = [snapshot.get("name", "?") for snapshot in self.domain.snapshots or []]
        if not names:
            return
        listed = f"{len(names)} snapshot{'s' if len(names) > 1 else ''} ({', '.join(names[:5])}" + \
            (", …)" if len(names) > 5 else ")")
        if cleaned.get("copy_storage"):
            self.add_error("copy_storage", f"{self.domain.name} has {listed}. " + SNAPSHOTS_IN_COPIED_DISKS)
        elif not cleaned.get("move_snapshots"):
            self.add_error("move_snapshots", f"{self.domain.name} has {listed}, and libvirt cannot migrate a VM with "
                                             "snapshots: tick this to move their metadata with it, or delete them "
                                             "first.")

    def _check_storage(self, cleaned: dict, destination: Host) -> None:
        """Each disk needs a pool at the same folder on the destination: to be copied into, or (not
        copied) to be found there, shared. Known from the database; the worker checks again."""
        if not self.domain.is_active:
            return  # a shut off VM moves its definition only; its disks are the admin's to move
        copy = cleaned.get("copy_storage")
        pools_here = {pool.target_path: pool for pool in StoragePool.objects.filter(host_id=self.domain.host_id)}
        pools_there = {pool.target_path: pool for pool in StoragePool.objects.filter(host=destination, active=True)}
        for path in _disk_paths(self.domain):
            folder = posixpath.dirname(path)
            source_pool, there = pools_here.get(folder), pools_there.get(folder)
            if copy and there is None:
                self.add_error("copy_storage", f"{destination.name} has no active storage pool at {folder} for the "
                                               f"disk {path}: define one there (a dir pool at that folder), or "
                                               "choose another host.")
            elif copy and source_pool is not None and there.pool_type != source_pool.pool_type:
                self.add_error("copy_storage", f"The disk {path} is in a {source_pool.pool_type} pool here, and the "
                                               f"pool at {folder} on {destination.name} is {there.pool_type}: the "
                                               "copy needs the same kind of pool.")
            elif not copy and there is None:
                self.add_error("copy_storage", f"The disk {path} is not copied, so {destination.name} must see it at "
                                               f"the same path, on storage both hosts share, and it has no active "
                                               f"pool at {folder}: tick this to copy the disk, or define that shared "
                                               "pool there.")

    def _check_definition(self, destination: Host) -> None:
        """What the VM's XML (as last stored) says cannot move. The worker asks libvirt again."""
        xml = self.domain.xml_live or self.domain.xml_inactive
        if not xml:
            return
        devices = local_devices(xml)
        if devices:
            self.add_error(None, f"{self.domain.name} uses {', '.join(devices)}, which cannot follow it to another "
                                 "host: remove it first.")
        if self.domain.is_active and cpu_mode(xml) == "host-passthrough":
            refusal = passthrough_refusal(source_cpu=_host_cpu(self.domain.host), destination_cpu=_host_cpu(destination))
            if refusal:
                self.add_error("destination", refusal)

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


def _disk_paths(domain: Domain) -> list[str]:
    disks = domain.details.get("disks") or []
    return [disk["source"] for disk in disks if disk.get("device") == "disk" and disk.get("source")]


def _host_cpu(host: Host) -> str:
    caps = host.capabilities or {}
    return " ".join(part for part in (caps.get("cpu_vendor"), caps.get("cpu_model")) if part)


def domain_migrate_enqueue(*, domain: Domain, destination: Host, options: dict,
                           user: AbstractBaseUser | None) -> Operation:
    """Queue the migration of `domain` to `destination`. Raises DomainBusy like every VM action."""
    arguments = {"destination_host_id": destination.pk, "destination": destination.name,
                 **{name: options.get(name) for name in OPTION_FIELDS}}
    return domain_action_enqueue(domain=domain, action="migrate", user=user, arguments=arguments)
