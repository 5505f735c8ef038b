"""The access check hands the view its object (accounts/mixins.py, api/permissions.py): every page
and API route about one object reads that object's row once, in the check, never again in the view.
The routes are found by walking the URL configuration, so a new view that fetches its object a
second time fails here without being listed."""
from __future__ import annotations

import re
import traceback

import pytest
from django.db import connection, transaction
from django.urls import resolve, reverse

from accounts.mixins import Access
from tests.security.test_urlconf import all_routes, objects  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db]


def reads_of(queries: list[tuple[str, bool]], model, pk: int) -> list[str]:
    """The queries that read this one row of the model's table by its id. The row lock the busy rule
    takes (operations.services.operation_enqueue) is not a fetch: it reads the row again on purpose."""
    table = model._meta.db_table
    by_id = re.compile(rf'\bFROM "{table}"(?: |$).*\bWHERE \(?"{table}"\."id" = {pk}\b', re.S)
    return [sql for sql, locking in queries if by_id.search(sql) and not locking]


class Recorded:
    """Every query run inside, with whether the busy rule's row lock ran it (SQLite drops FOR UPDATE
    from the SQL, so the call stack says it)."""

    def __init__(self):
        self.queries: list[tuple[str, bool]] = []

    def __call__(self, execute, sql, params, many, context):
        locking = any(frame.name == "operation_enqueue" for frame in traceback.extract_stack())
        result = execute(sql, params, many, context)
        self.queries.append((connection.ops.last_executed_query(context["cursor"], sql, params), locking))
        return result

    def __enter__(self):
        self.wrapper = connection.execute_wrapper(self)
        self.wrapper.__enter__()
        return self

    def __exit__(self, *exc):
        return self.wrapper.__exit__(*exc)


def declared(url: str, method: str = "GET"):
    view = resolve(url).func.view_class
    return view, (view.kind if issubclass(view, Access) or hasattr(view, "need") else None)


def object_of(model, objects: dict):
    return next(value for value in objects.values() if type(value) is model)


def fetched(client, method: str, url: str, model, pk: int, **data) -> tuple[int, list[str]]:
    with Recorded() as recorded:
        response = getattr(client, method)(url, data)
    return response.status_code, reads_of(recorded.queries, model, pk)


@pytest.mark.integration  # some pages read Redis (whether a listener watches a host)
def test_every_page_and_api_route_reads_its_object_once(objects, admin_client):
    checked = []
    for url in all_routes(objects):
        view, kind = declared(url)
        if kind is None:
            continue
        pk = object_of(kind, objects).pk
        status, reads = fetched(admin_client, "get", url, kind, pk)
        if status == 405:
            continue  # POST only: below
        assert len(reads) == 1, f"GET {url} ({view.__name__}) read its {kind.__name__} {len(reads)} times:\n" + \
            "\n".join(reads)
        checked.append(view.__name__)
    assert {"DomainDetailView", "HostDetailView", "PoolDetailView", "VolumeDetailView", "NetworkDetailView",
            "OperationDetailView", "AttachDiskView", "DomainMigrateView", "HostDetail", "DomainDetail"} <= set(checked)


def test_posted_forms_and_buttons_read_their_object_once(objects, admin_client):
    """POSTs as an administrator, each undone afterwards: a refused form, an action, a button."""
    domain, host, pool, network = objects["domain"], objects["host"], objects["pool"], objects["network"]
    posts = [
        (reverse("domains:rename", args=[domain.pk]), domain, {"name": ""}),
        (reverse("domains:config_vcpus", args=[domain.pk]), domain, {"vcpus": "0"}),
        (reverse("domains:snapshot_create", args=[domain.pk]), domain, {"name": "/"}),
        (reverse("domains:action", args=[domain.pk, "start"]), domain, {}),
        (reverse("hosts:sync", args=[host.pk]), host, {}),
        (reverse("storage:pool_action", args=[pool.pk, "refresh"]), pool, {}),
        (reverse("networking:action", args=[network.pk, "refresh"]), network, {}),
    ]
    for url, obj, data in posts:
        with transaction.atomic():
            status, reads = fetched(admin_client, "post", url, type(obj), obj.pk, **data)
            transaction.set_rollback(True)
        assert status in (200, 302, 400, 409), f"POST {url}: {status}"
        assert len(reads) == 1, f"POST {url} read its {type(obj).__name__} {len(reads)} times:\n" + "\n".join(reads)


def test_a_user_without_access_is_refused_before_the_view_reads_anything_else(objects, client, django_user_model):
    """The check answers first: a user with no grant gets the 404, with the row read once, and none of
    the page's own queries run."""
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))
    domain = objects["domain"]
    with Recorded() as recorded:
        response = client.get(reverse("domains:detail", args=[domain.pk]))
    assert response.status_code == 404
    assert len(reads_of(recorded.queries, type(domain), domain.pk)) == 1
    assert not [sql for sql, _locking in recorded.queries if "operations_operation" in sql]
