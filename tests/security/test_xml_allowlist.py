"""Row 11 of issue 14: the expert "edit XML" page (administrators only) cannot reach the host: no
device node, host file, socket or address of the XML's choosing, no other VM's disk, NVRAM or
sockets. Each refusal names the element. A VM as libvirt writes it (standard devices) still passes."""
from __future__ import annotations

import pytest
from lxml import etree

from virt.xml import parse_untrusted
from virt.xml.policy import HostContext, check_domain_xml

UUID = "5f0c3a1e-8d2b-4e6f-a7c9-1b2d3e4f5a60"
EMULATOR = "/usr/bin/qemu-system-x86_64"
OWN_DISK = "/var/lib/libvirt/images/mine.qcow2"
NEIGHBOUR_DISK = "/var/lib/libvirt/images/neighbour.qcow2"
SHARED_ISO = "/var/lib/libvirt/images/debian.iso"
CONTEXT = HostContext(uuid=UUID, pools={"default": "/var/lib/libvirt/images"}, emulator=EMULATOR, name="mine",
                      nvram="/var/lib/libvirt/qemu/nvram/mine_VARS.fd", own_paths=frozenset({OWN_DISK}),
                      used_elsewhere={NEIGHBOUR_DISK: True, SHARED_ISO: False})

# What libvirt writes back for an ordinary q35 UEFI guest (inactive XML), with the devices
# virt-install and vmsite's wizard give it.
ORDINARY = f"""<domain type='kvm'>
  <name>mine</name><uuid>{UUID}</uuid>
  <memory unit='KiB'>65536</memory><vcpu placement='static'>1</vcpu>
  <os firmware='efi'>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/mine_VARS.fd</nvram>
    <boot dev='hd'/>
  </os>
  <seclabel type='dynamic' model='dac' relabel='yes'/>
  <devices>
    <emulator>{EMULATOR}</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{OWN_DISK}'/>
      <target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{SHARED_ISO}'/>
      <target dev='sda' bus='sata'/><readonly/></disk>
    <controller type='usb' index='0' model='qemu-xhci'/><controller type='pci' index='0' model='pcie-root'/>
    <controller type='virtio-serial' index='0'/>
    <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/>
      <model type='virtio'/><rom enabled='no'/></interface>
    <serial type='pty'><target type='isa-serial' port='0'><model name='isa-serial'/></target></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>
    <channel type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/>
      <target type='virtio' name='org.example.0'/></channel>
    <input type='tablet' bus='usb'/><input type='mouse' bus='ps2'/><input type='keyboard' bus='ps2'/>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/>
    </graphics>
    <graphics type='spice' autoport='yes'><listen type='address'/></graphics>
    <audio id='1' type='none'/>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <redirdev bus='usb' type='spicevmc'/>
    <memballoon model='virtio'/>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
    <watchdog model='itco' action='reset'/>
    <memory model='dimm'><target><size unit='KiB'>131072</size><node>0</node></target></memory>
  </devices>
</domain>"""


def ordinary() -> etree._Element:
    return parse_untrusted(ORDINARY)


def with_device(xml: str) -> etree._Element:
    root = ordinary()
    root.find("devices").append(etree.fromstring(xml))
    return root


def test_it_accepts_a_vm_as_libvirt_writes_it():
    assert check_domain_xml(ordinary(), CONTEXT) == []


