from __future__ import annotations

import pytest

from virt.xml import MAX_XML_BYTES, Domain, XMLRejected, parse_trusted, parse_untrusted

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE domain [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<domain type='kvm'><name>&e;</name></domain>"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<domain><name>&lol9;</name></domain>"""


def _passwd_line() -> str:
    with open("/etc/passwd") as passwd:
        return passwd.readline().strip()


@pytest.mark.parametrize("text", [EXTERNAL_ENTITY, EXTERNAL_ENTITY.encode()])
def test_it_refuses_an_external_entity(text):
    with pytest.raises(XMLRejected, match="DOCTYPE or entities is not accepted") as caught:
        parse_untrusted(text)
    assert _passwd_line() not in str(caught.value)


def test_it_refuses_an_external_entity_through_the_model():
    with pytest.raises(XMLRejected) as caught:
        Domain.from_xml(EXTERNAL_ENTITY)
    assert _passwd_line() not in str(caught.value)


def test_it_refuses_billion_laughs():
    with pytest.raises(XMLRejected, match="DOCTYPE"):
        parse_untrusted(BILLION_LAUGHS)


@pytest.mark.parametrize("text", [EXTERNAL_ENTITY, BILLION_LAUGHS])
def test_it_refuses_a_doctype_the_byte_check_cannot_see(text):
    # UTF-16 hides "<!DOCTYPE" from a search of the bytes; the parsed document still shows it.
    utf16 = text.replace('"1.0"?>', '"1.0" encoding="UTF-16"?>').encode("utf-16")
    with pytest.raises(XMLRejected) as caught:
        parse_untrusted(utf16)
    assert _passwd_line() not in str(caught.value)


def test_it_refuses_xml_over_the_size_limit():
    text = "<domain><description>" + "x" * MAX_XML_BYTES + "</description></domain>"
    with pytest.raises(XMLRejected, match="larger than"):
        parse_untrusted(text)


def test_it_refuses_malformed_xml():
    with pytest.raises(XMLRejected, match="not well-formed"):
        parse_untrusted("<domain><name>web1</domain>")


def test_it_refuses_an_undeclared_entity():
    with pytest.raises(XMLRejected):
        parse_untrusted("<domain><name>&e;</name></domain>")


def test_it_refuses_the_wrong_root_element():
    with pytest.raises(ValueError, match="expected <domain>, got <network>"):
        Domain.from_xml("<network/>")


def test_it_reads_a_str_whatever_its_declared_encoding():
    text = '<?xml version="1.0" encoding="ISO-8859-1"?><domain><name>é</name></domain>'
    root = parse_untrusted(text)
    assert root.findtext("name") == "é"


def test_it_keeps_comments():
    root = parse_untrusted("<domain><!-- keep me --><name>a</name></domain>")
    assert "keep me" in Domain(root).to_xml()


def test_it_parses_libvirt_xml_without_the_size_limit():
    text = "<domain><description>" + "x" * MAX_XML_BYTES + "</description></domain>"
    assert len(parse_trusted(text).findtext("description")) == MAX_XML_BYTES
