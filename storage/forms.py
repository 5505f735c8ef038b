"""All validation of what users type about pools and volumes."""
from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping

from django import forms
from django.core.exceptions import ValidationError

from hosts.uri import validate_address
from storage.choices import FILE_POOL_TYPES, VOLUME_FORMAT_LABELS
from storage.models import StoragePool, Volume
from vmsite.units import binary_size

POOL_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
POOL_NAME_RULE = "Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
VOLUME_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")
VOLUME_NAME_RULE = "Use 1 to 128 letters, digits, '.', '_', '+' or '-', starting with a letter or digit."
VG_NAME_RE = re.compile(r"\A[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}\Z")
IQN_RE = re.compile(r"\A(iqn\.\d{4}-\d{2}\.[a-z0-9.-]+(:[A-Za-z0-9.:_-]+)?|eui\.[0-9A-Fa-f]{16})\Z")
DEVICE_RE = re.compile(r"\A/dev/[A-Za-z0-9._/:+-]+\Z")
UNITS = {"MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


def validate_volume_name(name: str) -> str:
    if not name:
        raise ValidationError("Enter a volume name.")
    if "\x00" in name:
        raise ValidationError("A volume name cannot contain a NUL character.")
    if "/" in name or name in (".", ".."):
        raise ValidationError("A volume name cannot contain '/' or be '.' or '..': it is a file name, not a path.")
    if name != name.strip():
        raise ValidationError("A volume name cannot start or end with a space.")
    if len(name) > 128:
        raise ValidationError(f"A volume name has at most 128 characters (this one has {len(name)}).")
    if not VOLUME_NAME_RE.match(name):
        raise ValidationError(VOLUME_NAME_RULE)
    return name


def validate_absolute_path(path: str) -> str:
    if "\x00" in path:
        raise ValidationError("A path cannot contain a NUL character.")
    if not path.startswith("/"):
        raise ValidationError("Enter an absolute path (starting with '/').")
    if path != posixpath.normpath(path) or "/../" in f"{path}/":
        raise ValidationError("Write the path without '..', '.', double or trailing slashes.")
    if len(path) > 1024:
        raise ValidationError(f"A path has at most 1024 characters (this one has {len(path)}).")
    if not path.isprintable():  # control characters, line separators, U+FFFE: XML cannot hold most of them
        raise ValidationError("A path cannot hold control or invisible characters.")
    return path


def validate_device(path: str) -> str:
    validate_absolute_path(path)
    if not DEVICE_RE.match(path):
        raise ValidationError("Enter a device path under /dev, like /dev/sdb or /dev/disk/by-id/....")
    return path


class SizeField(forms.MultiValueField):
    """A size as an amount and a unit; cleans to bytes."""

    def __init__(self, **kwargs) -> None:
        fields = (forms.DecimalField(max_digits=12, decimal_places=3), forms.ChoiceField(choices=[(u, u) for u in UNITS]))
        super().__init__(fields=fields, require_all_fields=False, **kwargs)
        self.widget = forms.MultiWidget(widgets=[forms.NumberInput(), forms.Select(choices=[(u, u) for u in UNITS])])

    def clean(self, value):
        # The unit select always sends a value: an empty amount means "no size", which an optional
        # field accepts, instead of Django's "Enter a complete value."
        if not self.required and isinstance(value, (list, tuple)) and (not value or value[0] in self.empty_values):
            return None
        return super().clean(value)

    def compress(self, data_list) -> int | None:
        if not data_list or data_list[0] in (None, ""):
            return None
        amount, unit = data_list
        return int(amount * UNITS[unit or "GiB"])


def _size_in_pool(value: int | None, pool: StoragePool, what: str, *, required: bool = True,
                  zero_allowed: bool = False) -> int | None:
    if value is None:
        if required:
            raise ValidationError(f"Enter the {what}.")
        return None
    if value < 0 or (value == 0 and not zero_allowed):
        raise ValidationError(f"The {what} must be more than 0." if not zero_allowed else
                              f"The {what} cannot be negative.")
    if value > pool.available:
        raise ValidationError(f"The {what} ({_human(value)}) is larger than the pool's free space "
                              f"({_human(pool.available)}).")
    return value


def _human(size: int) -> str:
    return binary_size(size, decimals=2)  # two sizes compared in a message: 10.00 GiB against 10.01 GiB


class VolumeCreateForm(forms.Form):
    name = forms.CharField(max_length=1000, strip=False, help_text=VOLUME_NAME_RULE)
    format = forms.ChoiceField(choices=list(VOLUME_FORMAT_LABELS.items()), initial="qcow2")
    capacity = SizeField(label="Capacity")
    allocation = SizeField(label="Allocate now (empty: thin)", required=False)
    backing = forms.ModelChoiceField(queryset=Volume.objects.none(), required=False,
                                     label="Backing volume (qcow2 only)", empty_label="none")

    def __init__(self, *args, pool: StoragePool, **kwargs) -> None:
        self.pool = pool
        super().__init__(*args, **kwargs)
        self.fields["backing"].queryset = Volume.objects.filter(host=pool.host).select_related("pool")
        if pool.pool_type not in FILE_POOL_TYPES:  # a logical volume or a partition: no image format
            self.fields["format"].choices = [("raw", "raw")]
            self.fields["format"].initial = "raw"
            del self.fields["backing"]

    def clean_name(self) -> str:
        name = validate_volume_name(self.cleaned_data["name"])
        if Volume.objects.filter(pool=self.pool, name=name).exists():
            raise ValidationError(f"The pool {self.pool.name} already has a volume named {name!r}.")
        return name

    def clean_capacity(self) -> int:
        return _size_in_pool(self.cleaned_data.get("capacity"), self.pool, "capacity")

    def clean_allocation(self) -> int | None:
        # Empty or 0: a thin volume, whose space is taken as it is written.
        return _size_in_pool(self.cleaned_data.get("allocation"), self.pool, "allocation", required=False,
                             zero_allowed=True)

    def clean(self) -> dict:
        data = super().clean()
        if not self.pool.active:
            raise ValidationError(f"The pool {self.pool.name} is not active: start it first.")
        backing = data.get("backing")
        if backing is not None and data.get("format") != "qcow2":
            self.add_error("backing", "Only a qcow2 volume can have a backing volume.")
        if backing is not None and data.get("capacity") and data["capacity"] < backing.capacity:
            self.add_error("capacity", f"A volume on {backing.name} needs at least its capacity "
                                       f"({_human(backing.capacity)}).")
        allocation = data.get("allocation")
        if allocation and data.get("capacity") and allocation > data["capacity"]:
            self.add_error("allocation", "The allocation cannot be larger than the capacity.")
        return data

    def arguments(self) -> dict:
        data = self.cleaned_data
        return {"name": data["name"], "format": data["format"], "capacity": data["capacity"],
                "allocation": data.get("allocation"), "backing_id": data["backing"].pk if data.get("backing") else None}


class VolumeCloneForm(forms.Form):
    name = forms.CharField(max_length=1000, strip=False, label="Name of the copy", help_text=VOLUME_NAME_RULE)

    def __init__(self, *args, volume: Volume, **kwargs) -> None:
        self.volume = volume
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        name = validate_volume_name(self.cleaned_data["name"])
        if Volume.objects.filter(pool=self.volume.pool, name=name).exists():
            raise ValidationError(f"The pool {self.volume.pool.name} already has a volume named {name!r}.")
        if self.volume.allocation > self.volume.pool.available:
            raise ValidationError(f"The copy needs {_human(self.volume.allocation)}; the pool has "
                                  f"{_human(self.volume.pool.available)} free.")
        return name


class VolumeResizeForm(forms.Form):
    capacity = SizeField(label="New capacity")
    shrink = forms.BooleanField(required=False, label="Allow shrinking (the end of the volume is lost)")

    def __init__(self, *args, volume: Volume, **kwargs) -> None:
        self.volume = volume
        super().__init__(*args, **kwargs)

    def clean(self) -> dict:
        data = super().clean()
        capacity = data.get("capacity")
        if capacity is None:
            return data
        if capacity <= 0:
            self.add_error("capacity", "The capacity must be more than 0.")
        elif capacity < self.volume.capacity:
            if self.volume.format != "raw":
                self.add_error("capacity", f"A {self.volume.format} volume cannot be shrunk here; only raw volumes can.")
            elif not data.get("shrink"):
                self.add_error("shrink", "The new capacity is smaller than the volume: tick this to allow it.")
        elif capacity - self.volume.capacity > self.volume.pool.available and self.volume.format == "raw":
            self.add_error("capacity", f"Growing by {_human(capacity - self.volume.capacity)} needs more than the "
                                       f"pool's free space ({_human(self.volume.pool.available)}).")
        return data


class VolumeDeleteForm(forms.Form):
    detach = forms.BooleanField(required=False, label="Detach it from these VMs first")
    confirm_name = forms.CharField(max_length=300, label="Type the volume's name to confirm")

    def __init__(self, *args, volume: Volume, users: list, **kwargs) -> None:
        self.volume = volume
        self.users = users
        super().__init__(*args, **kwargs)

    def clean_confirm_name(self) -> str:
        if self.cleaned_data["confirm_name"] != self.volume.name:
            raise ValidationError(f"Type {self.volume.name} exactly to confirm.")
        return self.cleaned_data["confirm_name"]

    def clean(self) -> dict:
        data = super().clean()
        if self.users and not data.get("detach"):
            names = ", ".join(user.name for user in self.users)
            raise ValidationError(f"The volume is in use by {names}: it is not deleted unless you tick "
                                  "'Detach it from these VMs first'.")
        return data


class PoolDeleteForm(forms.Form):
    confirm_name = forms.CharField(max_length=300, label="Type the pool's name to confirm")

    def __init__(self, *args, pool: StoragePool, **kwargs) -> None:
        self.pool = pool
        super().__init__(*args, **kwargs)

    def clean_confirm_name(self) -> str:
        if self.cleaned_data["confirm_name"] != self.pool.name:
            raise ValidationError(f"Type {self.pool.name} exactly to confirm.")
        return self.cleaned_data["confirm_name"]


# Which fields each pool type needs, in the order the form shows them.
POOL_FIELDS = {
    "dir": ("target_path",),
    "fs": ("source_device", "fs_format", "target_path"),
    "netfs": ("source_host", "source_dir", "target_path"),
    "logical": ("vg_name", "source_devices"),
    "disk": ("source_device", "disk_format"),
    "iscsi": ("source_host", "source_port", "target_iqn", "initiator_iqn"),
}
DEFAULT_TARGETS = {"disk": "/dev", "iscsi": "/dev/disk/by-path"}
# Building these only makes their folder (an existing one is kept), so a new pool's first start
# does not fail on a folder that is not there yet. Building the others formats or partitions.
BUILT_BY_DEFAULT = ("dir", "netfs")


def pool_define_defaults(pool_type: str, data: Mapping) -> dict:
    """An API body with the form's defaults for what it leaves out (a missing boolean is False)."""
    return {"build": pool_type in BUILT_BY_DEFAULT, **data}


class PoolDefineForm(forms.Form):
    name = forms.CharField(max_length=300, strip=False, help_text=POOL_NAME_RULE)
    target_path = forms.CharField(max_length=2000, strip=False, label="Folder on the host",
                                  help_text="Absolute path, e.g. /var/lib/libvirt/images/fast")
    source_device = forms.CharField(max_length=1024, strip=False, label="Device", help_text="e.g. /dev/sdb")
    source_devices = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False,
                                     label="Physical volumes (one device per line)",
                                     help_text="Only to build a new volume group; leave empty to use an existing one.")
    fs_format = forms.ChoiceField(choices=[(v, v) for v in ("auto", "ext4", "ext3", "xfs", "btrfs")], label="File system")
    disk_format = forms.ChoiceField(choices=[("gpt", "GPT"), ("dos", "MBR (dos)")], label="Partition table")
    source_host = forms.CharField(max_length=300, label="Server", help_text="DNS name or IP address")
    source_port = forms.IntegerField(required=False, min_value=1, max_value=65535, label="Port (default 3260)")
    source_dir = forms.CharField(max_length=1024, strip=False, label="Exported folder", help_text="e.g. /export/vms")
    vg_name = forms.CharField(max_length=300, strip=False, label="Volume group")
    target_iqn = forms.CharField(max_length=223, label="Target IQN", help_text="e.g. iqn.2024-01.org.example:vms")
    initiator_iqn = forms.CharField(max_length=223, required=False, label="Initiator IQN (optional)")
    build = forms.BooleanField(required=False, label="Build it (create the folder, volume group or partition table)")
    start = forms.BooleanField(required=False, initial=True, label="Start it")
    autostart = forms.BooleanField(required=False, initial=True, label="Start it when the host boots")

    def __init__(self, *args, host, pool_type: str, **kwargs) -> None:
        self.host = host
        self.pool_type = pool_type
        super().__init__(*args, **kwargs)
        wanted = {"name", *POOL_FIELDS[pool_type], "build", "start", "autostart"}
        for name in list(self.fields):
            if name not in wanted:
                del self.fields[name]
        if pool_type == "iscsi":
            del self.fields["build"]
        elif pool_type in BUILT_BY_DEFAULT:
            self.fields["build"].initial = True
            self.fields["build"].label = "Build it (create the folder if it does not exist)"

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if not POOL_NAME_RE.match(name):
            raise ValidationError(POOL_NAME_RULE)
        if StoragePool.objects.filter(host=self.host, name=name).exists():
            raise ValidationError(f"The host {self.host} already has a storage pool named {name!r}.")
        return name

    def clean_target_path(self) -> str:
        return validate_absolute_path(self.cleaned_data["target_path"])

    def clean_source_dir(self) -> str:
        return validate_absolute_path(self.cleaned_data["source_dir"])

    def clean_source_device(self) -> str:
        return validate_device(self.cleaned_data["source_device"])

    def clean_source_devices(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["source_devices"].splitlines() if line.strip()]
        return [validate_device(line) for line in lines]

    def clean_source_host(self) -> str:
        return validate_address(self.cleaned_data["source_host"])

    def clean_vg_name(self) -> str:
        name = self.cleaned_data["vg_name"]
        if not VG_NAME_RE.match(name) or name in (".", ".."):
            raise ValidationError("Use letters, digits, '+', '_', '.' and '-' (not starting with '-' or '.').")
        return name

    def clean_target_iqn(self) -> str:
        return _iqn(self.cleaned_data["target_iqn"])

    def clean_initiator_iqn(self) -> str:
        return _iqn(self.cleaned_data["initiator_iqn"]) if self.cleaned_data["initiator_iqn"] else ""

    def clean(self) -> dict:
        data = super().clean()
        if self.pool_type == "logical" and data.get("build") and not data.get("source_devices"):
            self.add_error("source_devices", "Name the devices to build the volume group on, or untick 'Build'.")
        return data