@pytest.mark.parametrize(("device", "expected"), [
    ("<memory model='nvdimm'><source><path>/var/lib/libvirt/images/neighbour.qcow2</path></source>"
     "<target><size unit='KiB'>131072</size><node>0</node></target></memory>",
     "<memory model='nvdimm'> with <source><path> is not accepted"),
    ("<memory model='virtio-pmem'><source><path>/etc/shadow</path></source><target><size unit='KiB'>2048</size>"
     "</target></memory>", "<memory model='virtio-pmem'> with <source><path> is not accepted"),
    ("<tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>",
     "<tpm> with <backend type='passthrough'> is not accepted"),
    ("<tpm model='tpm-tis'><backend type='external'><source type='unix' mode='connect' path='/run/x.sock'/>"
     "</backend></tpm>", "<tpm> with <backend type='external'> is not accepted"),
    ("<input type='evdev'><source dev='/dev/input/event0'/></input>", "<input type='evdev'> is not accepted"),
    ("<input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>",
     "<input type='passthrough'> is not accepted"),
    ("<rng model='virtio'><backend model='random'>/dev/sda</backend></rng>",
     "<rng> with <backend model='random'>/dev/sda</backend> is not accepted"),
    ("<rng model='virtio'><backend model='random'>/dev/hwrng</backend></rng>",
     "<rng> with <backend model='random'>/dev/hwrng</backend> is not accepted"),
    ("<rng model='virtio'><backend model='egd' type='dev'><source path='/dev/hwrng'/></backend></rng>",
     "<rng><backend model='egd' type='dev'> is not accepted"),
    ("<rng model='virtio'><backend model='egd' type='tcp'><source mode='connect' host='127.0.0.1' service='6379'/>"
     "</backend></rng>", "<rng><backend model='egd' type='tcp'>: mode='connect' is not accepted"),
    ("<serial type='tcp'><source mode='bind' host='0.0.0.0' service='4444'/><target port='1'/></serial>",
     "<serial type='tcp'>: listening on 0.0.0.0 is not accepted"),
    ("<serial type='tcp'><source mode='bind' service='4444'/><target port='1'/></serial>",
     "<serial type='tcp'>: listening on every address is not accepted"),
    ("<serial type='telnet'><source mode='bind' host='::' service='4444'/><target port='1'/></serial>",
     "<serial type='telnet'>: listening on :: is not accepted"),
    ("<channel type='tcp'><source mode='bind' host='192.168.1.5' service='4444'/>"
     "<target type='virtio' name='x.0'/></channel>", "<channel type='tcp'>: listening on 192.168.1.5 is not accepted"),
    ("<serial type='tcp'><source mode='connect' host='127.0.0.1' service='6379'/><target port='1'/></serial>",
     "<serial type='tcp'>: mode='connect' is not accepted"),
    ("<serial type='udp'><source mode='connect' host='127.0.0.1' service='53'/><target port='1'/></serial>",
     "<serial type='udp'> is not accepted"),
    ("<channel type='unix'><source mode='connect' path='/var/lib/libvirt/qemu/channel/target/domain-3-neighbour/"
     "org.qemu.guest_agent.0'/><target type='virtio' name='org.qemu.guest_agent.1'/></channel>",
     "<channel type='unix'>: mode='connect' is not accepted"),
    ("<channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-3-neighbour/"
     "org.qemu.guest_agent.0'/><target type='virtio' name='org.qemu.guest_agent.1'/></channel>",
     "<channel type='unix'>: the path '/var/lib/libvirt/qemu/channel/target/domain-3-neighbour/"
     "org.qemu.guest_agent.0' is not accepted"),
    ("<serial type='file'><source path='/var/lib/libvirt/images/neighbour.qcow2'/><target port='1'/></serial>",
     "<serial type='file'>: the path '/var/lib/libvirt/images/neighbour.qcow2' must be a file in"),
    ("<serial type='pipe'><source path='/var/lib/libvirt/qemu/x'/><target port='1'/></serial>",
     "<serial type='pipe'> is not accepted"),
    ("<disk type='file' device='disk'><source file='/var/lib/libvirt/images/neighbour.qcow2'/>"
     "<target dev='vdb' bus='virtio'/></disk>", "the disk vdb: '/var/lib/libvirt/images/neighbour.qcow2' is in use "
                                                "by another VM of this host"),
    ("<disk type='volume' device='disk'><source pool='default' volume='neighbour.qcow2'/>"
     "<target dev='vdb' bus='virtio'/><readonly/></disk>", "the disk vdb: '/var/lib/libvirt/images/neighbour.qcow2' "
                                                           "is in use by another VM of this host"),
    ("<disk type='file' device='disk'><source file='/var/lib/libvirt/images/debian.iso'/>"
     "<target dev='vdb' bus='virtio'/></disk>", "the disk vdb: '/var/lib/libvirt/images/debian.iso' is in use"),
    ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/new.qcow2'>"
     "<dataStore type='file'><format type='raw'/><source file='/var/lib/libvirt/qemu/nvram/other_VARS.fd'/>"
     "</dataStore></source><target dev='vdc' bus='virtio'/></disk>",
     "the disk vdc: '/var/lib/libvirt/qemu/nvram/other_VARS.fd' is not inside one of the host's storage pools"),
    ("<disk type='block' device='lun' rawio='yes'><source dev='/var/lib/libvirt/images/x'/><target dev='sdb' "
     "bus='scsi'/></disk>", "the disk sdb: rawio='yes' is not accepted"),
    ("<disk type='file' device='disk'><source file='/var/lib/libvirt/images/new.img'><reservations managed='no'>"
     "<source type='unix' path='/run/libvirt/libvirt-sock' mode='client'/></reservations></source>"
     "<target dev='vdd' bus='virtio'/></disk>", "the disk vdd: <reservations> must be managed='yes'"),
    ("<disk type='file' device='disk'><source file='/var/lib/libvirt/images/new.img'><seclabel model='dac' "
     "relabel='no'/></source><target dev='vde' bus='virtio'/></disk>", "<seclabel> inside a device is not accepted"),
    ("<shmem name='shared'><model type='ivshmem-doorbell'/><server path='/tmp/socket'/></shmem>",
     "<shmem> is not accepted"),
    ("<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>",
     "<hostdev> is not accepted"),
    ("<lease><lockspace>x</lockspace><key>y</key><target path='/etc/passwd'/></lease>", "<lease> is not accepted"),
    ("<pstore backend='acpi-erst'><path>/var/lib/libvirt/qemu/nvram/other.nvram</path><size>8</size></pstore>",
     "<pstore> is not accepted"),
    ("<filesystem type='mount' accessmode='passthrough'><source dir='/var/lib/libvirt/images'/>"
     "<target dir='images'/></filesystem>", "<filesystem type='mount'> (the filesystem images) is not accepted"),
    ("<filesystem type='mount'><driver type='virtiofs'/><binary path='/bin/sh'/><source dir='/'/>"
     "<target dir='r'/></filesystem>", "<filesystem type='mount'> (the filesystem r) is not accepted"),
    ("<redirdev bus='usb' type='tcp'><source mode='connect' host='127.0.0.1' service='4000'/></redirdev>",
     "<redirdev type='tcp'> is not accepted"),
    ("<smartcard mode='host'/>", "<smartcard mode='host'> is not accepted"),
    ("<smartcard mode='host-certificates'><certificate>a</certificate><certificate>b</certificate>"
     "<certificate>c</certificate><database>/etc/pki/nssdb/</database></smartcard>",
     "<smartcard mode='host-certificates'> is not accepted"),
    ("<smartcard mode='passthrough' type='tcp'><source mode='connect' host='127.0.0.1' service='2001'/></smartcard>",
     "<smartcard mode='passthrough'> is not accepted"),
    ("<interface type='ethernet'><target dev='tap7' managed='no'/><script path='/tmp/x.sh'/></interface>",
     "<interface type='ethernet'> is not accepted"),
    ("<interface type='vhostuser'><source type='unix' path='/run/x.sock' mode='client'/><model type='virtio'/>"
     "</interface>", "<interface type='vhostuser'> is not accepted"),
    ("<interface type='server'><source address='0.0.0.0' port='5558'/></interface>",
     "<interface type='server'> is not accepted"),
    ("<interface type='network'><source network='default'/><backend tap='/dev/sda'/>"
     "</interface>", "<interface type='network'>: <backend tap=...> is not accepted"),
    ("<interface type='user'><backend type='passt'/><portForward proto='tcp'><range start='22'/></portForward>"
     "</interface>", "<interface type='user'>: <portForward> is not accepted"),
    ("<graphics type='vnc' port='-1' autoport='yes' listen='0.0.0.0'/>",
     "<graphics type='vnc'>: listen='0.0.0.0' is not accepted"),
    ("<graphics type='vnc' port='-1'><listen type='address' address='10.0.0.5'/></graphics>",
     "<graphics type='vnc'>: <listen address='10.0.0.5'> is not accepted"),
    ("<graphics type='vnc'><listen type='socket' socket='/var/lib/libvirt/qemu/other.vnc'/></graphics>",
     "<graphics type='vnc'>: <listen type='socket'> with a socket is not accepted"),
    ("<graphics type='sdl' display=':0'/>", "<graphics type='sdl'> is not accepted"),
    ("<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>",
     "<graphics type='egl-headless'>: <gl rendernode=...> is not accepted"),
    ("<audio id='2' type='file' path='/etc/cron.d/x'/>", "<audio type='file'> is not accepted"),
    ("<audio id='2' type='oss'><input dev='/dev/dsp0'/></audio>", "<audio type='oss'> is not accepted"),
    ("<video><driver name='vhostuser'/><model type='virtio'/></video>",
     "<video> with <driver name='vhostuser'> is not accepted"),
    ("<vhostuser-blk/>", "<vhostuser-blk> is not accepted in <devices>"),
])
def test_it_refuses_each_way_into_the_host_naming_the_element(device, expected):
    refusals = check_domain_xml(with_device(device), CONTEXT)
    assert len(refusals) == 1 and expected in refusals[0], refusals


