"""The REST API for hosts, VMs and operations. Reads are filtered by the same rules as the pages;
changes are validated by the pages' forms and queued as operations (202 with the operation id)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from accounts.access import ADMIN, OPERATE, VIEW, domains_for, hosts_for, operations_for
from accounts.audit import audit
from accounts.models import AuditAction
from api import forms as api_forms
from api.base import ApiDetailView, ApiListView, ApiView, enqueue, filtered, queued
from api.serializers import (
    REFUSED, DomainDetailSerializer, DomainSerializer, ErrorSerializer, HostSerializer, OperationSerializer,
    QueuedSerializer, queues,
)
from domains import services as domain_services
from domains.actions import ACTIONS
from domains.choices import DomainState
from domains.forms import DeleteForm, RenameForm
from domains.forms_create import CreateDomainForm, create_arguments
from domains.migration import MigrateForm, domain_migrate_enqueue
from domains.models import Domain
from hosts import host_keys
from hosts import services as host_services
from hosts.ssh import SSHMaterialError
from hosts.forms import TLS_FILES, HostForm
from hosts.models import Host
from operations.choices import OperationState
from operations.models import Operation
from operations.services import operation_enqueue, operation_request_cancel

HOST_SECRETS = ("ssh_private_key", *TLS_FILES)
HostWrite = api_forms.schema_for(HostForm, "HostWrite", write_only=(*HOST_SECRETS, "sasl_password"))
Rename = api_forms.schema_for(RenameForm, "Rename")


class DomainAction(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(ACTIONS))


class HostCreated(serializers.Serializer):
    host = HostSerializer()
    operation = serializers.IntegerField()


def _host_form(request, host: Host | None) -> HostForm:
    data = api_forms.body(request)
    if host is not None:  # a PATCH changes only what it names
        data = {**HostForm(instance=host).initial, **data}
    return HostForm(data, api_forms.pem_files(data, HOST_SECRETS), instance=host)


def _with_expected_host_key(form: HostForm) -> dict:
    """The host's fields; given an expected fingerprint, the host is scanned now and only its key with
    that fingerprint is pinned (without one, the key the host presents at first connection is)."""
    fields = form.host_fields()
    expected = form.cleaned_data.get("ssh_host_key_fingerprint")
    if not expected or fields["transport"] != "ssh":
        return fields
    try:
        fields["ssh_host_keys"] = host_keys.host_keys_matching(
            host_keys.host_keys_scan(fields["address"], fields["port"]), expected)
    except (host_keys.HostKeyRefused, SSHMaterialError) as exc:
        raise ValidationError({"ssh_host_key_fingerprint": [str(exc)]}) from None
    return fields


class HostList(ApiListView):
    need = {"GET": VIEW, "POST": ADMIN}
    serializer_class = HostSerializer

    def get_queryset(self):
        return filtered(hosts_for(self.request.user).select_related("ssh_key").order_by("name"),
                        self.request, "transport", "status")

    @extend_schema(parameters=[OpenApiParameter("transport", str), OpenApiParameter("status", str)])
    def get(self, request):
        return super().get(request)

    @extend_schema(request=HostWrite, responses={201: HostCreated, **REFUSED})
    def post(self, request):
        form = _host_form(request, None)
        api_forms.valid(form)
        host, operation = host_services.host_create(user=request.user, **_with_expected_host_key(form))
        audit(request, AuditAction.HOST_ADDED, target=host.name, detail=f"{host.transport} (API)")
        return Response({"host": HostSerializer(host).data, "operation": operation.pk}, status=status.HTTP_201_CREATED)


class HostDetail(ApiDetailView):
    need, kind = {"GET": VIEW, "PATCH": ADMIN, "DELETE": ADMIN}, Host
    serializer_class = HostSerializer
    queryset = Host.objects.select_related("ssh_key")

    @queues(HostWrite)
    def patch(self, request, pk: int):
        host = self.get_object()
        form = _host_form(request, host)
        api_forms.valid(form)
        operation = host_services.host_update(host=host, user=request.user, **_with_expected_host_key(form))
        audit(request, AuditAction.HOST_CHANGED, target=host.name, detail="changed by the API: "
              + (", ".join(form.changed_data) or "no field"))
        return queued(operation)

    @extend_schema(responses={204: None, 403: ErrorSerializer, 404: ErrorSerializer})
    def delete(self, request, pk: int):
        host = self.get_object()
        host_services.host_remove(host=host)
        audit(request, AuditAction.HOST_REMOVED, target=host.name, detail="by the API")
        return Response(status=status.HTTP_204_NO_CONTENT)


class HostSync(ApiView):
    need, kind = OPERATE, Host
    serializer_class = QueuedSerializer

    @extend_schema(request=None, responses={202: QueuedSerializer, 403: ErrorSerializer, 404: ErrorSerializer})
    def post(self, request, pk: int):
        return queued(host_services.host_sync_enqueue(host=self.object, user=request.user))


class DomainList(ApiListView):
    serializer_class = DomainSerializer

    def get_queryset(self):
        domains = domains_for(self.request.user).select_related("host").order_by("host__name", "name")
        state = self.request.query_params.get("state", "")
        if state:
            codes = [choice.value for choice in DomainState if choice.label.lower() == state.lower()]
            domains = domains.filter(state__in=codes)
        name = self.request.query_params.get("search", "").replace("\x00", "")
        return filtered(domains.filter(name__icontains=name) if name else domains, self.request, "host_id")

    @extend_schema(parameters=[OpenApiParameter("host_id", int), OpenApiParameter("search", str),
                               OpenApiParameter("state", str, description="e.g. running, paused, shut off")])
    def get(self, request):
        return super().get(request)


class DomainDetail(ApiDetailView):
    need, kind = {"GET": VIEW, "DELETE": OPERATE}, Domain
    serializer_class = DomainDetailSerializer
    queryset = Domain.objects.select_related("host")

    @extend_schema(parameters=[OpenApiParameter("confirm_name", str, required=True,
                                                description="The VM's name, to confirm."),
                               OpenApiParameter("with_volumes", bool, description="Also delete its disk images.")],
                   responses={202: QueuedSerializer, 409: ErrorSerializer, **REFUSED})
    def delete(self, request, pk: int):
        domain = self.get_object()
        data = api_forms.valid(DeleteForm(request.query_params, domain=domain))
        return enqueue(lambda: domain_services.domain_action_enqueue(
            domain=domain, action="delete", user=request.user, arguments={"with_volumes": data["with_volumes"]}),
            domain_services.DomainBusy, domain_services.ActionNotAllowed)


class DomainActionView(ApiView):
    need, kind = OPERATE, Domain
    serializer_class = DomainAction
    queryset = Domain.objects.select_related("host")

    @queues(DomainAction)
    def post(self, request, pk: int):
        serializer = DomainAction(data=api_forms.body(request))
        serializer.is_valid(raise_exception=True)
        domain = self.get_object()
        return enqueue(lambda: domain_services.domain_action_enqueue(
            domain=domain, action=serializer.validated_data["action"], user=request.user),
            domain_services.DomainBusy, domain_services.ActionNotAllowed)


class DomainRename(ApiView):
    need, kind = OPERATE, Domain
    serializer_class = Rename
    queryset = Domain.objects.select_related("host")

    @queues(Rename)
    def post(self, request, pk: int):
        domain = self.get_object()
        data = api_forms.valid(RenameForm(api_forms.body(request), domain=domain))
        return enqueue(lambda: domain_services.domain_action_enqueue(
            domain=domain, action="rename", user=request.user, arguments={"name": data["name"]}),
            domain_services.DomainBusy, domain_services.ActionNotAllowed)


class OperationList(ApiListView):
    serializer_class = OperationSerializer

    def get_queryset(self):
        return filtered(operations_for(self.request.user).select_related("user").order_by("-pk"),
                        self.request, "state", "kind", "host_id")

    @extend_schema(parameters=[OpenApiParameter("state", str, enum=list(OperationState.values)),
                               OpenApiParameter("kind", str), OpenApiParameter("host_id", int)])
    def get(self, request):
        return super().get(request)


class OperationDetail(ApiDetailView):
    need, kind = VIEW, Operation
    serializer_class = OperationSerializer
    queryset = Operation.objects.select_related("user")


class OperationCancel(ApiView):
    need, kind = OPERATE, Operation
    serializer_class = OperationSerializer
    queryset = Operation.objects.select_related("user")

    @extend_schema(request=None, responses={200: OperationSerializer, 409: ErrorSerializer, **REFUSED})
    def post(self, request, pk: int):
        operation = self.get_object()
        if not operation_request_cancel(operation=operation, user=request.user):
            return Response({"detail": f"Operation #{operation.pk} has finished or cannot be stopped midway."},
                            status=status.HTTP_409_CONFLICT)
        operation.refresh_from_db()
        return Response(self.get_serializer(operation).data)




CreateVM = api_forms.schema_for(CreateDomainForm, "CreateVM")
Migrate = api_forms.schema_for(MigrateForm, "Migrate")


class DomainCreate(ApiView):
    """A new VM on the host, from the create wizard's fields (its pools and networks are the host's)."""

    need, kind, pk_kwarg = OPERATE, Host, "host_pk"
    serializer_class = CreateVM
    queryset = Host.objects.all()  # a disabled host is found, and refused with a message

    @queues(CreateVM)
    def post(self, request, host_pk: int):
        host = self.object
        if not host.enabled:
            raise ValidationError({"non_field_errors": [f"{host.name} is disabled: enable it first."]})
        form = CreateDomainForm(api_forms.body(request), host=host, user=request.user)
        api_forms.valid(form)
        return queued(operation_enqueue(kind="domain.create", target=host, host=host, user=request.user,
                                        arguments=create_arguments(form)))


class DomainMigrate(ApiView):
    """Move the VM to another host; the user must operate both."""

    need, kind = OPERATE, Domain
    serializer_class = Migrate
    queryset = Domain.objects.select_related("host")

    @queues(Migrate)
    def post(self, request, pk: int):
        domain = self.get_object()
        form = MigrateForm(api_forms.body(request), domain=domain, user=request.user)
        destination = api_forms.valid(form)["destination"]
        if not hosts_for(request.user, OPERATE).filter(pk=destination.pk).exists():
            raise PermissionDenied(f"Your role does not allow moving VMs to {destination.name}.")
        return enqueue(lambda: domain_migrate_enqueue(domain=domain, destination=destination, options=form.options(),
                                                      user=request.user), domain_services.DomainBusy)
