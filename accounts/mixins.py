"""Views declare what they need (`need`) on which object (`kind`, the id in `pk_kwarg`); this mixin
enforces it before the view runs. An object the user may not even see answers 404, one they may
see but not change answers 403. The route walk in tests/security checks that every view declares.

The check hands the view its object: `self.object`, looked up once through the view's `queryset`
(declare it with the select_related the view needs) or, without one, every row of `kind`. A view
never fetches its object a second time; `get_object()` (DetailView's question) returns it."""
from __future__ import annotations

from django.contrib.auth.mixins import AccessMixin
from django.db.models import Model, QuerySet

from accounts.access import VIEW, authorise


def declared_objects(view) -> QuerySet | None:
    """Where a view's declared object is looked up (pages and the API alike): the view's own
    `queryset`, so that the object found is the one the view serves, else all rows of `kind`;
    None for a view about no object in particular."""
    if view.kind is None:
        return None
    queryset = getattr(view, "queryset", None)
    return queryset.all() if queryset is not None else view.kind.objects.all()


class Access(AccessMixin):
    need: str = VIEW
    kind: type[Model] | None = None
    pk_kwarg: str = "pk"
    host_need: str | None = None  # also needed on the object's host (making a new VM there: a clone)
    object: Model | None = None  # the object the check found and allowed (None when kind is None)

    def dispatch(self, request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return self.handle_no_permission()
        self.object = authorise(user, self.need, declared_objects(self), kwargs.get(self.pk_kwarg), self.host_need)
        return super().dispatch(request, *args, **kwargs)

    def get_object(self, queryset=None) -> Model | None:
        return self.object
