"""Tags, a job by tag with a health check, and a failed health check, with the suite's real guest on
this machine's libvirtd and a real worker, through the API: the VM is tagged (the tag lands in its
libvirt definition and on its row), a job selects it by that tag, its run backs it up and then
health-checks the new point: the point boots in a temporary VM with no network until the guest agent
answers, and the VM and its overlays are gone afterwards. A point whose definition has no agent
channel passes when its serial console shows a prompt; with no serial console either, it fails,
with the reason on the point. Last, the catalogue is lost and
`manage.py backups_rebuild` brings the point back from its manifest."""
from __future__ import annotations

import io
import uuid

import libvirt
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from backups.models import RestorePoint
from domains.models import Domain
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.api.conftest import token_client
from tests.backups.test_proof import finished, guest_with_disk  # noqa: F401  (a fixture)
from tests.domains.helpers import LOCAL, cached
from virt.healthcheck import NAME_PREFIX
from virt.xml.base import parse_trusted
from virt.xml.domain import GUEST_AGENT_CHANNEL
from virt.xml.domain import Domain as DomainXML

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def no_failures_left(login_failures_cleared):
    """API tokens count failed logins in Redis: each test starts with none."""


def _operation(answer) -> Operation:
    assert answer.status_code == 202, answer.content.decode()[:2000]
    return Operation.objects.get(pk=answer.json()["operation"])


def _ended(operation: Operation) -> Operation:
    def done() -> bool:
        operation.refresh_from_db()
        return operation.is_finished

    stack.wait_until(done, timeout=120, message=f"{operation.kind} #{operation.pk} to finish")
    return operation


def test_a_job_by_tag_backs_up_and_health_checks_its_points(
        celery_worker, local_host, guest_with_disk, backup_pool):  # noqa: F811
    guest = guest_with_disk
    domain = cached(local_host, guest.domain)
    api = token_client(get_user_model().objects.create_superuser(f"hc-{uuid.uuid4().hex[:6]}", password="x"))
    tag = f"hc-{uuid.uuid4().hex[:6]}"

    refused = api.post(reverse("api:vm_tags", args=[domain.pk]), {"tags": "Web Server!"}, format="json")
    assert refused.status_code == 400 and "Not a tag: server!" in refused.content.decode()
    tagged = finished(_operation(api.post(reverse("api:vm_tags", args=[domain.pk]), {"tags": f"web, {tag}"},
                                          format="json")))
    assert tagged.message.startswith(f"Tags set: web, {tag}")
    inactive = DomainXML.from_libvirt(guest.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    assert inactive.tags == ["web", tag]  # libvirt holds them
    domain.refresh_from_db()
    assert domain.tags == ["web", tag]

    made = api.post(reverse("api:backup_jobs"), {
        "name": f"tagged-{tag}", "host": local_host.pk, "selection": "tag", "tag": tag, "pool_name": backup_pool.name,
        "schedule": "0 3 * * *", "full_every": 7, "full_every_unit": "days", "keep_last": 3, "health_check": True,
        "enabled": True}, format="json")
    assert made.status_code == 201, made.json()
    run = api.post(reverse("api:backup_job_run", args=[made.json()["id"]]))
    assert run.status_code == 202 and run.json()["skipped"] == [], run.json()
    (backup_id,) = run.json()["operations"]
    backup = finished(Operation.objects.get(pk=backup_id))
    point = RestorePoint.objects.get(domain_uuid=domain.uuid)
    assert "Its health check is queued" in backup.message
    check = finished(Operation.objects.get(kind="backup.health_check", target_id=point.pk))
    assert "passed" in check.message and "the guest agent answered" in check.message, check.message

    listed = api.get(reverse("api:vm_backups", args=[domain.pk])).json()["results"][0]
    assert listed["health"] == "passed" and listed["health_checked_at"] and 0 < listed["health_seconds"] < 120
    assert "no network" in listed["health_note"]
    conn = libvirt.open(LOCAL)
    assert not [name for name in (d.name() for d in conn.listAllDomains(0)) if name.startswith(NAME_PREFIX)]
    pool = conn.storagePoolLookupByName(backup_pool.name)
    pool.refresh(0)
    assert set(pool.listVolumes()) == {disk.volume for disk in point.disks.all()} | {point.manifest}

    # The same point, as if saved from a VM with no guest agent channel: its serial console's prompt counts.
    root = parse_trusted(point.domain_xml)
    for channel in root.findall(f"./devices/channel/target[@name='{GUEST_AGENT_CHANNEL}']/.."):
        channel.getparent().remove(channel)
    RestorePoint.objects.filter(pk=point.pk).update(domain_xml=DomainXML(root).to_xml())
    check_url = reverse("api:vm_backup_health_check", args=[domain.pk, point.pk])
    prompted = _ended(_operation(api.post(check_url)))
    assert prompted.state == OperationState.SUCCEEDED and "a console prompt appeared" in prompted.message, \
        prompted.error
    # ... and with no serial console either: nothing to wait for, a failure that says so.
    for device in root.findall("./devices/serial") + root.findall("./devices/console"):
        device.getparent().remove(device)
    RestorePoint.objects.filter(pk=point.pk).update(domain_xml=DomainXML(root).to_xml())
    failed = _ended(_operation(api.post(check_url)))
    assert failed.state == OperationState.FAILED and "neither a guest agent channel" in failed.error, failed.error
    point.refresh_from_db()
    assert point.health == RestorePoint.Health.FAILED and "nor a serial console" in point.health_note
    assert Domain.objects.filter(host=local_host, name__startswith=NAME_PREFIX).count() == 0

    # The catalogue lost: the command an admin runs brings the point back from its manifest.
    expected = (point.name, point.kind, [(disk.target, disk.checksum) for disk in point.disks.all()])
    point.delete()
    out = io.StringIO()
    call_command("backups_rebuild", local_host.name, backup_pool.name, stdout=out)
    assert "1 manifest(s) in" in out.getvalue() and "1 restore point(s) added, 0 skipped" in out.getvalue()
    rebuilt = RestorePoint.objects.get(domain_uuid=domain.uuid)
    assert (rebuilt.name, rebuilt.kind, [(disk.target, disk.checksum) for disk in rebuilt.disks.all()]) == expected
    with pytest.raises(CommandError, match="No host named 'nowhere'"):
        call_command("backups_rebuild", "nowhere", backup_pool.name)
    with pytest.raises(CommandError, match="no storage pool named 'missing'"):
        call_command("backups_rebuild", local_host.name, "missing")
