"""What every page view mixes in: the access check (Access) and, for pages with live parts, the
partial refresh (LiveFragments).

Views declare what they need (`need`) on which object (`kind`, the id in `pk_kwarg`); this mixin
enforces it before the view runs. An object the user may not even see answers 404, one they may
see but not change answers 403. The route walk in tests/security checks that every view declares.

The check hands the view its object: `self.object`, looked up once through the view's `queryset`
(declare it with the select_related the view needs) or, without one, every row of `kind`. A view
never fetches its object a second time; `get_object()` (DetailView's question) returns it."""
from __future__ import annotations

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import BadRequest
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

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


FRAGMENT_HEADER = "X-Live-Fragment"


def requested_fragment(request: HttpRequest) -> str | None:
    """The id of the page part a live refresh asks for (static/vmsite/live.js), or None for the page."""
    return request.headers.get(FRAGMENT_HEADER) or None


def fragment_template(request: HttpRequest, fragments: dict[str, str]) -> str | None:
    """The template of the one live part the request asks for, or None when it asks for the page.
    An id the page does not have is a bad request (400), not the whole page."""
    fragment = requested_fragment(request)
    if fragment is None:
        return None
    if fragment not in fragments:
        raise BadRequest(f"This page has no live part {fragment!r}.")
    return fragments[fragment]


def render_page(request: HttpRequest, template: str, context: dict, fragments: dict[str, str], *,
                status: int | None = None) -> HttpResponse:
    """render() for a page with live parts, for views that render by hand."""
    response = render(request, fragment_template(request, fragments) or template, context, status=status)
    patch_vary_headers(response, [FRAGMENT_HEADER])
    return response


class LiveFragments:
    """A page whose parts refresh themselves (static/vmsite/live.js): `fragments` maps the id of each
    live part to the template that renders that part alone, which the page includes. A request with
    the header X-Live-Fragment: <id> is answered with that template only, after the same access
    check as the page (Access runs first). The context is the page's; a part runs only the queries
    its own template makes, so what the page computes for other parts is best left lazy (querysets,
    SimpleLazyObject)."""

    fragments: dict[str, str] = {}

    def get_template_names(self) -> list[str]:
        part = fragment_template(self.request, self.fragments)
        return [part] if part else super().get_template_names()

    def render_to_response(self, context, **response_kwargs):
        response = super().render_to_response(context, **response_kwargs)
        patch_vary_headers(response, [FRAGMENT_HEADER])
        return response
