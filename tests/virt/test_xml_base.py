"""The descriptors, on a small element made up for the purpose."""
from __future__ import annotations

import pytest
from lxml import etree

from virt.xml import XMLChild, XMLChildList, XMLFlag, XMLObject, XMLProperty, XMLValueList
from virt.xml.base import at_least


class Item(XMLObject):
    tag = "item"

    label = XMLProperty("./@label")


class Thing(XMLObject):
    tag = "thing"

    name = XMLProperty("./name")
    size = XMLProperty("./size", int, validate=at_least(0))
    arch = XMLProperty("./os/type/@arch")
    address = XMLProperty("./listen[@type='address']/@address")
    enabled = XMLProperty("./rom/@enabled", bool)
    readonly = XMLFlag("./readonly")
    boot = XMLValueList("./os/boot/@dev")
    items = XMLChildList(Item, "./items/item")


def _thing(text: str = "<thing/>") -> Thing:
    return Thing.from_xml(text)


def test_it_reads_none_when_the_path_is_missing():
    thing = _thing()
    assert (thing.name, thing.size, thing.arch, thing.enabled, thing.readonly, thing.boot) == (
        None, None, None, None, False, [])


def test_it_creates_the_path_on_set():
    thing = _thing()
    thing.arch = "x86_64"
    thing.address = "::1"
    assert thing.element.find("os/type").get("arch") == "x86_64"
    assert thing.element.find("listen").attrib == {"type": "address", "address": "::1"}


def test_it_reads_and_writes_ints_and_yes_no():
    thing = _thing("<thing><size> 42 </size><rom enabled='no'/></thing>")
    assert (thing.size, thing.enabled) == (42, False)
    thing.size, thing.enabled = 7, True
    assert thing.element.findtext("size") == "7"
    assert thing.element.find("rom").get("enabled") == "yes"


def test_it_removes_the_value_and_the_parents_it_emptied_on_none():
    thing = _thing("<thing><os><type arch='x86_64'/></os><name>n</name></thing>")
    thing.arch = None
    thing.name = None
    assert etree.tostring(thing.element) == b"<thing/>"


def test_it_keeps_a_parent_that_still_holds_something():
    thing = _thing("<thing><os><type arch='x86_64'>hvm</type></os></thing>")
    thing.arch = None
    assert thing.element.findtext("os/type") == "hvm"


def test_it_refuses_the_wrong_type_and_names_the_property():
    thing = _thing()
    with pytest.raises(TypeError, match="Thing.size: expected int, got str"):
        thing.size = "42"
    with pytest.raises(TypeError, match="Thing.size"):
        thing.size = True
    with pytest.raises(TypeError, match="Thing.enabled"):
        thing.enabled = "yes"


def test_it_runs_the_validator_before_writing():
    thing = _thing("<thing><size>1</size></thing>")
    with pytest.raises(ValueError, match="Thing.size: -1 is less than 0"):
        thing.size = -1
    assert thing.size == 1


def test_it_sets_and_clears_a_flag():
    thing = _thing()
    thing.readonly = True
    thing.readonly = True
    assert len(thing.element.findall("readonly")) == 1
    thing.readonly = False
    assert not thing.readonly


def test_it_replaces_a_value_list_in_place():
    thing = _thing("<thing><os><type>hvm</type><boot dev='hd'/><loader/></os></thing>")
    thing.boot = ["cdrom", "hd"]
    assert thing.boot == ["cdrom", "hd"]
    assert [child.tag for child in thing.element.find("os")] == ["type", "boot", "boot", "loader"]
    thing.boot = []
    assert [child.tag for child in thing.element.find("os")] == ["type", "loader"]


def test_it_adds_and_removes_children():
    thing = _thing("<thing><items><item label='a'/><other/></items></thing>")
    added = thing.items.add()
    added.label = "b"
    assert [item.label for item in thing.items] == ["a", "b"]
    assert [child.tag for child in thing.element.find("items")] == ["item", "item", "other"]
    thing.items.remove(thing.items[0])
    assert [item.label for item in thing.items] == ["b"]


def test_it_adds_a_child_built_on_its_own():
    item = Item.new()
    item.label = "solo"
    thing = _thing()
    thing.items.add(item)
    assert thing.element.find("items/item").get("label") == "solo"
    assert len(thing.items) == 1


def test_it_refuses_to_remove_a_child_of_another_list():
    with pytest.raises(ValueError, match="not in this list"):
        _thing().items.remove(Item.new())


def test_it_refuses_a_path_it_cannot_create():
    with pytest.raises(ValueError, match="not supported"):
        XMLProperty("./devices//disk")
    with pytest.raises(ValueError, match="must start with"):
        XMLProperty("name")


class Marked(XMLObject):
    tag = "thing"

    mark = XMLFlag("./metadata/app:mark", namespaces={"app": "https://example.org/app"})
    first_item = XMLChild(Item, "./items/item")


def test_a_flag_in_a_namespace_is_found_by_its_uri_and_written_with_its_prefix():
    thing = Marked.from_xml("<thing><metadata><x:mark xmlns:x='https://example.org/app'/><mark/></metadata></thing>")
    assert thing.mark
    thing.mark = False
    assert etree.tostring(thing.element) == b"<thing><metadata><mark/></metadata></thing>"
    thing.mark = True
    assert '<app:mark xmlns:app="https://example.org/app"/>' in thing.to_xml()
    with pytest.raises(ValueError, match="prefix 'other' has no namespace"):
        XMLFlag("./other:mark")


def test_a_child_is_wrapped_or_none_and_cannot_be_replaced():
    thing = Marked.from_xml("<thing/>")
    assert thing.first_item is None
    Thing(thing.element).items.add().label = "a"
    assert thing.first_item.label == "a"
    with pytest.raises(AttributeError, match="read-only"):
        thing.first_item = None


def test_a_copy_changes_without_touching_the_original():
    thing = _thing("<thing><name>a</name></thing>")
    changed = thing.copy()
    changed.name = "b"
    assert (thing.name, changed.name) == ("a", "b")
