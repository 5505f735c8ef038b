"""Edit, disable, remove, reconcile and the host_* commands, against libvirt's test driver."""
import shutil
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host
from inventory.reconcile import apply_inventory, host_reconcile
from inventory.tasks import reconcile_all_hosts
from networking.models import VirtualNetwork
from operations.models import Operation
from storage.models import StoragePool
from tests.guests import small_guest_xml
from tests.virt.helpers import SAMPLES
from virt.connection import pool
from virt.inventory import read_inventory
from vmsite.celery import app

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_host(tmp_path):
    """A host on libvirt's test driver, over a private copy of a node file (one domain, web1)."""
    node = tmp_path / "node.xml"
    shutil.copy(SAMPLES / "node.xml", node)
    host = Host.objects.create(name="demo", transport="test", address=str(node))
    yield host
    pool().drop(host.uri)


def test_it_applies_new_changed_and_gone_domains_as_a_diff(test_host):
    diffs = host_reconcile(host=test_host)
    assert (diffs["domains"].new, diffs["domains"].total) == (1, 1)
    web1 = Domain.objects.get(host=test_host, name="web1")
    assert (web1.state, web1.seq) == (DomainState.RUNNING, 0)
    assert [disk["target"] for disk in web1.details["disks"]] and web1.details["name"] == "web1"
    conn = pool().get(test_host.uri)
    assert StoragePool.objects.filter(host=test_host).count() == len(conn.listAllStoragePools())
    assert VirtualNetwork.objects.filter(host=test_host).count() == len(conn.listAllNetworks())

    conn.lookupByName("web1").suspend()
    conn.defineXML(small_guest_xml("added").replace("type=\"kvm\"", "type=\"test\"").replace("type=\"qemu\"", "type=\"test\""))
    diffs = host_reconcile(host=test_host)
    assert (diffs["domains"].new, diffs["domains"].changed, diffs["domains"].gone) == (1, 1, 0)
    web1.refresh_from_db()
    assert (web1.state, web1.seq) == (DomainState.PAUSED, 1)

    conn.lookupByName("added").undefine()
    assert host_reconcile(host=test_host)["domains"].gone == 1
    assert set(Domain.objects.filter(host=test_host).values_list("name", flat=True)) == {"web1"}
    test_host.refresh_from_db()
    assert test_host.status == "online" and test_host.synced_at is not None


def test_it_reads_missing_summaries_on_reconnect(test_host):
    host_reconcile(host=test_host)
    Domain.objects.filter(host=test_host).update(details={})  # as rows cached before summaries existed
    host_reconcile(host=test_host)
    assert Domain.objects.get(host=test_host, name="web1").details == {}  # periodic: no extra work
    host_reconcile(host=test_host, fresh=True)
    assert Domain.objects.get(host=test_host, name="web1").details["name"] == "web1"


def test_it_reconciles_only_enabled_hosts_periodically(test_host, redis_ready):
    disabled = Host.objects.create(name="off", transport="test", address="default", enabled=False)
    app.conf.task_always_eager = True  # run the per-host tasks here, in this test's transaction
    try:
        assert reconcile_all_hosts() == 1
    finally:
        app.conf.task_always_eager = False
    assert Domain.objects.filter(host=test_host).exists()
    assert not Domain.objects.filter(host=disabled).exists()


def test_it_disables_and_enables_a_host(admin_client, test_host):
    admin_client.post(reverse("hosts:enable", args=[test_host.pk]), {"enabled": "0"})
    test_host.refresh_from_db()
    assert test_host.enabled is False
    admin_client.post(reverse("hosts:enable", args=[test_host.pk]), {"enabled": "1"})
    test_host.refresh_from_db()
    assert test_host.enabled is True


def test_it_removes_a_host_without_touching_its_guests(admin_client, test_host):
    host_reconcile(host=test_host)
    confirm = admin_client.get(reverse("hosts:remove", args=[test_host.pk])).content.decode()
    assert "Nothing on the host changes" in confirm
    response = admin_client.post(reverse("hosts:remove", args=[test_host.pk]))
    assert response.status_code == 302
    assert not Host.objects.filter(pk=test_host.pk).exists() and not Domain.objects.exists()
    assert pool().get(test_host.uri).lookupByName("web1").isActive()


