"""A media change that QEMU refused because the tray it was opening was not open yet is made again
(virt.devices.update_media). The refusal is a race inside one libvirt call that a test cannot bring
about on purpose (it struck twice in whole runs, under load), so a stand-in domain raises libvirt's
own error with the message QEMU gave."""
import libvirt
import pytest

from virt import devices

TRAY_NOT_OPEN = ("internal error: unable to execute QEMU command 'blockdev-remove-medium': "
                 "Tray of device 'ide0-1-0' is not open")


class Drive:
    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        self.calls = 0

    def updateDeviceFlags(self, xml: str, flags: int) -> int:  # noqa: N802 (libvirt's name)
        self.calls += 1
        if self.failures:
            raise libvirt.libvirtError(self.failures.pop(0))
        return 0


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    monkeypatch.setattr(devices, "TRAY_RETRY_SECONDS", 0)


def test_a_tray_not_open_yet_is_tried_again_until_the_change_goes_through():
    drive = Drive([TRAY_NOT_OPEN, TRAY_NOT_OPEN])
    devices.update_media(drive, "<disk/>", libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert drive.calls == 3


def test_it_gives_up_after_its_attempts_and_says_what_qemu_said():
    drive = Drive([TRAY_NOT_OPEN] * devices.TRAY_ATTEMPTS)
    with pytest.raises(libvirt.libvirtError, match="is not open"):
        devices.update_media(drive, "<disk/>", libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert drive.calls == devices.TRAY_ATTEMPTS


def test_any_other_refusal_is_not_tried_again():
    drive = Drive(["Requested operation is not valid: domain is not running"])
    with pytest.raises(libvirt.libvirtError, match="not running"):
        devices.update_media(drive, "<disk/>", libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert drive.calls == 1
