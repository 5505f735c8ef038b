"""The API's view base: each view declares what it needs (`need`, per method if it differs) on
which object (`kind`), as the pages do; api.permissions enforces it."""
from __future__ import annotations

from collections.abc import Callable

from django.db.models import Model
from django.urls import reverse
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.generics import GenericAPIView, ListAPIView, RetrieveAPIView
from rest_framework.response import Response

from accounts.access import VIEW
from api.permissions import Declared
from operations.models import Operation


class Busy(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Another operation on this object has not finished yet."
    default_code = "busy"


class ApiAccess:
    """The declaration every API view makes, and what it takes to serve without the login redirect."""

    need: str | dict[str, str] = VIEW
    kind: type[Model] | None = None
    pk_kwarg = "pk"
    permission_classes = [Declared]
    object = None  # the object the permission check found and allowed

    @classmethod
    def as_view(cls, **initkwargs):
        view = super().as_view(**initkwargs)
        view.login_required = False  # the API answers 401 itself; the pages' login redirect is not for it
        return view

    def need_for(self, method: str) -> str:
        if isinstance(self.need, str):
            return self.need
        return self.need.get("GET" if method in ("HEAD", "OPTIONS") else method, VIEW)

    def get_object(self):
        """The object the permission check found (and allowed), through the view's queryset."""
        return self.object


class ApiView(ApiAccess, GenericAPIView):
    """An action or a change on one object, or a list's POST."""


class ApiDetailView(ApiAccess, RetrieveAPIView):
    """One object, which the user may see (and, per method, change)."""


class ApiListView(ApiAccess, ListAPIView):
    """A list, paginated (api.pagination), of what the user may see."""


MAX_ID = 2**63 - 1


def filtered(queryset, request, *fields: str):
    """?<field>=value filters for the listed fields, exact. An id that no row can have (not a
    number, too large) or a NUL (which PostgreSQL refuses) matches nothing rather than failing."""
    for field in fields:
        value = request.query_params.get(field)
        if value in (None, ""):
            continue
        if "\x00" in value or (field.endswith("_id") and not (value.isdigit() and int(value) <= MAX_ID)):
            return queryset.none()
        queryset = queryset.filter(**{field: value})
    return queryset


def queued(operation: Operation) -> Response:
    """202 with the operation that carries the action out."""
    return Response({"operation": operation.pk, "url": reverse("api:operation", args=[operation.pk])},
                    status=status.HTTP_202_ACCEPTED)


def enqueue(call: Callable[[], Operation], *busy: type[Exception]) -> Response:
    """Queue an operation; a busy object answers 409, a refused action 409 with its reason."""
    try:
        return queued(call())
    except busy as exc:
        raise Busy(str(exc)) from None