@pytest.mark.parametrize(("change", "expected"), [
    (lambda root: root.find("os/nvram").__setattr__("text", "/var/lib/libvirt/qemu/nvram/neighbour_VARS.fd"),
     "<os><nvram>: '/var/lib/libvirt/qemu/nvram/neighbour_VARS.fd' is not this VM's own NVRAM file"),
    (lambda root: root.find("os/nvram").__setattr__("text", "/var/lib/libvirt/images/neighbour.qcow2"),
     "<os><nvram>: '/var/lib/libvirt/images/neighbour.qcow2' is not this VM's own NVRAM file"),
    (lambda root: root.find("os/loader").set("readonly", "no"), "<os><loader readonly='no'> is not accepted"),
    (lambda root: root.find("seclabel").append(etree.fromstring("<baselabel>system_u:system_r:svirt_t:s0</baselabel>")),
     "<seclabel><baselabel> is not accepted"),
    (lambda root: root.find("seclabel").append(etree.fromstring("<label>+0:+0</label>")),
     "<seclabel><label> is not accepted"),
    (lambda root: root.find("os").append(etree.fromstring("<acpi><table type='slic'>/etc/shadow</table></acpi>")),
     "<os><acpi><table> is not accepted"),
    (lambda root: root.insert(4, etree.fromstring(
        "<sysinfo type='fwcfg'><entry name='opt/x' file='/etc/shadow'/></sysinfo>")),
     "<sysinfo><entry file=...> (opt/x) is not accepted"),
    (lambda root: root.find("devices/serial").append(etree.fromstring(
        "<log file='/var/log/libvirt/qemu/neighbour.log'/>")),
     "<serial type='pty'>: the log file '/var/log/libvirt/qemu/neighbour.log' must be a file in"),
])
def test_it_keeps_the_vm_to_its_own_files(change, expected):
    root = ordinary()
    change(root)
    refusals = check_domain_xml(root, CONTEXT)
    assert len(refusals) == 1 and expected in refusals[0], refusals


