"""The API's access check: the pages' declarations (`need`, `kind`) checked by the pages' function
(accounts.access.authorise). DRF answers its Http404 as 404 and its PermissionDenied as 403; no or
a bad token is a 401."""
from __future__ import annotations

from rest_framework import permissions

from accounts.access import authorise


class Declared(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        # Through the view's own queryset, so that the object found is the one the view serves.
        objects = None if view.kind is None else (
            view.queryset.all() if getattr(view, "queryset", None) is not None else view.kind.objects.all())
        view.access_object = authorise(user, view.need_for(request.method), objects,
                                       view.kwargs.get(view.pk_kwarg), getattr(view, "host_need", None))
        return True
