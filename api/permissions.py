"""The API's access check: the pages' declarations (`need`, `kind`) checked by the pages' function
(accounts.access.authorise), through the view's queryset as the pages' (accounts.mixins). DRF
answers its Http404 as 404 and its PermissionDenied as 403; no or a bad token is a 401."""
from __future__ import annotations

from rest_framework import permissions

from accounts.access import authorise
from accounts.mixins import declared_objects


class Declared(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        view.object = authorise(user, view.need_for(request.method), declared_objects(view),
                                view.kwargs.get(view.pk_kwarg), getattr(view, "host_need", None))
        return True
