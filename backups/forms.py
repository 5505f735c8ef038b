"""Input for "back up now", "restore as a new VM" and backup jobs, checked against what the user may reach
(accounts.access) and the VM as last seen; the worker checks libvirt's state again when it acts."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from accounts.access import (BACKUP_POOL_TYPES, backup_job_hosts_for, backup_pools_for, restore_hosts_for,
                             restore_target_pools_for)
from backups.jobs import CRON_RULE, validate_schedule
from backups.models import BackupJob, RestorePoint
from backups.services import backup_state_refusal
from domains.forms import NAME_RULE, IdsField, validate_domain_name
from domains.models import Domain
from networking.models import VirtualNetwork
from storage.models import StoragePool
from virt.backup_copies import definition_networks
from virt.xml.domain import TAG_PATTERN, TAG_RULE


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
    """Restore as a new VM: on the point's own host (the default) or any other host the user operates,
    read from where the point was taken or from one of its copies."""

    name = forms.CharField(max_length=300, label="Name of the new VM", help_text=NAME_RULE, strip=False)
    host = forms.ModelChoiceField(queryset=None, required=False, label="Host",
                                  help_text="Where the new VM is made: a host you operate. Empty: the backup's own "
                                            "host.")
    pool = forms.ChoiceField(label="Pool for its disks", help_text="An active dir, fs or netfs pool of that host.")
    source = forms.ChoiceField(required=False, label="Read the backup from",
                               help_text="Where it was taken, or a second copy on another host.")
    network = forms.CharField(max_length=255, required=False, label="Network for its network cards",
                              help_text="Only on another host: a network of that host for every network card, when the "
                                        "VM's own networks or bridges are not there.")

    def __init__(self, *args, point: RestorePoint, user, **kwargs) -> None:
        self.point = point
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = restore_hosts_for(user).order_by("name")
        self.all_pools = list(restore_target_pools_for(user).select_related("host").order_by("host__name", "name"))
        grouped: dict[str, list] = {}
        for pool in self.all_pools:
            grouped.setdefault(pool.host.name, []).append((pool.name, pool.name))
        self.fields["pool"].choices = [(host, sorted(set(names))) for host, names in grouped.items()]
        self.copies = {str(copy.pk): copy for copy in point.copies.select_related("host")}
        self.fields["source"].choices = [("", f"{point.pool_name} on {point.host}")] + [
            (pk, f"the copy in {copy.pool_name} on {copy.host}") for pk, copy in self.copies.items()]

    def clean_name(self) -> str:
        return validate_domain_name(self.cleaned_data["name"])

    def clean_source(self):
        return self.copies.get(self.cleaned_data.get("source") or "")

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.point.state != RestorePoint.State.READY:
            raise ValidationError(f"The backup {self.point.name} is {self.point.get_state_display()}: it cannot be "
                                  "restored.")
        host = cleaned.get("host") or self.point.host
        cleaned["host"] = host
        name, pool_name = cleaned.get("name"), cleaned.get("pool")
        if name and Domain.objects.filter(host=host, name=name).exists():
            self.add_error("name", f"The host {host} already has a VM named {name!r}.")
        if pool_name:
            pool = next((pool for pool in self.all_pools if pool.host_id == host.pk and pool.name == pool_name), None)
            if pool is None:
                offered = (", ".join(pool.name for pool in self.all_pools if pool.host_id == host.pk)
                           or "none you may use")
                self.add_error("pool", f"{host} has no active dir, fs or netfs pool named {pool_name!r} that you may "
                                       f"use (its pools: {offered}).")
            cleaned["pool"] = pool
        self._check_network(host, cleaned)
        return cleaned

    def _check_network(self, host, cleaned: dict) -> None:
        """On another host, the VM's networks and bridges must be there, or one network chosen for all."""
        network = cleaned.get("network") or None
        cleaned["network"] = network
        if host.pk == self.point.host_id:
            if network:
                self.add_error("network", "A network is chosen only for a restore on another host.")
            return
        networks = set(VirtualNetwork.objects.filter(host=host).values_list("name", flat=True))
        if network:
            if network not in networks:
                self.add_error("network", f"{host} has no network named {network!r} "
                                          f"(its networks: {', '.join(sorted(networks)) or 'none'}).")
            return
        bridges = set(VirtualNetwork.objects.filter(host=host).values_list("bridge", flat=True))
        missing = [f"{kind} {name}" for kind, name in definition_networks(self.point.domain_xml)
                   if name not in (networks if kind == "network" else bridges)]
        if missing:
            self.add_error("network", f"{host} has no {', '.join(missing)}, which the VM's network cards use: "
                                      f"choose a network of {host} for them.")

    @property
    def elsewhere(self) -> bool:
        """Whether the restore needs more than the point's own host and pool (another host, a copy, a network)."""
        data = self.cleaned_data
        return data["host"].pk != self.point.host_id or data.get("source") is not None or bool(data.get("network"))


