"""The pool and volume XML model: what libvirt writes is read, what vmsite writes libvirt reads."""
import pytest

from tests.virt.helpers import canonical
from virt.xml.storage import PoolSource, PoolSourceList, PoolXML, VolumeXML

LIBVIRT_VOLUME = """<volume type='file'>
  <name>disk.qcow2</name>
  <key>/var/lib/libvirt/images/disk.qcow2</key>
  <capacity unit='bytes'>1073741824</capacity>
  <allocation unit='bytes'>200704</allocation>
  <physical unit='bytes'>196624</physical>
  <target>
    <path>/var/lib/libvirt/images/disk.qcow2</path>
    <format type='qcow2'/>
  </target>
  <backingStore>
    <path>/var/lib/libvirt/images/base.qcow2</path>
    <format type='qcow2'/>
  </backingStore>
</volume>"""


def test_it_reads_a_volume_as_libvirt_describes_it():
    volume = VolumeXML.from_libvirt(LIBVIRT_VOLUME)
    assert (volume.type, volume.name, volume.key, volume.format) == (
        "file", "disk.qcow2", "/var/lib/libvirt/images/disk.qcow2", "qcow2")
    assert (volume.capacity, volume.allocation, volume.physical) == (1073741824, 200704, 196624)
    assert (volume.backing_path, volume.backing_format) == ("/var/lib/libvirt/images/base.qcow2", "qcow2")


def test_sizes_in_other_units_are_read_in_bytes_and_written_in_bytes():
    volume = VolumeXML.from_xml("<volume><name>a</name><capacity unit='GiB'>2</capacity>"
                                "<allocation unit='M'>3</allocation></volume>")
    assert (volume.capacity, volume.allocation) == (2 * 1024**3, 3 * 1024**2)
    volume.capacity = 5
    assert "<capacity unit=\"bytes\">5</capacity>" in volume.to_xml()


def test_it_builds_a_volume_in_libvirts_element_order_and_refuses_bad_values():
    volume = VolumeXML.new()
    volume.format = "qcow2"
    volume.name = "new.qcow2"
    volume.capacity = 1024
    volume.backing_path = "/images/base.qcow2"
    text = volume.to_xml()
    assert text.index("<name>") < text.index("<capacity") < text.index("<target>") < text.index("<backingStore>")
    with pytest.raises(ValueError, match="less than 0"):
        volume.capacity = -1
    with pytest.raises(ValueError, match="cannot represent"):
        volume.name = "bad\x00name"


def test_a_pool_summary_holds_what_the_pool_page_shows():
    pool = PoolXML.from_libvirt("""<pool type='logical'><name>vg</name>
      <source><device path='/dev/sdb'/><device path='/dev/sdc'/><name>vg0</name><format type='lvm2'/></source>
      <target><path>/dev/vg0</path></target></pool>""")
    assert pool.summary() == {"source_host": "", "source_port": None, "source_dir": "",
                              "source_devices": ["/dev/sdb", "/dev/sdc"], "source_name": "vg0",
                              "source_format": "lvm2", "initiator_iqn": ""}
    with pytest.raises(ValueError, match="is not one of"):
        pool.type = "rbd"


def test_a_pool_source_is_a_discovery_question_and_its_answers_are_read():
    query = PoolSource.new()
    query.host = "nfs.example.org"
    assert canonical(query.to_xml()) == canonical("<source><host name='nfs.example.org'/></source>")
    answer = PoolSourceList.from_libvirt("""<sources>
      <source><host name='nfs.example.org'/><dir path='/export/a'/><format type='nfs'/></source>
      <source><host name='san'/><device path='iqn.2004-04.org.example:t1'/></source></sources>""")
    assert [(source.host, source.dir, source.devices) for source in answer.sources] == [
        ("nfs.example.org", "/export/a", []), ("san", None, ["iqn.2004-04.org.example:t1"])]
