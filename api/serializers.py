"""What the API answers with. Read-only views of the rows; host credentials appear only as
whether they are set, never as a path or a value."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from accounts.models import Grant
from domains.models import Domain
from hosts.models import Host
from networking.models import VirtualNetwork
from operations.models import Operation
from storage.models import StoragePool, Volume


class HostSerializer(serializers.ModelSerializer):
    uses_own_ssh_key = serializers.SerializerMethodField(help_text="An SSH key uploaded for this host, "
                                                                   "not the installation's key.")
    has_tls_files = serializers.SerializerMethodField()
    has_sasl_password = serializers.SerializerMethodField(help_text="A SASL password is stored (never shown).")
    ssh_key_fingerprint = serializers.SerializerMethodField()

    class Meta:
        model = Host
        fields = ["id", "name", "transport", "address", "port", "username", "enabled", "status", "status_reason",
                  "last_seen", "hostname", "libvirt_version", "hypervisor_version", "cpu_count", "memory_kib",
                  "synced_at", "created_at", "uses_own_ssh_key", "ssh_key_fingerprint", "has_tls_files",
                  "sasl_username", "has_sasl_password"]

    def get_uses_own_ssh_key(self, host: Host) -> bool:
        return host.ssh_key is not None and host.ssh_key.name.startswith("host-")

    def get_ssh_key_fingerprint(self, host: Host) -> str:
        return host.ssh_key.fingerprint if host.ssh_key is not None else ""

    def get_has_tls_files(self, host: Host) -> bool:
        return host.has_tls_files

    def get_has_sasl_password(self, host: Host) -> bool:
        return host.has_sasl_login


class DomainSerializer(serializers.ModelSerializer):
    host_name = serializers.CharField(source="host.name", read_only=True)
    state = serializers.CharField(source="get_state_display", read_only=True)
    state_code = serializers.IntegerField(source="state", read_only=True)

    class Meta:
        model = Domain
        fields = ["id", "uuid", "name", "host", "host_name", "state", "state_code", "state_reason", "vcpus",
                  "memory_kib", "persistent", "autostart", "has_managed_save", "is_template", "tags", "synced_at"]


class DomainDetailSerializer(DomainSerializer):
    class Meta(DomainSerializer.Meta):
        fields = DomainSerializer.Meta.fields + ["details", "snapshots", "xml_inactive", "xml_live"]


class OperationSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = Operation
        fields = ["id", "kind", "target_type", "target_id", "target_label", "host", "user", "state", "progress",
                  "message", "error", "cancel_requested", "libvirt_ms", "created_at", "started_at", "finished_at"]


class PoolSerializer(serializers.ModelSerializer):
    class Meta:
        model = StoragePool
        fields = ["id", "uuid", "name", "host", "pool_type", "target_path", "active", "autostart", "capacity",
                  "allocation", "available", "details", "synced_at"]


class VolumeSerializer(serializers.ModelSerializer):
    format = serializers.CharField(source="recorded_format", read_only=True,
                                   help_text="The format vmsite records and defines disks with (never a probed one).")
    reported_format = serializers.CharField(source="format", read_only=True,
                                            help_text="What libvirt reports now (probed from the contents).")
    owner_uuid = serializers.UUIDField(source="record.owner_uuid", read_only=True, allow_null=True, default=None,
                                       help_text="The VM the volume belongs to (none: made by an administrator).")
    shareable = serializers.BooleanField(source="record.shareable", read_only=True, default=False)

    class Meta:
        model = Volume
        fields = ["id", "name", "host", "pool", "key", "path", "vol_type", "format", "reported_format", "owner_uuid",
                  "shareable", "capacity", "allocation", "backing_path", "upload_state", "sha256", "synced_at"]


class NetworkSerializer(serializers.ModelSerializer):
    class Meta:
        model = VirtualNetwork
        fields = ["id", "uuid", "name", "host", "active", "autostart", "persistent", "mode", "bridge", "details",
                  "synced_at"]


class GrantSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Grant
        fields = ["id", "user", "host", "domain", "role", "created_at"]


class QueuedSerializer(serializers.Serializer):
    """The answer to an action: the operation that carries it out. GET its URL for its state."""

    operation = serializers.IntegerField()
    url = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ActionSerializer(serializers.Serializer):
    action = serializers.CharField()


REFUSED = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def queues(body=None):
    """The schema of an action: this request body, and 202 with the operation (or 409 when busy)."""
    return extend_schema(request=body, responses={202: QueuedSerializer, 409: ErrorSerializer, **REFUSED})