def _iqn(value: str) -> str:
    if not IQN_RE.match(value):
        raise ValidationError("Not an iSCSI name: use iqn.YYYY-MM.reversed.domain[:name] or eui.<16 hex digits>.")
    return value


UPLOAD_FORMATS = [("raw", "raw (a disk image byte for byte)"), ("iso", "iso (a CD/DVD image)"),
                  ("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vdi", "vdi"), ("vpc", "vpc (VHD)"), ("vhdx", "vhdx")]


class UploadForm(forms.Form):
    """An upload's target and size; the bytes themselves come over the upload socket."""

    name = forms.CharField(max_length=1000, strip=False, required=False, label="New volume",
                           help_text=VOLUME_NAME_RULE)
    volume = forms.ModelChoiceField(queryset=Volume.objects.none(), required=False, label="or overwrite a volume",
                                    empty_label="(a new volume)")
    size = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    format = forms.ChoiceField(choices=UPLOAD_FORMATS, required=False, initial="raw", label="The file's format",
                               help_text="What the file is. vmsite checks its header as this format and defines "
                                         "disks with it; it never guesses. An existing volume keeps its format.")

    def __init__(self, *args, pool: StoragePool, **kwargs) -> None:
        self.pool = pool
        super().__init__(*args, **kwargs)
        self.fields["volume"].queryset = Volume.objects.filter(pool=pool).select_related("pool")

    def clean(self) -> dict:
        data = super().clean()
        if not self.pool.active:
            raise ValidationError(f"The pool {self.pool.name} is not active: start it first.")
        data["format"] = data.get("format") or "raw"
        size, volume, name = data.get("size"), data.get("volume"), data.get("name")
        if size is not None and size <= 0:
            self.add_error("size", "The file is empty: there is nothing to upload.")
            return data
        if volume is None:
            self._clean_new(name or "", size)
        elif name:
            self.add_error("name", "Either name a new volume or choose one to overwrite, not both.")
        elif size is not None and size > volume.capacity:
            self.add_error("volume", f"The file ({_human(size)}) is larger than {volume.name} ({_human(volume.capacity)}).")
        else:
            from storage.selectors import volume_users

            users = volume_users(volume)
            if users:
                self.add_error("volume", f"{volume.name} is in use by {', '.join(u.name for u in users)}.")
        return data

    def _clean_new(self, name: str, size: int | None) -> None:
        try:
            validate_volume_name(name)
        except ValidationError as exc:
            self.add_error("name", exc)
            return
        if Volume.objects.filter(pool=self.pool, name=name).exists():
            self.add_error("name", f"The pool {self.pool.name} already has a volume named {name!r}.")
        elif size is not None and size > self.pool.available:
            self.add_error("size", f"The file ({_human(size)}) is larger than the pool's free space "
                                   f"({_human(self.pool.available)}).")


class DiscoverForm(forms.Form):
    source_host = forms.CharField(max_length=300, label="Server")

    def clean_source_host(self) -> str:
        return validate_address(self.cleaned_data["source_host"])


class VolumeGiveForm(forms.Form):
    """Give a volume to a VM of its host (its users may then attach it), or take it back."""

    domain = forms.ModelChoiceField(queryset=Volume.objects.none(), label="VM", error_messages={
        "invalid_choice": "That is not a VM of this volume's host."})
    take_back = forms.BooleanField(required=False, label="Take it back instead")

    def __init__(self, *args, volume: Volume, **kwargs) -> None:
        from domains.models import Domain

        self.volume = volume
        super().__init__(*args, **kwargs)
        self.fields["domain"].queryset = Domain.objects.filter(host_id=volume.host_id).order_by("name")


class VolumeShareableForm(forms.Form):
    shareable = forms.BooleanField(required=False, label="Shareable (several VMs may use it at once)")
