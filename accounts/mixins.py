"""Views declare what they need (`need`) on which object (`kind`, the id in `pk_kwarg`); this mixin
enforces it before the view runs. An object the user may not even see answers 404, one they may
see but not change answers 403. The route walk in tests/security checks that every view declares."""
from __future__ import annotations

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404

from accounts.access import ADMIN, OPERATE, VIEW, is_admin, may, operates_anything


class Access(AccessMixin):
    need: str = VIEW
    kind: type[Model] | None = None
    pk_kwarg: str = "pk"
    host_need: str | None = None  # also needed on the object's host (making a new VM there: a clone)

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return self.handle_no_permission()
        if self.kind is None:
            if self.need == ADMIN and not is_admin(user):
                raise PermissionDenied("Administrators only.")
            if self.need == OPERATE and not operates_anything(user):
                raise PermissionDenied("Your role does not allow changes.")
        else:
            obj = self.kind.objects.filter(pk=kwargs[self.pk_kwarg]).first()
            if obj is None or not may(user, VIEW, obj):
                raise Http404(f"No such {self.kind._meta.verbose_name}.")
            if self.need != VIEW and not may(user, self.need, obj):
                raise PermissionDenied(f"Your role does not allow this on {obj}.")
            if self.host_need and not may(user, self.host_need, obj.host):
                raise PermissionDenied(f"Your role does not allow making VMs on {obj.host}.")
            self.access_object = obj
        return super().dispatch(request, *args, **kwargs)
