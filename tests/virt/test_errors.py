"""virt.errors' helpers against libvirt's test driver: each error code the driver can produce is
mapped to its typed error, and public functions of virt/ let no raw libvirtError out."""
from __future__ import annotations

from collections.abc import Iterator

import libvirt
import pytest

from virt import domains, networks, nwfilters, storage
from virt.errors import (AlreadyExists, InvalidArgument, NotFound, OperationInvalid, PermissionDenied, VirtError,
                         has_code, lookup_or_none, tolerating)


@pytest.fixture
def conn() -> Iterator[libvirt.virConnect]:
    conn = libvirt.open("test:///default")
    yield conn
    conn.close()


@pytest.fixture
def read_only() -> Iterator[libvirt.virConnect]:
    conn = libvirt.openReadOnly("test:///default")
    yield conn
    conn.close()


def _missing_objects(conn: libvirt.virConnect) -> list[tuple[object, tuple, int]]:
    """(call, args, code): one lookup of a missing object per kind the test driver has."""
    domain = conn.lookupByName("test")
    pool = conn.storagePoolLookupByName("default-pool")
    return [
        (conn.lookupByName, ("nope",), libvirt.VIR_ERR_NO_DOMAIN),
        (conn.networkLookupByName, ("nope",), libvirt.VIR_ERR_NO_NETWORK),
        (conn.storagePoolLookupByName, ("nope",), libvirt.VIR_ERR_NO_STORAGE_POOL),
        (pool.storageVolLookupByName, ("nope",), libvirt.VIR_ERR_NO_STORAGE_VOL),
        (conn.interfaceLookupByName, ("nope",), libvirt.VIR_ERR_NO_INTERFACE),
        (domain.snapshotLookupByName, ("nope", 0), libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT),
        (conn.nodeDeviceLookupByName, ("nope",), libvirt.VIR_ERR_NO_NODE_DEVICE),
    ]


def test_lookup_or_none_gives_none_for_every_missing_kind_and_the_object_when_found(conn):
    for call, args, code in _missing_objects(conn):
        assert lookup_or_none(call, *args) is None, code
        with pytest.raises(NotFound) as caught:
            lookup_or_none(call, *args, missing=())
        assert caught.value.code == code and "not found" in str(caught.value)
    assert lookup_or_none(conn.lookupByName, "test").name() == "test"


@pytest.mark.parametrize("make_call, code, typed, words", [
    (lambda c, ro: (c.lookupByUUIDString, "zzz"), libvirt.VIR_ERR_INVALID_ARG, InvalidArgument, "Invalid UUID"),
    (lambda c, ro: (c.defineXML, "<domain"), libvirt.VIR_ERR_XML_DETAIL, InvalidArgument, "Start Tag"),
    (lambda c, ro: (c.listAllNWFilters, 0), libvirt.VIR_ERR_NO_SUPPORT, InvalidArgument, "not supported"),
    (lambda c, ro: (c.lookupByName("test").create,), libvirt.VIR_ERR_INTERNAL_ERROR, VirtError, "already running"),
    (lambda c, ro: (c.createXML, c.lookupByName("test").XMLDesc(0), 0), libvirt.VIR_ERR_OPERATION_INVALID,
     OperationInvalid, "already active"),
    (lambda c, ro: (ro.lookupByName("test").destroy,), libvirt.VIR_ERR_OPERATION_DENIED, PermissionDenied,
     "read only access"),
])
def test_any_other_code_leaves_typed_with_libvirts_message(conn, read_only, make_call, code, typed, words):
    call, *args = make_call(conn, read_only)
    with pytest.raises(typed) as caught:
        lookup_or_none(call, *args)
    assert type(caught.value) is typed and caught.value.code == code and words in str(caught.value)
    assert isinstance(caught.value.__cause__, libvirt.libvirtError)
    assert lookup_or_none(call, *args, missing=(code,)) is None


def test_tolerating_ends_the_block_on_its_codes_only(conn):
    done = []
    with tolerating(libvirt.VIR_ERR_NO_DOMAIN):
        conn.lookupByName("nope")
        done.append("after")
    assert done == []
    with pytest.raises(NotFound):
        with tolerating(libvirt.VIR_ERR_NO_NETWORK):
            conn.lookupByName("nope")


def test_helpers_also_recognise_an_error_translated_further_in(conn):
    """A typed error raised by an inner virt/ function keeps its code, so an outer helper still sees it."""
    assert lookup_or_none(domains.lookup, conn, "00000000-0000-0000-0000-000000000000") is None
    with tolerating(libvirt.VIR_ERR_NO_STORAGE_POOL):
        storage.lookup_pool(conn, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(AlreadyExists) as caught:
        networks.require_free_name(conn, "default")
    assert not has_code(caught.value, libvirt.VIR_ERR_NO_NETWORK)


def test_public_functions_that_leaked_a_raw_libvirt_error_raise_the_typed_one(conn):
    # Both used to re-raise libvirt's own error: the code was not the one they looked for.
    with pytest.raises(InvalidArgument, match="must be a valid UUID"):
        storage.lookup_pool(conn, "not-a-uuid")
    with pytest.raises(InvalidArgument, match="not supported by the connection driver"):
        nwfilters.delete_filter(conn, "00000000-0000-0000-0000-000000000000")
    # The messages users see for a missing object stay vmsite's own.
    with pytest.raises(NotFound, match="The network 00000000-0000-0000-0000-000000000000 no longer exists"):
        networks.lookup(conn, "00000000-0000-0000-0000-000000000000")


def test_a_public_function_that_let_libvirts_refusal_out_raises_the_typed_error(read_only):
    # domains.force_off called domain.destroy() bare: a read-only connection's refusal escaped as libvirtError.
    with pytest.raises(PermissionDenied, match="read only access prevents virDomainDestroy") as caught:
        domains.force_off(read_only.lookupByName("test"))
    assert caught.value.code == libvirt.VIR_ERR_OPERATION_DENIED
    with pytest.raises(PermissionDenied, match="read only access"):
        storage.stop_pool(read_only.storagePoolLookupByName("default-pool"))


def test_raises_typed_keeps_the_functions_name_and_lets_vmsites_own_errors_through(conn):
    assert domains.force_off.__name__ == "force_off" and domains.force_off.__doc__ == domains.__dict__[
        "force_off"].__wrapped__.__doc__
    with pytest.raises(OperationInvalid, match="transient VM"):
        domains.set_autostart(conn.createXML(_transient_xml(conn), 0), enabled=True)


def _transient_xml(conn: libvirt.virConnect) -> str:
    import re
    xml = conn.lookupByName("test").XMLDesc(0)
    xml = re.sub(r"<uuid>.*</uuid>", "", xml)
    return xml.replace("<name>test</name>", "<name>passing</name>")
