"""The answer of an old VM or network URL: a moved VM's id forwards to its row, a deleted object's
page says what happened (410) and links back to the list. Only for users who could see the object;
everyone else gets the same 404 as for an id that never existed.

`TombstoneMiddleware` turns the 404 of a view that declares a VM or network (`kind`, checked by
accounts.mixins.Access) into that answer, so that no view has to know of tombstones."""
from __future__ import annotations

from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from accounts.access import VIEW, domains_for, may_see_tombstone
from domains.models import Domain
from tombstones.models import Tombstone
from tombstones.services import tombstone_of

LISTS = {"domain": ("domains:list", "VMs"), "virtualnetwork": ("networking:list", "networks")}
NOUNS = {"domain": "VM", "virtualnetwork": "network"}


class TombstoneMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        match = request.resolver_match
        model = getattr(getattr(match.func, "view_class", None), "kind", None) if match else None
        if not isinstance(exception, Http404) or model is None or not request.user.is_authenticated:
            return None
        return gone_response(request, model, match.kwargs.get(getattr(match.func.view_class, "pk_kwarg", "pk")))


def gone_response(request: HttpRequest, model: type[Model], pk) -> HttpResponse | None:
    """None when there is nothing to say (no tombstone, or not the user's to see)."""
    kind = model._meta.model_name
    if kind not in LISTS or not str(pk).isdigit():
        return None
    tombstone = tombstone_of(kind=kind, object_id=int(pk))
    if tombstone is None or not may_see_tombstone(request.user, tombstone):
        return None
    now = _where_now(request, tombstone)
    if now is not None and request.method in ("GET", "HEAD"):
        return HttpResponseRedirect(_same_view_for(request, now.pk))
    if _wants_json(request):
        # moved_to: this same route for the VM's row now (a console's token URL: Reconnect retries there).
        return JsonResponse({"error": describe(tombstone, now), "gone": True,
                             "moved_to": _same_view_for(request, now.pk) if now else None}, status=410)
    list_url, list_label = LISTS[kind]
    return render(request, "tombstones/gone.html", {
        "tombstone": tombstone, "noun": NOUNS[kind], "now": now, "description": describe(tombstone, now),
        "list_url": reverse(list_url), "list_label": list_label}, status=410)


def describe(tombstone: Tombstone, now: Domain | None = None) -> str:
    noun = NOUNS[tombstone.kind]
    if now is not None:
        return f"The {noun} {tombstone.name} is now on {now.host.name}."
    who = f" by {tombstone.by.get_username()}" if tombstone.by else ""
    when = tombstone.at.strftime("%Y-%m-%d %H:%M UTC")
    return f"The {noun} {tombstone.name} is gone from {tombstone.host_name} ({tombstone.how}{who}, {when})."


def _where_now(request: HttpRequest, tombstone: Tombstone) -> Domain | None:
    """The same VM (same UUID) where it runs now, if the user may see it there."""
    if tombstone.kind != "domain":
        return None
    return domains_for(request.user, VIEW).filter(uuid=tombstone.uuid).select_related("host").order_by("pk").first()


def _same_view_for(request: HttpRequest, pk: int) -> str:
    match = request.resolver_match
    url = reverse(f"{match.namespace}:{match.url_name}" if match.namespace else match.url_name,
                  args=match.args, kwargs={**match.kwargs, "pk": pk})
    query = request.META.get("QUERY_STRING")
    return f"{url}?{query}" if query else url


def _wants_json(request: HttpRequest) -> bool:
    """Pages fetch JSON (graphs) or POST from scripts with the CSRF header (the console's token)."""
    return (request.path.endswith(".json") or "application/json" in request.headers.get("Accept", "")
            or "X-CSRFToken" in request.headers)
