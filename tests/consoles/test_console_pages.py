"""The console pages in Chromium against the live stack: noVNC through the console proxy, the
serial console through the ASGI server, the VM page's screenshot thumbnail."""
import threading

import libvirt
import pytest
from playwright.sync_api import expect

from tests import stack
from tests.consoles.conftest import PASSWORD, cached, grant_hosts, guest_name, serial_guest_xml, take_console_right
from tests.events.live import explained
from virt.eventloop import ensure_event_loop

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LOCAL = "qemu:///system"

# Counts the canvas pixels that are not black: SeaBIOS's text on a black screen gives thousands.
LIT_PIXELS = """() => {
  const canvas = document.querySelector('#vnc-screen canvas');
  if (!canvas || !canvas.width) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 96) lit++;
  return lit;
}"""


def log_in(page, base_url: str, user) -> None:
    # The browser's own messages end up in the test's output when it fails.
    page.context.on("page", lambda opened: opened.on("console", lambda message: print("browser:", message.text)))
    page.on("console", lambda message: print("browser:", message.text))
    page.on("pageerror", lambda error: print("browser error:", error))
    grant_hosts(user)
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_it_shows_the_guests_screen_and_sends_ctrl_alt_del(page, asgi_server, console_proxy, local_host, guests,
                                                            alice):
    guest = guests.define(LOCAL, name=guest_name(), start=True)
    domain = cached(local_host, guest)
    rebooted = threading.Event()
    ensure_event_loop()
    watcher = libvirt.open(LOCAL)
    callback = watcher.domainEventRegisterAny(guest_on(watcher, guest), libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
                                              lambda *_args: rebooted.set(), None)
    try:
        log_in(page, asgi_server, alice)
        page.goto(f"{asgi_server}/vms/{domain.pk}/")
        with page.expect_popup() as opened:  # the Console button opens a tab of its own
            page.click("#panel-console [data-action=console]")
        console = opened.value
        expect(console.locator("#console-status")).to_have_attribute("data-state", "connected", timeout=20_000)
        # SeaBIOS's "No bootable device" screen: white text on black, plainly not a blank canvas.
        stack.wait_until(lambda: console.evaluate(LIT_PIXELS) > 500, timeout=30, message="the guest's screen")
        # SeaBIOS reads the keyboard once it has set it up: press until the guest reacts.
        for _attempt in range(10):
            console.click("#ctrl-alt-del-button")
            if rebooted.wait(3):
                break
        assert rebooted.is_set(), "no reboot event after Ctrl-Alt-Del"
    finally:
        watcher.domainEventDeregisterAny(callback)
        watcher.close()


def guest_on(conn: libvirt.virConnect, guest: libvirt.virDomain) -> libvirt.virDomain:
    return conn.lookupByUUIDString(guest.UUIDString())


def test_it_says_the_vm_is_off_instead_of_connecting(page, asgi_server, console_proxy, local_host, guests, alice):
    guest = guests.define(LOCAL, name=guest_name())
    domain = cached(local_host, guest)
    log_in(page, asgi_server, alice)
    page.goto(f"{asgi_server}/vms/{domain.pk}/console/")
    expect(page.locator("#console-message")).to_contain_text("shut off: start it to open its console")
    expect(page.locator("#console-status")).to_have_attribute("data-state", "unavailable")


