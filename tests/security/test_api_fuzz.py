"""schemathesis against the API's own OpenAPI schema: generated requests (valid and not) to every
operation, with an administrator's token (the widest code paths), and no answer may be a 500.
Half the generated ids are turned into ids of real objects so that cases get past the 404."""
from __future__ import annotations

from contextlib import contextmanager

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.api.conftest import token_client
from tests.security.test_urlconf import objects  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db]

# Which object a path's {id} names, by the path's first segment after /api/v1/.
KIND_BY_SEGMENT = {"hosts": "host", "vms": "domain", "operations": "operation", "pools": "pool",
                   "volumes": "volume", "networks": "network", "grants": "grant", "backup-jobs": "job"}


@contextmanager
def connections_kept_open():
    """As Django's test client does: a request's end must not close the test's database connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def api_schema():
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    schema.app = WSGIHandler()
    return schema


def real_ids(case, objects: dict) -> None:
    segment = case.path.removeprefix("/api/v1/").split("/")[0]
    for name, value in (case.path_parameters or {}).items():
        if isinstance(value, int) and value % 2 == 0:
            kind = "host" if name == "host_pk" else KIND_BY_SEGMENT[segment]
            case.path_parameters[name] = objects[kind].pk


SHARDS = 4  # the operations are fuzzed in four tests, so pytest-xdist spreads the work over its workers


def api_operations() -> list:
    """Every operation of the schema, deletions last (they would remove the objects the others use)."""
    operations = sorted((result.ok() for result in api_schema().get_all_operations()),
                        key=lambda operation: (operation.method.upper() == "DELETE", operation.method, operation.path))
    assert len(operations) > 25
    return operations


@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_request_makes_the_api_fail(shard, objects, admin_token):  # noqa: F811
    # schemathesis's own pytest plugin does not run under this pytest; its strategies are driven here.
    operations = api_operations()[shard::SHARDS]
    reached: set[str] = set()  # operations where some generated request got through: the fuzzing reached code
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        def call(case):
            real_ids(case, objects)
            response = case.call_and_validate(headers={"Authorization": f"Bearer {admin_token}"},
                                              checks=[not_a_server_error])
            if response.status_code < 300:
                reached.add(f"{case.method} {case.path}")

        with connections_kept_open():
            call()
    # a quarter of them, as the whole suite once asked 20 of 66 operations: the rest answer 4xx to every
    # generated case (made-up ids, bodies libvirt-wise wrong), which is what the 500 check is about
    assert len(reached) >= len(operations) // 4, f"{len(reached)} of {len(operations)}: {sorted(reached)}"


@pytest.fixture
def admin_token(db, redis_ready) -> str:
    from django.contrib.auth import get_user_model

    client = token_client(get_user_model().objects.create_superuser("fuzzer"))
    return client._credentials["HTTP_AUTHORIZATION"].split()[1]