def test_it_accepts_the_vms_own_nvram_log_and_shared_read_only_media():
    root = ordinary()
    root.find("devices/serial").append(etree.fromstring(f"<log file='/var/log/libvirt/qemu/{UUID}-serial0.log'/>"))
    root.find("devices").append(etree.fromstring(
        f"<disk type='volume' device='cdrom'><source pool='default' volume='debian.iso'/><target dev='sdb' "
        "bus='sata'/><readonly/></disk>"))
    assert check_domain_xml(root, CONTEXT) == []


@pytest.fixture
def test_driver(tmp_path):
    """libvirt's test driver over a private copy of tests/virt/samples/node.xml (web1, whose disk is
    /var/lib/libvirt/images/web1.qcow2) and a second VM, 'other', to edit."""
    import shutil

    import libvirt

    from tests.virt.helpers import SAMPLES

    shutil.copy(SAMPLES / "node.xml", tmp_path / "node.xml")
    conn = libvirt.open(f"test://{tmp_path / 'node.xml'}")
    other = conn.defineXML("<domain type='test'><name>other</name><memory>65536</memory>"
                           "<os><type arch='x86_64'>hvm</type></os><devices/></domain>")
    yield conn, other
    conn.close()


def test_it_refuses_in_the_worker_another_vms_disk_and_nvram(test_driver):
    import libvirt

    from virt import devices
    from virt.errors import InvalidArgument

    conn, other = test_driver
    context = devices.host_context(conn, other, emulator=None)
    assert context.used_elsewhere.get("/var/lib/libvirt/images/web1.qcow2") is True and context.name == "other"
    root = etree.fromstring(other.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    root.find("devices").append(etree.fromstring(
        "<disk type='file' device='disk'><source file='/var/lib/libvirt/images/web1.qcow2'/>"
        "<target dev='vdb' bus='virtio'/></disk>"))
    root.find("os").append(etree.fromstring("<nvram>/var/lib/libvirt/qemu/nvram/web1_VARS.fd</nvram>"))
    with pytest.raises(InvalidArgument) as refused:
        devices.define_xml(conn, other, xml=etree.tostring(root, encoding="unicode"), emulator=None)
    assert "'/var/lib/libvirt/images/web1.qcow2' is in use by another VM of this host" in str(refused.value)
    assert "'/var/lib/libvirt/qemu/nvram/web1_VARS.fd' is not this VM's own NVRAM file" in str(refused.value)
    assert "<disk" not in other.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)  # nothing was defined


