"""The REST API for pools, volumes, networks and grants: the same rules as their pages (changes are
for administrators), the same forms, and every change queued as an operation."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts import services as account_services
from accounts.access import ADMIN, OPERATE, VIEW, hosts_for
from accounts.forms_users import GrantForm
from accounts.models import Grant
from api import forms as api_forms
from api.base import ApiDetailView, ApiListView, ApiView, Busy, enqueue, filtered
from api.serializers import (
    REFUSED, ErrorSerializer, GrantSerializer, NetworkSerializer, PoolSerializer, VolumeSerializer, queues,
)
from hosts.models import Host
from networking import forms as network_forms
from networking import services as network_services
from networking.models import VirtualNetwork
from storage import selectors as storage_selectors
from storage import services as storage_services
from storage.designer import pool_config
from storage.forms import (
    POOL_FIELDS, UNITS, PoolDefineForm, PoolDeleteForm, UploadForm, VolumeCloneForm, VolumeCreateForm,
    VolumeDeleteForm, VolumeResizeForm, pool_define_defaults,
)
from storage import views as storage_views
from storage.forms import VolumeGiveForm, VolumeShareableForm
from storage.models import StoragePool, Volume
from storage.uploads import upload_begin

SIZE_FIELDS = ("capacity", "allocation")
POOL_ACTIONS = [action for action in storage_services.POOL_ACTIONS if action != "delete"]
NETWORK_ACTIONS = ["start", "stop", "autostart_on", "autostart_off", "refresh"]
VOLUME_ACTIONS = ["wipe", "checksum", "clone", "resize", "delete"]


def _size(required: bool) -> dict:
    return {"required": required, "help_text": "An amount in capacity_unit (default GiB)."}


VolumeCreateBody = api_forms.schema_for(VolumeCreateForm, "VolumeCreateBody", extra={
    "capacity": serializers.FloatField(**_size(True)), "allocation": serializers.FloatField(**_size(False)),
    "capacity_unit": serializers.ChoiceField(choices=list(UNITS), required=False),
    "allocation_unit": serializers.ChoiceField(choices=list(UNITS), required=False)})
PoolDefineBody = api_forms.schema_for(PoolDefineForm, "PoolDefineBody", extra={
    "pool_type": serializers.ChoiceField(choices=list(POOL_FIELDS),
                                         help_text="Which other fields a type needs: see the new-pool page."),
    "build": serializers.BooleanField(required=False, help_text="Default: true for dir and netfs pools.")})
NetworkCreateBody = api_forms.schema_for(network_forms.NetworkForm, "NetworkCreate")
GrantCreateBody = api_forms.schema_for(GrantForm, "GrantCreate", extra={"user": serializers.CharField()})


class PoolAction(serializers.Serializer):
    action = serializers.ChoiceField(choices=POOL_ACTIONS + ["delete"])
    confirm_name = serializers.CharField(required=False, help_text="delete: the pool's name, to confirm.")


class VolumeAction(serializers.Serializer):
    action = serializers.ChoiceField(choices=VOLUME_ACTIONS)
    name = serializers.CharField(required=False, help_text="clone: the copy's name.")
    capacity = serializers.FloatField(required=False, help_text="resize: the new capacity in capacity_unit.")
    capacity_unit = serializers.ChoiceField(choices=list(UNITS), required=False)
    shrink = serializers.BooleanField(required=False)
    confirm_name = serializers.CharField(required=False, help_text="delete: the volume's name, to confirm.")
    detach = serializers.BooleanField(required=False, help_text="delete: detach it from the VMs using it first.")


class NetworkAction(serializers.Serializer):
    action = serializers.ChoiceField(choices=NETWORK_ACTIONS + ["delete"])
    confirm_name = serializers.CharField(required=False, help_text="delete: the network's name, to confirm.")


def _with_sizes(data) -> dict:
    """The forms take a size as two fields (amount, unit): `capacity: 10` becomes capacity_0/_1."""
    data = dict(data.items())
    for name in SIZE_FIELDS:
        if name in data:
            data[f"{name}_0"] = data.pop(name)
            data[f"{name}_1"] = data.pop(f"{name}_unit", "GiB")
    return data


def _action(request, serializer_class) -> dict:
    serializer = serializer_class(data=api_forms.body(request))
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class PoolList(ApiListView):
    serializer_class = PoolSerializer

    def get_queryset(self):
        pools = StoragePool.objects.filter(host__in=hosts_for(self.request.user)).order_by("host_id", "name")
        return filtered(pools, self.request, "host_id", "pool_type")

    @extend_schema(parameters=[OpenApiParameter("host_id", int), OpenApiParameter("pool_type", str)])
    def get(self, request):
        return super().get(request)


class PoolDefineView(ApiView):
    need, kind, pk_kwarg = ADMIN, Host, "host_pk"
    serializer_class = PoolDefineBody

    @queues(PoolDefineBody)
    def post(self, request, host_pk: int):
        data = api_forms.body(request)
        pool_type = data.get("pool_type")
        if pool_type not in POOL_FIELDS:
            raise ValidationError({"pool_type": [f"One of: {', '.join(POOL_FIELDS)}."]})
        cleaned = api_forms.valid(PoolDefineForm(pool_define_defaults(pool_type, data), host=self.object,
                                                 pool_type=pool_type))
        return enqueue(lambda: storage_services.pool_define_enqueue(
            host=self.object, config=pool_config(pool_type=pool_type, data=cleaned),
            build=cleaned.get("build", False), start=cleaned["start"], autostart=cleaned["autostart"],
            user=request.user), storage_services.StorageBusy)


class PoolDetail(ApiDetailView):
    kind = StoragePool
    serializer_class = PoolSerializer
    queryset = StoragePool.objects.all()


class PoolActionView(ApiView):
    need, kind = ADMIN, StoragePool
    serializer_class = PoolAction
    queryset = StoragePool.objects.select_related("host")

    @queues(PoolAction)
    def post(self, request, pk: int):
        data = _action(request, PoolAction)
        pool = self.get_object()
        if data["action"] == "delete":
            api_forms.valid(PoolDeleteForm(data, pool=pool))
        return enqueue(lambda: storage_services.pool_action_enqueue(pool=pool, action=data["action"],
                                                                    user=request.user), storage_services.StorageBusy)


class VolumeList(ApiListView):
    serializer_class = VolumeSerializer

    def get_queryset(self):
        volumes = (Volume.objects.select_related("record").filter(host__in=hosts_for(self.request.user))
                   .order_by("pool_id", "name"))
        fmt = self.request.query_params.get("format")
        if fmt and "\x00" not in fmt:  # the recorded format, as `format` in the answer
            volumes = volumes.filter(record__format=fmt)
        elif fmt:
            return volumes.none()
        return filtered(volumes, self.request, "host_id", "pool_id")

    @extend_schema(parameters=[OpenApiParameter("host_id", int), OpenApiParameter("pool_id", int),
                               OpenApiParameter("format", str)])
    def get(self, request):
        return super().get(request)


class VolumeCreateView(ApiView):
    need, kind = ADMIN, StoragePool
    serializer_class = VolumeCreateBody
    queryset = StoragePool.objects.select_related("host")

    @queues(VolumeCreateBody)
    def post(self, request, pk: int):
        pool = self.get_object()
        form = VolumeCreateForm(_with_sizes(api_forms.body(request)), pool=pool)
        api_forms.valid(form)
        return enqueue(lambda: storage_services.volume_create_enqueue(pool=pool, arguments=form.arguments(),
                                                                      user=request.user), storage_services.StorageBusy)


UploadBody = api_forms.schema_for(UploadForm, "UploadStart", extra={
    "size": serializers.IntegerField(help_text="The file's size in bytes."),
    "volume": serializers.IntegerField(required=False, help_text="An existing volume to overwrite, or give `name`.")})


class UploadStarted(serializers.Serializer):
    operation = serializers.IntegerField()
    url = serializers.CharField()
    socket = serializers.CharField(help_text="Open it with the same token, send the file as binary messages of "
                                             "`chunk` bytes with at most `window` unacknowledged (see README).")


class UploadStart(ApiView):
    """Begin an upload into a new or an existing volume; the bytes then go over the upload socket."""

    need, kind = ADMIN, StoragePool
    serializer_class = UploadBody
    queryset = StoragePool.objects.select_related("host")

    @extend_schema(request=UploadBody, responses={202: UploadStarted, 409: ErrorSerializer, **REFUSED})
    def post(self, request, pk: int):
        pool = self.get_object()
        data = api_forms.valid(UploadForm(api_forms.body(request), pool=pool))
        try:
            operation = upload_begin(pool=pool, volume=data.get("volume"), name=data.get("name") or "",
                                     size=data["size"], user=request.user, fmt=data["format"])
        except storage_services.StorageBusy as exc:
            raise Busy(str(exc)) from None
        return Response({"operation": operation.pk, "url": reverse("api:operation", args=[operation.pk]),
                         "socket": f"/ws/storage/uploads/{operation.pk}/"}, status=status.HTTP_202_ACCEPTED)


class VolumeDetail(ApiDetailView):
    kind = Volume
    serializer_class = VolumeSerializer
    queryset = Volume.objects.select_related("record")


class VolumeActionView(ApiView):
    need, kind = ADMIN, Volume
    serializer_class = VolumeAction
    queryset = Volume.objects.select_related("pool", "host")

    @queues(VolumeAction)
    def post(self, request, pk: int):
        action = _action(request, VolumeAction)["action"]
        volume = self.get_object()
        arguments = self._arguments(action, volume, _with_sizes(api_forms.body(request)))
        return enqueue(lambda: storage_services.volume_action_enqueue(volume=volume, action=action, user=request.user,
                                                                      arguments=arguments),
                       storage_services.StorageBusy)

    @staticmethod
    def _arguments(action: str, volume: Volume, data: dict) -> dict:
        users = storage_selectors.volume_users(volume)
        if action == "clone":
            return dict(api_forms.valid(VolumeCloneForm(data, volume=volume)))
        if action == "resize":
            return dict(api_forms.valid(VolumeResizeForm(data, volume=volume)))
        if action == "delete":
            return {"detach": api_forms.valid(VolumeDeleteForm(data, volume=volume, users=users))["detach"]}
        if action == "wipe" and users:
            raise ValidationError({"action": [f"{volume.name} is in use by a VM: it is not wiped."]})
        return {}


VolumeGiveBody = api_forms.schema_for(VolumeGiveForm, "VolumeGive", extra={
    "domain": serializers.IntegerField(help_text="The id of a VM of the volume's host.")})
VolumeShareableBody = api_forms.schema_for(VolumeShareableForm, "VolumeShareable")


class VolumeDone(serializers.Serializer):
    message = serializers.CharField()


class VolumeGiveView(ApiView):
    """Give the volume to a VM of its host (its users may then attach it), or take it back
    (`take_back`). For operators of the volume's host and administrators, as on the volume's page."""

    need, kind = OPERATE, Volume
    serializer_class = VolumeGiveBody
    queryset = Volume.objects.select_related("pool", "host", "record")

    @extend_schema(request=VolumeGiveBody, responses={200: VolumeDone, **REFUSED})
    def post(self, request, pk: int):
        volume = self.get_object()
        done, errors = storage_views.volume_give_apply(request, volume, api_forms.body(request))
        if errors:
            raise ValidationError({field: list(messages) for field, messages in errors.items()})
        return Response({"message": done})


class VolumeShareableView(ApiView):
    """Mark the volume shareable (several VMs may use it at once) or not. Administrators only."""

    need, kind = ADMIN, Volume
    serializer_class = VolumeShareableBody
    queryset = Volume.objects.select_related("pool", "host", "record")

    @extend_schema(request=VolumeShareableBody, responses={200: VolumeDone, **REFUSED})
    def post(self, request, pk: int):
        volume = self.get_object()
        return Response({"message": storage_views.volume_shareable_apply(request, volume, api_forms.body(request))})


class NetworkList(ApiListView):
    need = {"GET": VIEW, "POST": ADMIN}
    serializer_class = NetworkSerializer

    def get_queryset(self):
        networks = VirtualNetwork.objects.filter(host__in=hosts_for(self.request.user)).order_by("host_id", "name")
        return filtered(networks, self.request, "host_id", "mode")

    @extend_schema(parameters=[OpenApiParameter("host_id", int), OpenApiParameter("mode", str)])
    def get(self, request):
        return super().get(request)

    @queues(NetworkCreateBody)
    def post(self, request):
        form = network_forms.NetworkForm(api_forms.body(request))
        api_forms.valid(form)
        return enqueue(lambda: network_services.network_create_enqueue(
            host=form.cleaned_data["host"], user=request.user, arguments=network_forms.network_arguments(form)))


class NetworkDetail(ApiDetailView):
    kind = VirtualNetwork
    serializer_class = NetworkSerializer
    queryset = VirtualNetwork.objects.all()


class NetworkActionView(ApiView):
    need, kind = ADMIN, VirtualNetwork
    serializer_class = NetworkAction
    queryset = VirtualNetwork.objects.select_related("host")

    @queues(NetworkAction)
    def post(self, request, pk: int):
        data = _action(request, NetworkAction)
        network = self.get_object()
        if data["action"] == "delete" and data.get("confirm_name") != network.name:
            raise ValidationError({"confirm_name": [f"Type the network's name, {network.name}, to confirm."]})
        return enqueue(lambda: network_services.network_action_enqueue(network=network, action=data["action"],
                                                                       user=request.user),
                       network_services.NetworkBusy)


class GrantList(ApiListView):
    need = ADMIN
    serializer_class = GrantSerializer

    def get_queryset(self):
        return filtered(Grant.objects.select_related("user").order_by("pk"), self.request, "user__username",
                        "host_id", "domain_id", "role")

    @extend_schema(parameters=[OpenApiParameter("user__username", str), OpenApiParameter("host_id", int),
                               OpenApiParameter("domain_id", int), OpenApiParameter("role", str)])
    def get(self, request):
        return super().get(request)

    @extend_schema(request=GrantCreateBody, responses={201: GrantSerializer, **REFUSED})
    def post(self, request):
        data = api_forms.body(request)
        username = str(data.get("user", "")).replace("\x00", "")
        user = get_user_model().objects.filter(username=username).first() if username else None
        if user is None:
            raise ValidationError({"user": ["No such user."]})
        cleaned = api_forms.valid(GrantForm(data))
        grant = account_services.grant_set(request=request._request, user=user, host=cleaned["host"],
                                           domain=cleaned["domain"], role=cleaned["role"])
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)


class GrantDetail(ApiDetailView):
    need, kind = ADMIN, Grant
    serializer_class = GrantSerializer
    queryset = Grant.objects.select_related("user", "host", "domain__host")

    @extend_schema(responses={204: None, 403: ErrorSerializer, 404: ErrorSerializer})
    def delete(self, request, pk: int):
        account_services.grant_remove(request=request._request, grant=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


