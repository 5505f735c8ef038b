"""An admin's whole day in Chromium, as issue 16's walk-through did it by hand: two fresh hosts
registered from the form (SSH with its fingerprint confirmed, and TCP), the wizard's offer of a
pool and a network, a VM created and started, its screen, a disk and a NIC hot-plugged, memory
changed, a snapshot, a live migration that handles the snapshot, the VM followed to its new host,
graphs with points, and the VM deleted; with no browser console error and no failed request."""
from __future__ import annotations

from urllib.parse import urlsplit

import libvirt
import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from domains.models import Domain
from hosts.models import Host
from hosts.services import installation_ssh_key
from operations.choices import OperationState
from operations.models import Operation
from tests import stack
from tests.consoles.test_console_pages import LIT_PIXELS
from tests.hosts.test_registration import keygen_fingerprint

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

VM = "journey-vm"
# Harness hosts share this machine's network namespace, where its own libvirtd's virbr0 may hold
# 192.168.122.0/24 and other tests' networks take the /24s after it. A stopped network on the SSH host
# holding 192.168.0.0/17 sends the wizard's offer to 192.168.128.0/24, which no other test uses.
ELSEWHERE_XML = ("<network><name>elsewhere</name><bridge name='vmsitejourney0'/>"
                 "<ip address='192.168.0.1' prefix='17'/></network>")