@pytest.mark.django_db
def test_it_refuses_on_the_page_another_vms_disk_and_nvram(admin_client):
    import uuid as uuids

    from django.urls import reverse
    from django.utils import timezone

    from domains.models import Domain
    from hosts.models import Host
    from storage.models import StoragePool

    host = Host.objects.create(name=f"xml-{uuids.uuid4().hex[:8]}", transport="test", address="default",
                               capabilities={"emulator": EMULATOR})
    StoragePool.objects.create(host=host, uuid=str(uuids.uuid4()), name="default", pool_type="dir", active=True,
                               target_path="/var/lib/libvirt/images", synced_at=timezone.now())
    mine = Domain.objects.create(host=host, uuid=UUID, name="mine", synced_at=timezone.now(), xml_inactive=ORDINARY,
                                 details={"disks": [{"source": OWN_DISK, "device": "disk", "target": "vda"}]})
    Domain.objects.create(host=host, uuid=str(uuids.uuid4()), name="neighbour", synced_at=timezone.now(),
                          details={"disks": [{"source": NEIGHBOUR_DISK, "device": "disk", "target": "vda"}]})
    root = ordinary()
    root.find("devices/disk/source").set("file", NEIGHBOUR_DISK)
    root.find("os/nvram").text = "/var/lib/libvirt/qemu/nvram/neighbour_VARS.fd"
    response = admin_client.post(reverse("domains:config_xml_edit", args=[mine.pk]),
                                 {"xml": etree.tostring(root, encoding="unicode")})
    assert response.status_code == 400
    errors = response.context["form"].errors["xml"]
    assert any(f"'{NEIGHBOUR_DISK}' is in use by another VM of this host" in error for error in errors), errors
    assert any("is not this VM's own NVRAM file" in error for error in errors), errors
    response = admin_client.post(reverse("domains:config_xml_edit", args=[mine.pk]), {"xml": ORDINARY})
    assert response.status_code == 302, response.context["form"].errors  # its own XML, unchanged, is accepted
