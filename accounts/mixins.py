"""Views declare what they need (`need`) on which object (`kind`, the id in `pk_kwarg`); this mixin
enforces it before the view runs. An object the user may not even see answers 404, one they may
see but not change answers 403. The route walk in tests/security checks that every view declares."""
from __future__ import annotations

from django.contrib.auth.mixins import AccessMixin
from django.db.models import Model

from accounts.access import VIEW, authorise


class Access(AccessMixin):
    need: str = VIEW
    kind: type[Model] | None = None
    pk_kwarg: str = "pk"
    host_need: str | None = None  # also needed on the object's host (making a new VM there: a clone)

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return self.handle_no_permission()
        objects = self.kind.objects.all() if self.kind is not None else None
        self.access_object = authorise(user, self.need, objects, kwargs.get(self.pk_kwarg), self.host_need)
        return super().dispatch(request, *args, **kwargs)
