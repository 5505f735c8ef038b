"""Walk the whole URL configuration: no view changes anything on GET, and no POST is accepted
without the CSRF token. Every route is found by walking, so a new view is checked without being
listed here; the table below only says which object an id in a route stands for."""
from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.models import Grant, Role
from backups.models import AttachedBackupDisk, BackupJob, RestorePoint
from api.tokens import api_token_issue
from domains.models import Domain
from hosts.models import Host
from hosts.services import installation_ssh_key
from networking.models import HostInterface, NetworkFilter, VirtualNetwork
from storage.models import StoragePool, Volume
from operations.models import Operation

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # every route × every role


def routes(patterns=None, prefix: str = "", namespace: str = ""):
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace or namespace
            yield from routes(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            yield namespace, pattern.name, prefix + str(pattern.pattern), pattern.pattern.converters


@pytest.fixture
def objects(db):
    installation_ssh_key()  # made by migrate on a real installation (hosts/apps.py)
    host = Host.objects.create(name="walked", transport="test", address="default")
    domain = Domain.objects.create(host=host, uuid="6695eb01-f6a4-8304-79aa-97f2502e193f", name="test",
                                   synced_at=timezone.now())
    operation = Operation.objects.create(kind="host.sync", target_type="host", target_id=host.pk,
                                         target_label=host.name, host=host)
    cached = {"host": host, "synced_at": timezone.now()}
    network = VirtualNetwork.objects.create(uuid="6695eb01-f6a4-8304-79aa-97f2502e1940", name="walked-net", **cached)
    interface = HostInterface.objects.create(uuid="6695eb01-f6a4-8304-79aa-97f2502e1941", name="eth9", **cached)
    nwfilter = NetworkFilter.objects.create(uuid="6695eb01-f6a4-8304-79aa-97f2502e1942", name="walked", **cached)
    pool = StoragePool.objects.create(uuid="6695eb01-f6a4-8304-79aa-97f2502e1943", name="walked-pool", pool_type="dir",
                                      active=True, **cached)
    volume = Volume.objects.create(host=host, pool=pool, key="/walked/v.img", name="v.img", synced_at=timezone.now())
    walked_user = get_user_model().objects.create_user("walked", password="x")
    grant = Grant.objects.create(user=walked_user, host=host, role=Role.VIEWER)
    token, _text = api_token_issue(user=walked_user, name="walked", days=None)
    point = RestorePoint.objects.create(host=host, domain_uuid=domain.uuid, domain_name=domain.name, name="walked",
                                        kind="full", chain="6695eb01-f6a4-8304-79aa-97f2502e1944", pool_name="walked-pool",
                                        manifest="walked.manifest.json", consistency="walked", domain_xml="<domain/>")
    job = BackupJob.objects.create(name="walked", host=host, selection="host", pool_name="walked-pool",
                                   schedule="0 2 * * *")
    attached = AttachedBackupDisk.objects.create(domain=domain, point=point, point_label="vda of walked", device="vdb",
                                                 pool_name="walked-pool", volume="walked-vda.qcow2")
    return {"token": token, "point": point, "job": job, "attached": attached, "host": host, "domain": domain, "operation": operation, "network": network, "interface": interface,
            "filter": nwfilter, "pool": pool, "volume": volume, "user": walked_user, "grant": grant}


# (namespace, route name) -> which object an id in the route is; (namespace, "*") for the rest of
# the namespace. A route with an id found nowhere here is a test failure: say what it is.
OBJECT_FOR = {
    ("hosts", "*"): "host", ("domains", "*"): "domain", ("domains", "create"): "host",
    ("operations", "*"): "operation", ("metrics", "domain_series"): "domain", ("metrics", "host_series"): "host",
    ("networking", "*"): "network", ("networking", "interface_delete"): "interface",
    ("networking", "devices_refresh"): "host", ("networking", "filter_detail"): "filter",
    ("networking", "filter_delete"): "filter", ("users", "*"): "user", ("users", "grant_remove", "grant_pk"): "grant",
    ("consoles", "*"): "domain",
    ("storage", "*"): "volume", ("storage", "define"): "host", ("storage", "define_type"): "host",
    ("storage", "discover"): "host", ("storage", "pool"): "pool", ("storage", "pool_delete"): "pool",
    ("storage", "volume_create"): "pool", ("storage", "upload"): "pool", ("storage", "pool_action"): "pool",
    ("account", "token_revoke"): "token",
    ("api", "host"): "host", ("api", "host_sync"): "host", ("api", "pool_define"): "host", ("api", "vm_create"): "host",
    ("api", "vm"): "domain", ("api", "vm_action"): "domain", ("api", "vm_rename"): "domain",
    ("api", "operation"): "operation", ("api", "operation_cancel"): "operation",
    ("api", "pool"): "pool", ("api", "pool_action"): "pool", ("api", "volume_create"): "pool", ("api", "upload_start"): "pool",
    ("api", "volume"): "volume", ("api", "volume_action"): "volume", ("api", "volume_give"): "volume",
    ("api", "volume_shareable"): "volume",
    ("api", "network"): "network", ("api", "network_action"): "network", ("api", "grant"): "grant",
    ("api", "*"): "domain",  # the VM changes (api/views_vm_changes.py)
    ("domains", "create_default"): "host", ("domains", "create_choices"): "host",
    ("backups", "*"): "domain", ("backups", "restore", "point_id"): "point",
    ("backups", "restore_in_place", "point_id"): "point", ("backups", "attach_disk", "point_id"): "point",
    ("backups", "detach_disk", "attached_id"): "attached",
    ("api", "vm_backup_restore", "point_id"): "point", ("api", "vm_backup_restore_in_place", "point_id"): "point",
    ("api", "vm_backup_attach", "point_id"): "point", ("api", "vm_backup_detach", "attached_id"): "attached",
    ("backup_jobs", "*"): "job", ("api", "backup_job"): "job", ("api", "backup_job_run"): "job",
}
TEXT_FOR = {"action": "start", "pool_type": "netfs", "what": "pool"}


def concrete(namespace: str, url_name: str, route: str, converters: dict, objects: dict) -> str:
    path = "/" + route
    for name, converter in converters.items():
        if name in TEXT_FOR:
            value = TEXT_FOR[name]
        else:
            key = (OBJECT_FOR.get((namespace, url_name, name)) or OBJECT_FOR.get((namespace, url_name))
                   or OBJECT_FOR.get((namespace, "*")))
            assert key is not None, f"{namespace}:{route}: say in OBJECT_FOR which object <{name}> is"
            value = objects[key].pk
        placeholder = f"<{type(converter).__name__.removesuffix('Converter').lower()}:{name}>"
        path = path.replace(placeholder, str(value)).replace(f"<{name}>", str(value))
    return path.replace("^", "").replace("$", "")


def row_counts() -> dict[str, int]:
    """Every table's row count (sessions aside), read in one query: the fuzzers count before and after
    each of thousands of posts, and a count per model was a round trip each."""
    models = [model for model in apps.get_models() if model._meta.label != "sessions.Session"]
    counts = ", ".join(f"(SELECT COUNT(*) FROM {connection.ops.quote_name(model._meta.db_table)})"
                       for model in models)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        row = cursor.fetchone()
    return {model._meta.label: count for model, count in zip(models, row)}


def all_routes(objects) -> list[str]:
    found = [concrete(ns, name, route, conv, objects) for ns, name, route, conv in routes()]
    assert len(found) > 30
    return found


@pytest.mark.integration  # reaches a libvirtd or Redis
def test_no_route_changes_anything_on_get(objects, admin_client):
    before = row_counts()
    for url in all_routes(objects):
        response = admin_client.get(url)
        assert response.status_code < 500, f"GET {url}: {response.status_code}"
        assert row_counts() == before, f"GET {url} changed the database"


def test_no_route_accepts_a_post_without_the_csrf_token(objects, admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    before = row_counts()
    for url in all_routes(objects):
        response = client.post(url, {"name": "x", "action": "start"})
        # Once a page has set the CSRF cookie (any page with a form), DRF's CSRF check reads the form
        # body through the API's JSON-only parsers and refuses it as 415 before any view runs.
        refusals = (403, 405, 415) if url.startswith("/api/") else (403, 405)
        assert response.status_code in refusals, f"POST {url} without a CSRF token: {response.status_code}"
    assert row_counts() == before


def test_the_login_form_needs_the_csrf_token_too(client):
    csrf_client = Client(enforce_csrf_checks=True)
    assert csrf_client.post("/login/", {"username": "a", "password": "b"}).status_code == 403