class Watch:
    """Every browser console error and every failed request of the day, but for the refusals the day
    expects (a form sent back with its errors, the page of a VM that is gone)."""

    def __init__(self, page: Page):
        self.problems: list[str] = []
        self.expected: set[tuple[int, str, str]] = set()
        self._watch(page)
        page.context.on("page", self._watch)

    def expect(self, status: int, method: str, path: str) -> None:
        self.expected.add((status, method, path))

    def _watch(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("response", self._response)

    def _console(self, message) -> None:
        # The browser logs every refused request too; those are judged by _response.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console: {message.text} ({message.location.get('url')})")

    def _response(self, response) -> None:
        answer = (response.status, response.request.method, urlsplit(response.url).path)
        if response.status >= 400 and answer not in self.expected:
            self.problems.append(" ".join(map(str, answer)))


def last_operation(kind: str, **filters) -> Operation:
    def finished():
        operation = Operation.objects.filter(kind=kind, **filters).order_by("-created_at").first()
        return operation if operation and operation.is_finished else None

    operation = stack.wait_until(finished, timeout=120, message=f"a {kind} operation to finish")
    assert operation.state == OperationState.SUCCEEDED, f"{kind}: {operation.error}"
    return operation


def log_in(page: Page, server: str) -> None:
    page.goto(f"{server}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def register_ssh_host(page: Page, server: str, harness_host, folder) -> Host:
    page.goto(f"{server}{reverse('hosts:add')}")
    page.fill("#id_name", "day-ssh")
    page.select_option("#id_transport", "ssh")
    page.fill("#id_address", harness_host.address)
    page.fill("#id_username", "root")
    page.click("#host-form button[type=submit]")
    expect(page.locator("#host-keys")).to_contain_text(keygen_fingerprint(harness_host.ssh_host_public_key, folder))
    page.click("#confirm-host-key")
    return wait_online("day-ssh")


def register_tcp_host(page: Page, server: str, harness_host) -> Host:
    page.goto(f"{server}{reverse('hosts:add')}")
    page.fill("#id_name", "day-tcp")
    page.select_option("#id_transport", "tcp")
    page.fill("#id_address", harness_host.address)
    page.click("#host-form button[type=submit]")
    return wait_online("day-tcp")


def wait_online(name: str) -> Host:
    host = stack.wait_until(lambda: Host.objects.filter(name=name).first(), timeout=10, message=f"host {name}")
    last_operation("host.connect", host=host)
    host.refresh_from_db()
    assert host.status == "online"
    return host


def create_vm_with_the_offers(page: Page, server: str, host: Host) -> Domain:
    page.goto(f"{server}{reverse('domains:create', args=[host.pk])}")
    page.fill("#id_name", VM)
    page.click("#offer-pool-button")
    expect(page.locator("#offer-pool-status")).to_contain_text("Done", timeout=60_000)
    page.click("#offer-network-button")
    expect(page.locator("#offer-network-status")).to_contain_text("Done", timeout=60_000)
    expect(page.locator("#id_cpu_mode")).to_have_value("host-model")  # the host has a peer to migrate to
    page.fill("#id_memory_mib", "128")
    page.fill("#id_max_memory_mib", "256")
    page.fill("#id_disk_size_gib", "1")
    page.click("#create-button")
    expect(page.locator(".operation-status [data-operation-state]")).to_have_text("Succeeded", timeout=120_000)
    page.click("#result-link")
    expect(page.locator("#domain-state")).to_have_text("Running", timeout=30_000)
    return Domain.objects.get(host=host, name=VM)


def see_the_screen(page: Page) -> None:
    with page.expect_popup() as opened:
        page.click("#panel-console [data-action=console]")
    console = opened.value
    expect(console.locator("#console-status")).to_have_attribute("data-state", "connected", timeout=30_000)
    stack.wait_until(lambda: console.evaluate(LIT_PIXELS) > 500, timeout=60, message="the guest's screen")
    console.close()


def submit_config(page: Page, action: str, fill) -> None:
    page.click(f"#panel-config [data-action={action}]")
    fill()
    page.click("#config-form button[type=submit]")
    expect(page.locator("#domain-state")).to_be_visible()


def hot_plug_a_new_disk_and_a_nic(page: Page, domain: Domain) -> None:
    def new_disk():
        page.check("#id_source_new")
        page.select_option("#id_pool", "default")
        page.fill("#id_new_name", "journey-data.qcow2")
        page.fill("#id_new_size_0", "64")
        page.select_option("#id_new_size_1", "MiB")

    submit_config(page, "attach_disk", new_disk)
    last_operation("domain.attach_disk", target_id=domain.pk)
    expect(page.locator("#domain-disks")).to_contain_text("journey-data.qcow2", timeout=15_000)

    submit_config(page, "attach_nic", lambda: page.select_option("#id_network", "default"))
    last_operation("domain.attach_nic", target_id=domain.pk)
    expect(page.locator("#domain-nics tbody tr")).to_have_count(2, timeout=15_000)


def change_memory(page: Page, domain: Domain) -> None:
    submit_config(page, "set_memory", lambda: page.fill("#id_memory_mib", "192"))
    operation = last_operation("domain.set_memory", target_id=domain.pk)
    # The guest only shows SeaBIOS's screen: no balloon driver takes the change, and vmsite says so.
    assert "balloon driver" in operation.message
    expect(page.locator("#domain-memory")).to_contain_text("(max 256)")


def take_a_snapshot(page: Page, domain: Domain) -> None:
    page.click("#panel-snapshots [data-action=snapshot_create]")
    page.fill("#id_name", "before-the-move")
    page.click("#snapshot-create-form button[type=submit]")
    last_operation("domain.snapshot_create", target_id=domain.pk)
    expect(page.locator("#snapshot-tree")).to_contain_text("before-the-move", timeout=15_000)


def prepare_the_destination(page: Page, server: str, host: Host, harness_host) -> None:
    """The TCP host gets a pool and a network of the same names from the storage and network forms.
    The network's bridge is named for the harness host: every harness libvirtd shares this machine's
    network namespace, and two of them picking the next free virbrN at once collided ("error creating
    bridge interface virbr1: File exists")."""
    page.goto(f"{server}{reverse('storage:define_type', args=[host.pk, 'dir'])}")
    page.fill("#id_name", "default")
    page.fill("#id_target_path", "/var/lib/libvirt/images")
    page.click("#define-pool")
    last_operation("pool.define", host=host)
    page.goto(f"{server}{reverse('networking:add')}")
    page.select_option("#id_host", str(host.pk))
    page.fill("#id_name", "default")
    page.select_option("#id_mode", "nat")
    page.fill("#id_bridge", f"vmsday{harness_host.index}")
    page.fill("#id_ipv4_subnet", "10.251.97.0/24")
    page.click("#network-form button[type=submit]")
    last_operation("network.create", host=host)


def migrate_after_the_snapshot_is_dealt_with(page: Page, server: str, watch: Watch, domain: Domain,
                                             destination: Host) -> None:
    """The form says the snapshot blocks a copy-storage migration before anything is queued (its data
    lives in the disk image, which the copy would leave behind); the admin deletes it and migrates."""
    def fill_the_form():
        page.goto(f"{server}{reverse('domains:migrate', args=[domain.pk])}")
        page.select_option("#id_destination", str(destination.pk))
        page.check("#id_live")
        page.check("#id_copy_storage")
        page.click("#confirm-migrate")

    watch.expect(400, "POST", reverse("domains:migrate", args=[domain.pk]))  # the form, sent back
    fill_the_form()
    expect(page.locator("#migrate-form")).to_contain_text("has 1 snapshot (before-the-move)")
    assert not Operation.objects.filter(kind="domain.migrate").exists()
    page.goto(f"{server}{reverse('domains:detail', args=[domain.pk])}")
    page.click("#snapshot-tree a[href*='snapshots/delete']")
    page.click("#confirm-snapshot-delete")
    last_operation("domain.snapshot_delete", target_id=domain.pk)
    fill_the_form()
    last_operation("domain.migrate", target_id=domain.pk)


@pytest.fixture
def two_fresh_hosts(harness):
    """Two harness hosts with no pool and no active network; the networks the day starts are taken
    down after it (their bridges live in this machine's one network namespace)."""
    ssh_side, tcp_side = harness(), harness()
    ssh_side.authorize_ssh_key(installation_ssh_key().public_key)
    libvirt.open(ssh_side.tcp_uri).networkDefineXML(ELSEWHERE_XML)
    yield ssh_side, tcp_side
    for side in (ssh_side, tcp_side):
        conn = libvirt.open(side.tcp_uri)
        for network in conn.listAllNetworks():
            if network.isActive():
                network.destroy()
        conn.close()


def test_an_admins_day(page, asgi_server, console_proxy, celery_worker, listener, two_fresh_hosts, admin_user,
                       tmp_path, request):
    watch = Watch(page)
    request.addfinalizer(lambda: print("browser problems:", *watch.problems, sep="\n  "))
    ssh_side, tcp_side = two_fresh_hosts
    log_in(page, asgi_server)
    source = register_ssh_host(page, asgi_server, ssh_side, tmp_path)
    destination = register_tcp_host(page, asgi_server, tcp_side)

    domain = create_vm_with_the_offers(page, asgi_server, source)
    see_the_screen(page)
    hot_plug_a_new_disk_and_a_nic(page, domain)
    change_memory(page, domain)
    take_a_snapshot(page, domain)

    prepare_the_destination(page, asgi_server, destination, tcp_side)
    migrate_after_the_snapshot_is_dealt_with(page, asgi_server, watch, domain, destination)
    page.goto(f"{asgi_server}{reverse('domains:detail', args=[domain.pk])}")  # the same page follows the VM
    expect(page.locator("#domain-host")).to_contain_text("day-tcp", timeout=30_000)
    expect(page.locator("#domain-state")).to_have_text("Running")
    graphs = page.locator("#graphs")
    stack.wait_until(lambda: int(graphs.get_attribute("data-points") or 0) >= 2, timeout=30,
                     message="graph points on the new host")

    page.click("#domain-actions [data-action=delete]")
    page.check("#id_with_volumes")
    page.fill("#id_confirm_name", VM)
    watch.expect(410, "GET", reverse("domains:detail", args=[domain.pk]))  # the VM page says it is gone,
    watch.expect(410, "GET", reverse("metrics:domain_series", args=[domain.pk]))  # and its graphs stop asking
    page.click("#confirm-delete")
    last_operation("domain.delete", target_id=domain.pk)
    expect(page.get_by_role("heading", name=f"{VM} is gone")).to_be_visible(timeout=15_000)  # says what happened
    page.get_by_role("link", name="Back to the VMs").click()
    expect(page.locator("main")).not_to_contain_text(VM)
    conn = libvirt.open(tcp_side.tcp_uri)
    assert VM not in [d.name() for d in conn.listAllDomains()]
    conn.close()
    assert watch.problems == []
