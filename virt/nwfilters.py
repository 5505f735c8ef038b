"""Network filters (nwfilter): list with their XML, define from XML a user wrote, delete."""
from __future__ import annotations

import re
import uuid as uuid_module
from dataclasses import dataclass

import libvirt

from virt.errors import InvalidArgument, NotFound, OperationInvalid, has_code, lookup_or_none, raises_typed, translated
from virt.xml.base import parse_untrusted
from virt.xml.network import NWFilter

FILTER_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}\Z")
CHAINS = re.compile(r"\A(root|mac|vlan|stp|arp|rarp|ipv4|ipv6)(-[A-Za-z0-9_]+)?\Z")
# What a <filter> may hold: rules of these protocols, references to other filters, and its uuid.
RULE_PROTOCOLS = {"mac", "vlan", "stp", "arp", "rarp", "ip", "ipv6", "tcp", "udp", "sctp", "icmp", "igmp", "esp",
                  "ah", "udplite", "all", "tcp-ipv6", "udp-ipv6", "sctp-ipv6", "icmpv6", "esp-ipv6", "ah-ipv6",
                  "udplite-ipv6", "all-ipv6"}


@dataclass(frozen=True)
class FilterSummary:
    uuid: uuid_module.UUID
    name: str
    chain: str
    rule_count: int
    references: list
    xml: str


@raises_typed
def list_filters(conn: libvirt.virConnect) -> list[FilterSummary] | None:
    """Every filter with its XML; None when the driver has no filters at all (the test driver)."""
    filters = lookup_or_none(conn.listAllNWFilters, 0, missing=(libvirt.VIR_ERR_NO_SUPPORT,))
    if filters is None:
        return None
    summaries = []
    for item in filters:
        xml = lookup_or_none(item.XMLDesc, 0, missing=(libvirt.VIR_ERR_NO_NWFILTER,))
        if xml is None:
            continue  # undefined while we looked
        document = NWFilter.from_libvirt(xml)
        summaries.append(FilterSummary(uuid=uuid_module.UUID(item.UUIDString()), name=item.name(),
                                       chain=document.chain or "root", rule_count=document.rule_count,
                                       references=[ref.filter for ref in document.references], xml=xml))
    return summaries


def check_filter_xml(text: str) -> NWFilter:
    """Parse a filter a user wrote (safely) and refuse what is not a plain filter; raises ValueError."""
    document = NWFilter(_root(text))
    refusals = []
    if not document.name or not FILTER_NAME_RE.match(document.name):
        refusals.append("The filter needs a name of letters, digits, '.', '_', ':' or '-'.")
    if document.chain and not CHAINS.match(document.chain):
        refusals.append(f"{document.chain!r} is not a filter chain (root, mac, vlan, stp, arp, rarp, ipv4, ipv6, "
                        "optionally with a -suffix).")
    for child in document.element:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "rule":
            for protocol in child:
                if isinstance(protocol.tag, str) and protocol.tag not in RULE_PROTOCOLS:
                    refusals.append(f"<{protocol.tag}> is not a rule protocol libvirt knows.")
        elif child.tag not in ("uuid", "filterref"):
            refusals.append(f"<{child.tag}> does not belong in a <filter>.")
    if refusals:
        raise ValueError(" ".join(refusals))
    return document


def _root(text: str):
    root = parse_untrusted(text)
    if root.tag != "filter":
        raise ValueError(f"The document's root must be <filter>, not <{root.tag}>.")
    return root


@raises_typed
def define_filter(conn: libvirt.virConnect, xml: str) -> str:
    try:
        document = check_filter_xml(xml)
    except ValueError as exc:
        raise InvalidArgument(f"Refused, nothing was defined: {exc}") from None
    existed = _exists(conn, document.name)
    conn.nwfilterDefineXML(document.to_xml())
    return f"{'Changed' if existed else 'Defined'} the filter {document.name}"


def _exists(conn: libvirt.virConnect, name: str) -> bool:
    return lookup_or_none(conn.nwfilterLookupByName, name) is not None


@raises_typed
def delete_filter(conn: libvirt.virConnect, uuid: str) -> str:
    item = lookup_or_none(conn.nwfilterLookupByUUIDString, uuid)
    if item is None:
        raise NotFound(f"The filter {uuid} no longer exists on this host.", code=libvirt.VIR_ERR_NO_NWFILTER)
    with translated():
        name = item.name()
    try:
        with translated():
            item.undefine()
    except OperationInvalid as exc:
        if has_code(exc, libvirt.VIR_ERR_OPERATION_INVALID):
            raise OperationInvalid(f"The filter {name} is in use (by a NIC or another filter): {exc}",
                                   code=exc.code) from exc.__cause__
        raise
    return f"Deleted the filter {name}"