def test_it_edits_a_host_and_reconnects(admin_client, test_host):
    response = admin_client.post(reverse("hosts:edit", args=[test_host.pk]), {
        "name": "demo-renamed", "transport": "test", "test_driver_file": test_host.address, "enabled": "on"})
    assert response.status_code == 302
    test_host.refresh_from_db()
    assert test_host.name == "demo-renamed"
    assert Operation.objects.get(host=test_host).kind == "host.connect"


def test_it_keeps_the_edit_form_filled_when_refusing(admin_client, test_host):
    response = admin_client.post(reverse("hosts:edit", args=[test_host.pk]), {
        "name": "demo", "transport": "tcp", "address": "bad address", "enabled": "on"})
    assert response.status_code == 400
    test_host.refresh_from_db()
    assert test_host.transport == "test"


def test_it_adds_lists_and_removes_hosts_from_the_command_line():
    out = StringIO()
    call_command("host_add", "kvm9", "--transport", "tcp", "--address", "kvm9.example.org", "--port", "16509",
                 stdout=out)
    assert "Registered host kvm9 (qemu+tcp://kvm9.example.org:16509/system)" in out.getvalue()
    out = StringIO()
    call_command("host_list", stdout=out)
    assert "kvm9" in out.getvalue() and "qemu+tcp://kvm9.example.org:16509/system" in out.getvalue()
    call_command("host_remove", "kvm9", stdout=StringIO())
    assert not Host.objects.exists()


@pytest.mark.parametrize("arguments, message", [
    (["x?command=/tmp/x", "--transport", "ssh", "--address", "kvm9"], "name:"),
    (["kvm9", "--transport", "ssh", "--address=-oProxyCommand=x"], "address: Not a valid host name"),
    (["kvm9", "--transport", "tcp", "--address", "kvm9", "--port", "70000"], "port: A port is a number"),
    (["kvm9", "--transport", "nope"], "transport: Select a valid choice"),
    (["kvm9", "--transport", "ssh", "--address", "kvm9", "--ssh-private-key", "/etc/hostname"],
     "ssh-private-key: That file is not an SSH private key."),
])
def test_it_validates_the_command_line_like_the_form(arguments, message):
    with pytest.raises(CommandError, match=message.replace("?", r"\?")):
        call_command("host_add", *arguments, stdout=StringIO())
    assert not Host.objects.exists()


def test_it_refuses_to_remove_an_unknown_host():
    with pytest.raises(CommandError, match="No host named 'ghost'"):
        call_command("host_remove", "ghost")


def test_a_reconcile_leaves_alone_the_rows_written_after_its_read_began(test_host):
    """A VM created, or stopped and refreshed, while a reconcile read and applied was deleted or set back by
    it: a listener's first reconcile took the row of a VM defined meanwhile for a VM gone (its open page
    never heard of the VM again), and wrote a stopped VM back to Running."""
    host_reconcile(host=test_host)
    web1 = Domain.objects.get(host=test_host, name="web1")
    with pool().session(test_host.uri) as conn:
        inventory = read_inventory(conn)  # web1 running, and no second VM yet
    created = Domain.objects.create(host=test_host, uuid=uuid.uuid4(), name="made-meanwhile", state=DomainState.RUNNING,
                                    synced_at=timezone.now())
    Domain.objects.filter(pk=web1.pk).update(state=DomainState.SHUTOFF, synced_at=timezone.now())  # a refresh

    apply_inventory(host=test_host, inventory=inventory)
    assert Domain.objects.filter(pk=created.pk).exists()
    assert Domain.objects.get(pk=web1.pk).state == DomainState.SHUTOFF

    with pool().session(test_host.uri) as conn:
        apply_inventory(host=test_host, inventory=read_inventory(conn))  # a read from after them: applied
    assert not Domain.objects.filter(pk=created.pk).exists()
    assert Domain.objects.get(pk=web1.pk).state == DomainState.RUNNING
