"""A burst: 200 guests, 2,000 lifecycle events in under 20 s. Within 5 s after it, every row in the
database and on an open page equals libvirt's state; no consumer error; bounded memory."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt
import pytest
from lxml import etree
from playwright.sync_api import expect

from domains.models import Domain
from hosts.models import Host
from tests import stack
from tests.events.test_live_pages import log_in
from tests.guests import small_guest_xml

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

GUESTS = 200
RUNNING = 10
EVENTS = 2000
STATE_LABELS = dict(Domain._meta.get_field("state").choices)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def with_memory(xml: str, mib: int) -> str:
    document = etree.fromstring(xml)
    for tag in ("memory", "currentMemory"):
        element = document.find(tag)
        if element is not None:
            element.set("unit", "MiB")
            element.text = str(mib)
    return etree.tostring(document, encoding="unicode")


def libvirt_view(conn: libvirt.virConnect) -> dict[str, tuple[int, int]]:
    """uuid -> (state, memory KiB) as libvirt has it now."""
    return {dom.UUIDString(): (dom.state()[0], dom.maxMemory()) for dom in conn.listAllDomains()}


def database_view(host: Host) -> dict[str, tuple[int, int]]:
    return {str(uuid): (state, memory) for uuid, state, memory in
            Domain.objects.filter(host=host).values_list("uuid", "state", "memory_kib")}


def differences(expected: dict, actual: dict) -> str:
    """The rows that differ from libvirt's view, a few of them, and how many in all."""
    wrong = {uuid: (want, actual.get(uuid)) for uuid, want in expected.items() if actual.get(uuid) != want}
    extra = set(actual) - set(expected)
    shown = ", ".join(f"{uuid[:8]} libvirt {want} row {got}" for uuid, (want, got) in list(wrong.items())[:5])
    return f"{len(wrong)} rows differ ({shown}); {len(extra)} rows libvirt does not have"


def test_a_burst_of_2000_events_on_200_guests_ends_with_every_row_right(page, asgi_server, listener, harness,
                                                                       stack_log_dir):
    harness_host = harness()
    conn = libvirt.open(harness_host.tcp_uri)
    domains = [conn.defineXML(small_guest_xml(f"vmsite-test-burst-{index:03d}")) for index in range(GUESTS)]
    running = domains[:RUNNING]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda dom: dom.create(), running))
    host = Host.objects.create(name="burst", transport="tcp", address=harness_host.address)
    stack.wait_until(lambda: Domain.objects.filter(host=host).count() == GUESTS, timeout=30,
                     message="the listener's reconcile to list every guest")
    stack.wait_until(lambda: database_view(host) == libvirt_view(conn), timeout=10, message="the rows to settle",
                     explain=lambda: differences(libvirt_view(conn), database_view(host)))
    log_in(page, asgi_server)
    page.goto(f"{asgi_server}/vms/?host={host.pk}&sort=name")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
    listener_rss_before = rss_kib(listener.pid)

    events = burst(harness_host.tcp_uri, domains, running)
    print(f"burst: {events}")
    assert events["count"] >= EVENTS and events["seconds"] < 20, events

    ended = time.monotonic()
    expected = libvirt_view(conn)
    stack.wait_until(lambda: database_view(host) == expected, timeout=5, interval=0.05,
                     message="every row to equal libvirt's state",
                     explain=lambda: differences(expected, database_view(host)))
    print(f"rows equal libvirt's {time.monotonic() - ended:.2f} s after the burst")
    shown = {uuid: STATE_LABELS[state] for uuid, (state, _memory) in expected.items()}
    first_page = page.locator("tr[data-domain-uuid]")
    expect(first_page).to_have_count(100)

    def page_matches() -> bool:
        rows = first_page.evaluate_all(
            "rows => rows.map(r => [r.dataset.domainUuid, r.querySelector('.badge').textContent.trim()])")
        return all(shown[uuid] == label for uuid, label in rows)

    stack.wait_until(page_matches, timeout=max(0.5, 5 - (time.monotonic() - ended)), interval=0.1,
                     message="the open page to show libvirt's states")
    assert "Traceback" not in (stack_log_dir / "asgi.log").read_text()
    assert "Traceback" not in listener.log()
    assert rss_kib(listener.pid) - listener_rss_before < 64 * 1024, "the listener's memory grew by 64 MiB or more"
    # The host goes now, its 200 guests with it (harness hosts otherwise last as long as the pytest process;
    # an undefine of each guest, every one answered by the listener, took 13 s).
    harness_host.stop()


def burst(uri: str, domains: list, running: list) -> dict:
    """Suspend/resume the running guests and redefine the others (a memory change each time) from
    four threads, until EVENTS lifecycle events have been caused. Odd running guests end paused."""
    count = 0
    lock = threading.Lock()
    stopped = list(domains[len(running):])

    def add(events: int) -> bool:
        nonlocal count
        with lock:
            count += events
            return count < EVENTS

    def pause_resume(index: int) -> None:
        dom = libvirt.open(uri).lookupByUUIDString(running[index].UUIDString())
        while add(2):
            dom.suspend()
            dom.resume()
        if index % 2:
            dom.suspend()

    def redefine(offset: int) -> None:
        conn = libvirt.open(uri)
        round_number = 0
        while True:
            for variants in definitions[offset::2]:
                conn.defineXML(variants[round_number % len(variants)])
                if not add(1):
                    return
            round_number += 1

    # Each definition is read and its eight memory sizes written out before the clock starts: one call
    # to libvirtd per event, so that a loaded machine still makes the burst in time.
    definitions = [[with_memory(xml, 32 + step * 4) for step in range(8)]
                   for xml in (dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for dom in stopped)]

    started = time.monotonic()
    with ThreadPoolExecutor(len(running) + 2) as pool:
        futures = [pool.submit(pause_resume, index) for index in range(len(running))]
        futures += [pool.submit(redefine, offset) for offset in range(2)]
        for future in futures:
            future.result()
    return {"count": count + len(running) // 2, "seconds": round(time.monotonic() - started, 2)}
