"""The suite's flush (tests/management/commands/flush.py) leaves the database as Django's would after
a migrate: every table empty but the content types and permissions, and post_migrate's rows there."""
import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command, get_commands

from hosts.models import Host, SSHKey

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_suite_runs_its_own_flush():
    assert get_commands()["flush"] == "tests"


def test_it_empties_every_table_and_keeps_what_migrate_writes():
    content_types = set(ContentType.objects.values_list("app_label", "model"))
    permissions = Permission.objects.count()
    get_user_model().objects.create(username="flushed")
    Host.objects.create(name="flushed", transport="tcp", address="127.0.0.1")

    call_command("flush", interactive=False, verbosity=0, reset_sequences=False, allow_cascade=False,
                 inhibit_post_migrate=False)

    left = {model._meta.label: model.objects.count() for model in apps.get_models()
            if model not in (ContentType, Permission, SSHKey) and model.objects.exists()}
    assert left == {}
    assert SSHKey.objects.count() == 1, "post_migrate's installation key, written again"
    assert set(ContentType.objects.values_list("app_label", "model")) == content_types
    assert Permission.objects.count() == permissions > 0
