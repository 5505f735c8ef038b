"""VM tags without a daemon of their own: the form's rules, the XML they are kept in (libvirt's test
driver with a private file stands for libvirtd), the row they are cached on, the VM page and list that
show them, and who may set them."""
from __future__ import annotations

import shutil
import uuid

import libvirt
import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Grant, Role
from domains.choices import DomainState
from domains.forms_config import TagsForm
from domains.models import Domain
from hosts.models import Host
from operations.models import Operation
from tests.virt.helpers import SAMPLES
from virt.devices import set_tags
from virt.domains import read_state
from virt.xml.domain import Domain as DomainXML
from virt.xml.domain import TagList

pytestmark = pytest.mark.django_db


@pytest.fixture
def vm(db):
    host = Host.objects.create(name="tag-host", transport="test", address="default")
    return Domain.objects.create(host=host, uuid=uuid.uuid4(), name="tag-vm", state=DomainState.SHUTOFF,
                                 persistent=True, synced_at=timezone.now(), tags=["web", "nightly"])


@pytest.mark.parametrize("text, tags", [
    ("web, nightly", ["web", "nightly"]),
    ("  Web   NIGHTLY,web ,, db-1 ", ["web", "nightly", "db-1"]),  # lower-cased, once each, any separators
    ("", []),  # removes them all
    ("a" * 32, ["a" * 32]),
])
def test_the_form_reads_tags(vm, text, tags):
    form = TagsForm({"tags": text}, domain=vm)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["tags"] == tags


@pytest.mark.parametrize("text, message", [
    ("web, -db", "Not a tag: -db. A tag is 1 to 32 lower-case letters"),
    ("ok, web/1, a;b", "Not a tag: web/1, a;b."),
    ("a" * 33, "Not a tag: " + "a" * 33),
    (" ".join(f"t{n}" for n in range(17)), "17 tags: a VM has at most 16."),
])
def test_the_form_refuses_what_is_not_a_tag(vm, text, message):
    form = TagsForm({"tags": text}, domain=vm)
    assert not form.is_valid()
    assert message in form.errors["tags"][0]


def test_tags_live_in_the_domains_metadata_under_vmsites_namespace(tmp_path):
    node = tmp_path / "node.xml"
    shutil.copy(SAMPLES / "node.xml", node)
    conn = libvirt.open("test://" + str(node))
    domain = conn.listAllDomains(0)[0]
    assert set_tags(domain, tags=["web", "db-1"]) == "Tags set: web, db-1"
    live = domain.XMLDesc(0)
    assert 'xmlns:vmsitetags="http://vmsite.local/xmlns/tags/1.0"' in live and '<vmsitetags:tag name="db-1"/>' in live
    assert DomainXML.from_libvirt(live).tags == ["web", "db-1"]
    assert read_state(domain).tags == ["web", "db-1"]  # what domains/sync.py stores on the row
    assert set_tags(domain, tags=[]) == "Tags removed"
    assert "vmsitetags" not in domain.XMLDesc(0) and read_state(domain).tags == []
    element = TagList.new()
    with pytest.raises(ValueError, match="'Web' : |a tag is 1 to 32"):
        element.names = ["Web"]
    conn.close()


def test_the_vm_page_and_list_show_tags_and_an_operator_sets_them(vm, client, django_user_model):
    operator = django_user_model.objects.create_user("tagger", password="x")
    Grant.objects.create(user=operator, domain=vm, role=Role.OPERATOR)
    client.force_login(operator)
    page = client.get(reverse("domains:detail", args=[vm.pk])).content.decode()
    assert 'data-action="set_tags"' in page and page.count('class="badge rounded-pill text-bg-light border vm-tag"') == 2
    listing = client.get(reverse("domains:list")).content.decode()
    assert ">nightly</span>" in listing
    form = client.get(reverse("domains:config_tags", args=[vm.pk])).content.decode()
    assert 'value="web, nightly"' in form
    refused = client.post(reverse("domains:config_tags", args=[vm.pk]), {"tags": "a b!"})
    assert refused.status_code == 400 and "Not a tag: b!" in refused.content.decode()
    assert client.post(reverse("domains:config_tags", args=[vm.pk]), {"tags": "db, web"}).status_code == 302
    operation = Operation.objects.get()
    assert operation.kind == "domain.set_tags" and operation.arguments == {"tags": ["db", "web"]}


def test_a_viewer_sees_tags_but_may_not_set_them(vm, client, django_user_model):
    viewer = django_user_model.objects.create_user("tag-viewer", password="x")
    Grant.objects.create(user=viewer, domain=vm, role=Role.VIEWER)
    client.force_login(viewer)
    page = client.get(reverse("domains:detail", args=[vm.pk])).content.decode()
    assert ">nightly</span>" in page and 'data-action="set_tags"' not in page
    assert client.post(reverse("domains:config_tags", args=[vm.pk]), {"tags": "db"}).status_code == 403
    assert not Operation.objects.exists()