def test_the_serial_console_shows_seabios_takes_typing_and_is_taken_over(page, asgi_server, local_host, guests,
                                                                        alice, bob):
    name = guest_name()
    conn = libvirt.open(LOCAL)
    guest = conn.defineXML(serial_guest_xml(name))
    guests.created.append((LOCAL, name))
    guests.uuids.append((LOCAL, guest.UUIDString()))
    guest.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)  # resumed once the terminal listens
    domain = cached(local_host, guest)
    log_in(page, asgi_server, alice)
    page.goto(f"{asgi_server}/vms/{domain.pk}/serial/")
    expect(page.locator("#console-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    guest.resume()
    screen = page.locator("#terminal")
    expect(screen).to_contain_text("SeaBIOS", timeout=30_000)
    expect(screen).to_contain_text("Press ESC for boot menu", timeout=30_000)
    page.locator("#terminal").click()
    page.keyboard.press("Escape")  # SeaBIOS reads the serial line: its boot menu answers
    expect(screen).to_contain_text("Select boot device", timeout=20_000)

    other = page.context.browser.new_context()
    try:
        second = other.new_page()
        log_in(second, asgi_server, bob)
        second.goto(f"{asgi_server}/vms/{domain.pk}/serial/")
        expect(second.locator("#console-status")).to_have_attribute("data-state", "connected", timeout=20_000)
        expect(page.locator("#console-message")).to_contain_text("Taken over by bob", timeout=10_000)
        expect(page.locator("#console-status")).to_have_attribute("data-state", "taken_over")
        expect(page.locator("#console-message")).to_contain_text("Taken over by bob")
        second.wait_for_timeout(2000)  # the new holder keeps the console
        expect(second.locator("#console-status")).to_have_attribute("data-state", "connected")
    finally:
        other.close()


def test_the_vm_page_shows_a_screenshot_of_a_running_vm(page, asgi_server, local_host, guests, alice):
    guest = guests.define(LOCAL, name=guest_name(), start=True)
    domain = cached(local_host, guest)
    log_in(page, asgi_server, alice)
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    thumbnail = page.locator("#domain-screenshot img")
    expect(thumbnail).to_be_visible(timeout=20_000)
    first = thumbnail.get_attribute("data-updated")
    stack.wait_until(lambda: thumbnail.get_attribute("data-updated") != first, timeout=20,
                     message="a refreshed screenshot")
    assert page.evaluate("() => document.querySelector('#domain-screenshot img').naturalWidth") >= 320


def test_the_console_page_closes_and_says_why_when_the_right_goes(page, asgi_server, console_proxy, local_host,
                                                                  guests, alice):
    guest = guests.define(LOCAL, name=guest_name(), start=True)
    domain = cached(local_host, guest)
    log_in(page, asgi_server, alice)
    page.goto(f"{asgi_server}/vms/{domain.pk}/console/")
    expect(page.locator("#console-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    take_console_right(alice)
    expect(page.locator("#console-status")).to_have_attribute("data-state", "disconnected", timeout=5_000)
    expect(page.locator("#console-message")).to_contain_text("no longer have the right to open this console")


def test_the_console_page_closes_within_5_s_when_the_vm_is_deleted(page, asgi_server, console_proxy, celery_worker,
                                                                   local_host, guests, alice):
    from domains.services import domain_action_enqueue

    guest = guests.define(LOCAL, name=guest_name(), start=True)
    domain = cached(local_host, guest)
    log_in(page, asgi_server, alice)
    page.goto(f"{asgi_server}/vms/{domain.pk}/console/")
    expect(page.locator("#console-status")).to_have_attribute("data-state", "connected", timeout=20_000)
    operation = domain_action_enqueue(domain=domain, action="delete", user=alice)
    expect(page.locator("#console-status")).to_have_attribute("data-state", "disconnected", timeout=5_000)
    operation.refresh_from_db()
    stack.wait_until(lambda: type(operation).objects.get(pk=operation.pk).is_finished, timeout=30, message="delete")


def test_key_combinations_and_pasted_text_reach_the_guests_keyboard(page, asgi_server, console_proxy, local_host,
                                                                    guests, alice):
    """Keys go in through VNC (the guest's PS/2 keyboard); SeaBIOS's answer is read on its serial line."""
    from virt.consoles import SerialConsole

    ensure_event_loop()  # before the connection opens: its streams report through it
    name = guest_name()
    conn = libvirt.open(LOCAL)
    guest = conn.defineXML(serial_guest_xml(name))
    guests.created.append((LOCAL, name))
    guests.uuids.append((LOCAL, guest.UUIDString()))
    guest.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
    domain = cached(local_host, guest)
    serial = bytearray()
    reader = SerialConsole(conn, guest.UUIDString(), on_data=serial.extend, on_closed=lambda _reason: None)
    try:
        log_in(page, asgi_server, alice)
        page.goto(f"{asgi_server}/vms/{domain.pk}/console/")
        expect(page.locator("#console-status")).to_have_attribute("data-state", "connected", timeout=20_000)
        guest.resume()
        stack.wait_until(lambda: b"Press ESC for boot menu" in serial, timeout=30, message="SeaBIOS's prompt")
        page.click("#keys-button")
        page.click("[data-keys=escape]")
        stack.wait_until(lambda: b"Select boot device" in serial, timeout=20, message="the boot menu")
        menu_end = len(serial)
        page.click("#paste-toggle")
        page.fill("#paste-text", "1")
        page.click("#paste-send")
        stack.wait_until(lambda: b"Booting from" in serial[menu_end:], timeout=20, message="a boot choice")
    finally:
        reader.close()


def test_the_screenshot_comes_back_after_a_force_off_and_a_start_with_the_page_open(page, asgi_server, listener,
                                                                                  local_host, guests, alice):
    guest = guests.define(LOCAL, name=guest_name(), start=True)
    domain = cached(local_host, guest)
    log_in(page, asgi_server, alice)
    page.goto(f"{asgi_server}/vms/{domain.pk}/")
    page.evaluate("window.__notReloaded = true")
    thumbnail = page.locator("#domain-screenshot img")
    expect(thumbnail).to_be_visible(timeout=20_000)

    guest.destroy()
    with explained(listener, pk=domain.pk):
        expect(page.locator("#domain-state")).to_have_text("Shut off", timeout=10_000)
    expect(thumbnail).to_be_hidden(timeout=20_000)
    expect(page.locator("#domain-screenshot figcaption")).to_have_text("The VM is off.")

    guest.create()
    with explained(listener, pk=domain.pk):
        expect(page.locator("#domain-state")).to_have_text("Running", timeout=10_000)
    expect(thumbnail).to_be_visible(timeout=30_000)
    shown = thumbnail.get_attribute("data-updated")
    stack.wait_until(lambda: thumbnail.get_attribute("data-updated") != shown, timeout=20,
                     message="the screenshot refreshing again")
    assert page.evaluate("window.__notReloaded === true")