JOB_NAME = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$",
                          "A job's name is 1 to 64 letters, digits, spaces, dots, dashes or underscores, starting "
                          "with a letter or digit.")


NO_JOB_HOST = ("Backup jobs are made by administrators and host operators: you operate no host. A VM's operator "
               "backs it up with “Back up now” on its page.")


class BackupJobForm(forms.ModelForm):
    """A backup job, made or changed: its VMs, pool and schedule are checked against the host chosen
    and what the user may reach (accounts.access); a run checks each VM's state again."""

    name = forms.CharField(max_length=64, validators=[JOB_NAME])
    host = forms.ModelChoiceField(queryset=None, help_text="The job backs up VMs of this host, into a pool of it.")
    domains = IdsField(queryset=None, required=False, label="VMs",
                                             help_text="For “the chosen VMs”: VMs of the job's host.")
    pattern = forms.CharField(max_length=255, required=False, label="Name pattern",
                              help_text="For “VMs whose name matches”: shell-style, e.g. web-* or db-?? (case-sensitive).")
    pool_name = forms.CharField(max_length=255, label="Backup pool",
                                help_text="An active dir, fs or netfs pool of the host; a chain stays in one pool.")
    schedule = forms.CharField(max_length=100, help_text=CRON_RULE)
    tag = forms.CharField(max_length=100, required=False, label="Tag",
                          help_text="For “VMs with a tag”: VMs of the host that have this tag when the job runs "
                                    "(a VM's tags are set on its page).")
    full_every = forms.IntegerField(min_value=1, max_value=1000, initial=7, label="Full backup every N",
                                    error_messages={"min_value": "N is at least 1: a new chain (a full backup) "
                                                                 "starts every N runs or every N days."},
                                    help_text="1 run: every run is a full backup; else incrementals in between.")
    full_every_unit = forms.ChoiceField(choices=BackupJob.FullEvery.choices, initial=BackupJob.FullEvery.RUNS,
                                        required=False,
                                        label="N counts", help_text="Runs of the job, or days since the VM's last "
                                                                    "full backup in the pool.")
    keep_last = forms.IntegerField(min_value=1, max_value=1000, initial=7, label="Keep the last N restore points",
                                   error_messages={"min_value": "Keep at least the newest restore point: N is 1 or "
                                                                "more."},
                                   help_text="Per VM in the pool; older ones a kept point depends on stay too.")
    keep_daily = forms.IntegerField(min_value=0, max_value=1000, initial=0, required=False, label="Also keep daily",
                                    help_text="The newest point of each of the last N days that have one (0: none).")
    keep_weekly = forms.IntegerField(min_value=0, max_value=1000, initial=0, required=False, label="Also keep weekly",
                                     help_text="The newest point of each of the last N weeks that have one.")
    keep_monthly = forms.IntegerField(min_value=0, max_value=1000, initial=0, required=False, label="Also keep monthly",
                                      help_text="The newest point of each of the last N months that have one.")
    health_check = forms.BooleanField(required=False, label="Health-check each new restore point",
                                      help_text="Boot it in a temporary VM with no network until its guest agent "
                                                "answers, then delete that VM (the backed-up VM needs a guest "
                                                "agent channel).")
    copy_host = forms.ModelChoiceField(queryset=None, required=False, label="Second copy on host",
                                       help_text="Optional: after each backup, its files are copied to a pool of this "
                                                 "other host (a host you operate); pruned with their points.")
    copy_pool_name = forms.CharField(max_length=255, required=False, label="Second copy's pool",
                                     help_text="An active dir, fs or netfs pool of that host.")

    class Meta:
        model = BackupJob
        fields = ["name", "host", "selection", "domains", "pattern", "tag", "pool_name", "schedule", "full_every",
                  "full_every_unit", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "health_check",
                  "copy_host", "copy_pool_name", "enabled"]

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        hosts = backup_job_hosts_for(user)
        self.fields["host"].queryset = hosts.order_by("name")
        self.fields["copy_host"].queryset = hosts.order_by("name")
        self.fields["domains"].queryset = Domain.objects.filter(host__in=hosts).select_related("host").order_by("name")
        self.fields["selection"].label = "Which VMs"
        if not hosts.exists():
            self.fields["host"].help_text = NO_JOB_HOST

    def clean_schedule(self) -> str:
        return validate_schedule(self.cleaned_data["schedule"])

    def clean(self) -> dict:
        cleaned = super().clean()
        host, selection = cleaned.get("host"), cleaned.get("selection")
        if not self.fields["host"].queryset.exists():
            raise ValidationError(NO_JOB_HOST)
        if host is None:
            return cleaned
        domains = cleaned.get("domains") or []
        if selection == BackupJob.Selection.CHOSEN:
            if not domains:
                self.add_error("domains", "Choose at least one VM, or back up every VM of the host or those whose "
                                          "name matches a pattern.")
            elsewhere = sorted(domain.name for domain in domains if domain.host_id != host.pk)
            if elsewhere:
                self.add_error("domains", f"Not on {host.name}: {', '.join(elsewhere)}. A job backs up VMs of "
                                          "one host.")
        elif domains:
            self.add_error("domains", "VMs are chosen only for “the chosen VMs”; leave them out.")
        if selection == BackupJob.Selection.PATTERN and not cleaned.get("pattern", "").strip():
            self.add_error("pattern", "Give the name pattern, e.g. web-*.")
        elif selection != BackupJob.Selection.PATTERN and cleaned.get("pattern"):
            self.add_error("pattern", "A pattern is used only for “VMs whose name matches a pattern”; leave it out.")
        for name in ("keep_daily", "keep_weekly", "keep_monthly"):  # left out: none
            if name not in self.errors and cleaned.get(name) is None:
                cleaned[name] = 0
        if "full_every_unit" not in self.errors and not cleaned.get("full_every_unit"):
            cleaned["full_every_unit"] = BackupJob.FullEvery.RUNS
        self._check_tag(selection, cleaned)
        self._check_full_every(cleaned)
        self._check_pool(host, cleaned.get("pool_name"))
        self._check_copy(host, cleaned.get("copy_host"), cleaned.get("copy_pool_name", "").strip())
        return cleaned

    def _check_copy(self, host, copy_host, pool_name: str) -> None:
        """The second copy: both a host (another one) and a pool of it, or neither."""
        if copy_host is None:
            if pool_name:
                self.add_error("copy_host", "Choose the host the second copy goes to, or leave its pool empty.")
            return
        if copy_host.pk == host.pk:
            self.add_error("copy_host", f"The second copy goes to another host than {host.name}, which holds the "
                                        "backups: a copy on the same host is lost with it.")
            return
        if not pool_name:
            self.add_error("copy_pool_name", f"Give the pool of {copy_host.name} the second copy goes to.")
            return
        pools = StoragePool.objects.filter(host=copy_host, active=True, pool_type__in=BACKUP_POOL_TYPES)
        if not pools.filter(name=pool_name).exists():
            offered = ", ".join(pools.order_by("name").values_list("name", flat=True)) or "none"
            self.add_error("copy_pool_name", f"{copy_host.name} has no active dir, fs or netfs pool named "
                                             f"{pool_name!r} (its backup pools: {offered}).")

    def _check_tag(self, selection: str | None, cleaned: dict) -> None:
        tag = cleaned.get("tag", "").strip().lower()
        cleaned["tag"] = tag
        if selection != BackupJob.Selection.TAG:
            if tag:
                self.add_error("tag", "A tag is used only for “VMs with a tag”; leave it out.")
        elif not tag:
            self.add_error("tag", "Give the tag, e.g. nightly.")
        elif not TAG_PATTERN.fullmatch(tag):
            self.add_error("tag", f"“{tag}” is not a tag: {TAG_RULE}.")

    def _check_full_every(self, cleaned: dict) -> None:
        if cleaned.get("full_every_unit") == BackupJob.FullEvery.DAYS and (cleaned.get("full_every") or 0) > 366:
            self.add_error("full_every", "Every N days: N is at most 366 (a year).")

    def _check_pool(self, host, name: str | None) -> None:
        if not name:
            return
        pools = StoragePool.objects.filter(host=host, active=True, pool_type__in=BACKUP_POOL_TYPES)
        if not pools.filter(name=name).exists():
            offered = ", ".join(pools.order_by("name").values_list("name", flat=True)) or "none"
            self.add_error("pool_name", f"{host.name} has no active dir, fs or netfs pool named {name!r} "
                                        f"(its backup pools: {offered}).")
