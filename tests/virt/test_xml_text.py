"""Text set through the model comes back exactly, and never becomes markup."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from lxml import etree

from virt.xml import Domain
from tests.virt.helpers import sample

# Characters XML 1.0 cannot hold; st.characters() never draws surrogates, so they are listed.
NOT_XML = ["\x00", "\x08", "\x0b", "\x0c", "\x1f", "\ud800", "\udfff", "\ufffe", "\uffff"]
XML_CHAR = st.one_of(st.characters(exclude_categories=("Cc", "Cs")), st.sampled_from("\t\n\r "))
TEXT = st.one_of(
    st.text(XML_CHAR),
    st.text(),
    st.tuples(st.text(XML_CHAR), st.sampled_from(NOT_XML), st.text(XML_CHAR)).map("".join),
)
FIELDS = ["name", "title", "description"]


def _representable(text: str) -> bool:
    return all(
        char in "\t\n\r" or 0x20 <= ord(char) <= 0xD7FF or 0xE000 <= ord(char) <= 0xFFFD
        or ord(char) >= 0x10000
        for char in text
    )


def _tags(domain: Domain) -> Counter:
    return Counter(element.tag for element in domain.element.iter(etree.Element))


@pytest.mark.parametrize("field", FIELDS)
@given(text=TEXT)
def test_it_round_trips_any_text_xml_can_hold(field, text):
    domain = Domain.from_xml(sample("unknown-parts.xml"))  # has a name, no title or description
    expected = _tags(domain)
    expected[field] = 1
    event("refused" if not _representable(text) else "round trip")
    if not _representable(text):
        with pytest.raises(ValueError, match=f"Domain.{field}: .* XML 1.0 cannot represent"):
            setattr(domain, field, text)
        return
    setattr(domain, field, text)
    again = Domain.from_xml(domain.to_xml())
    assert getattr(again, field) == text
    assert _tags(again) == expected


@pytest.mark.parametrize("text", [
    "", "  padded  ", "<b>bold</b>", "a & b", "it's \"quoted\"", "]]>", "&amp;", "line\r\nbreak",
    "ünïcødé ✓ 𝄞", "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>&e;",
])
def test_it_round_trips_markup_as_text(text):
    domain = Domain.from_xml("<domain><name>web1</name></domain>")
    domain.description = text
    again = Domain.from_xml(domain.to_xml())
    assert again.description == text
    assert [element.tag for element in again.element] == ["name", "description"]
