"""The API's access check: the same declarations (`need`, `kind`) and the same rules
(accounts.access) as the pages. Unseen objects answer 404, seen but not allowed 403, no or a bad
token 401."""
from __future__ import annotations

from rest_framework import exceptions, permissions

from accounts.access import ADMIN, OPERATE, VIEW, is_admin, may, operates_anything


class Declared(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        need = view.need_for(request.method)
        if view.kind is None:
            if need == ADMIN and not is_admin(user):
                raise exceptions.PermissionDenied("Administrators only.")
            if need == OPERATE and not operates_anything(user):
                raise exceptions.PermissionDenied("Your role does not allow changes.")
            return True
        obj = view.kind.objects.filter(pk=view.kwargs[view.pk_kwarg]).first()
        if obj is None or not may(user, VIEW, obj):
            raise exceptions.NotFound(f"No such {view.kind._meta.verbose_name}.")
        if need != VIEW and not may(user, need, obj):
            raise exceptions.PermissionDenied(f"Your role does not allow this on {obj}.")
        host_need = getattr(view, "host_need", None)  # a new VM on the object's host (a clone)
        if host_need and not may(user, host_need, obj.host):
            raise exceptions.PermissionDenied(f"Your role does not allow making VMs on {obj.host}.")
        view.access_object = obj
        return True
