"""Parsing, and the building blocks of the XML object model.

One `XMLObject` subclass per element; its properties are descriptors bound to short paths
relative to that element. Reading a missing path gives None, writing creates it, writing None
removes it. Everything else in the document is left where it was.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

from lxml import etree

MAX_XML_BYTES = 1024 * 1024

_NO_DOCTYPE = "XML with a DOCTYPE or entities is not accepted"


class XMLRejected(ValueError):
    """XML refused before it reached the model: malformed, too large, or with a DOCTYPE."""


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_untrusted(text: str | bytes) -> etree._Element:
    """Parse XML a user gave: no DOCTYPE, no entities, no network, at most MAX_XML_BYTES."""
    data = _as_bytes(text)
    if len(data) > MAX_XML_BYTES:
        raise XMLRejected(f"XML larger than {MAX_XML_BYTES} bytes is not accepted")
    # Refused before libxml2 reads the declarations; the check after parsing catches the same
    # in encodings this byte search cannot see (UTF-16).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XMLRejected(_NO_DOCTYPE)
    root = _parse(data, isinstance(text, str))
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XMLRejected(_NO_DOCTYPE)
    return root


def parse_trusted(text: str | bytes) -> etree._Element:
    """Parse XML that libvirt produced (XMLDesc, capabilities): no size or DOCTYPE check."""
    return _parse(_as_bytes(text), isinstance(text, str))


def _as_bytes(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise XMLRejected(f"XML text is not valid Unicode: {exc}") from None


def _parse(data: bytes, was_str: bool) -> etree._Element:
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=False,
        # A str was encoded to UTF-8 above, whatever its XML declaration says.
        encoding="utf-8" if was_str else None,
    )
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise XMLRejected(f"XML is not well-formed: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Values

# XML 1.0 Char: tab, newline, carriage return, and the planes minus surrogates, U+FFFE, U+FFFF.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def check_xml_text(value: str) -> str:
    """Return value, or raise ValueError if XML 1.0 cannot hold one of its characters."""
    bad = _NOT_XML_CHAR.search(value)
    if bad:
        raise ValueError(f"text contains U+{ord(bad.group()):04X}, which XML 1.0 cannot represent")
    return value


def one_of(*choices: str) -> Callable[[str], None]:
    def validate(value: str) -> None:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
    return validate


def at_least(minimum: int) -> Callable[[int], None]:
    def validate(value: int) -> None:
        if value < minimum:
            raise ValueError(f"{value} is less than {minimum}")
    return validate


def _to_text(value: Any, kind: type) -> str:
    # bool is an int: refuse it where a number is wanted, and anything but bool where a flag is.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    if kind is bool:
        return "yes" if value else "no"
    return check_xml_text(str(value))


_TRUE = {"yes", "on"}
_FALSE = {"no", "off"}


def _from_text(text: str, kind: type) -> Any:
    if kind is int:
        return int(text.strip())
    if kind is bool:
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"{text!r} is not yes/no")
    return text


# ---------------------------------------------------------------------------------------------
# Paths: "./a/b[@type='x']/@attr", relative to an object's element. A small subset of XPath
# that can be created as well as found. A step may name its element with a prefix ("app:mark")
# that the descriptor's `namespaces` maps to a namespace URI.

# Where a new child goes, by its parent's tag, e.g. {"os": ("type", "loader", "boot")}. libvirt
# reads children in any order; this keeps what the model writes in the order libvirt writes.
ChildOrder = Mapping[str, tuple[str, ...]]

_STEP = re.compile(r"(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)((?:\[@[\w.-]+='[^'/]*'\])*)")
_PREDICATE = re.compile(r"\[@([\w.-]+)='([^'/]*)'\]")
_ATTRIBUTE = re.compile(r"@([A-Za-z_][\w.-]*)")


@dataclass(frozen=True)
class _Step:
    tag: str  # "{uri}name" for a name in a namespace
    attrs: tuple[tuple[str, str], ...]
    prefix: str | None = None  # the prefix a new element is written with
    namespace: str | None = None

    def matches(self, element: etree._Element) -> bool:
        return all(element.get(name) == value for name, value in self.attrs)

    def children(self, parent: etree._Element) -> list[etree._Element]:
        return [child for child in parent.iterchildren(self.tag) if self.matches(child)]

    def first(self, parent: etree._Element) -> etree._Element | None:
        return next(iter(self.children(parent)), None)

    def create(self) -> etree._Element:
        nsmap = {self.prefix: self.namespace} if self.namespace else None
        return etree.Element(self.tag, dict(self.attrs), nsmap=nsmap)


@dataclass(frozen=True)
class _Path:
    steps: tuple[_Step, ...]
    attribute: str | None

    @classmethod
    def parse(cls, xpath: str, namespaces: Mapping[str, str] | None = None) -> _Path:
        if xpath != "." and not xpath.startswith("./"):
            raise ValueError(f"path {xpath!r} must start with './'")
        parts = xpath.split("/")[1:]
        attribute = None
        if parts and (match := _ATTRIBUTE.fullmatch(parts[-1])):
            attribute = match.group(1)
            parts = parts[:-1]
        return cls(tuple(_parse_step(part, xpath, namespaces or {}) for part in parts), attribute)

    @property
    def parent(self) -> _Path:
        return _Path(self.steps[:-1], None)

    def find_all(self, root: etree._Element) -> list[etree._Element]:
        """Every element the path's steps match (its attribute aside)."""
        parent = self.parent.find(root) if self.steps else None
        return [] if parent is None else self.steps[-1].children(parent)

    def find(self, root: etree._Element) -> etree._Element | None:
        node: etree._Element | None = root
        for step in self.steps:
            node = step.first(node)
            if node is None:
                return None
        return node

    def make(self, root: etree._Element, order: ChildOrder) -> etree._Element:
        node = root
        for step in self.steps:
            found = step.first(node)
            node = found if found is not None else insert_child(node, step.create(), order)
        return node

    def get(self, root: etree._Element) -> str | None:
        node = self.find(root)
        if node is None:
            return None
        if self.attribute:
            return node.get(self.attribute)
        return node.text or ""

    def set(self, root: etree._Element, text: str, order: ChildOrder) -> None:
        node = self.make(root, order)
        if self.attribute:
            node.set(self.attribute, text)
        else:
            node.text = text

    def clear(self, root: etree._Element) -> None:
        node = self.find(root)
        if node is None:
            return
        if self.attribute:
            node.attrib.pop(self.attribute, None)
        elif node is root:
            node.text = None
            return
        else:
            parent = node.getparent()
            parent.remove(node)
            node = parent
        _prune_empty(node, root)


def _parse_step(part: str, xpath: str, namespaces: Mapping[str, str]) -> _Step:
    match = _STEP.fullmatch(part)
    if not match:
        raise ValueError(f"path {xpath!r}: step {part!r} is not supported")
    prefix, name, predicates = match.groups()
    attrs = tuple(_PREDICATE.findall(predicates))
    if prefix is None:
        return _Step(name, attrs)
    if prefix not in namespaces:
        raise ValueError(f"path {xpath!r}: prefix {prefix!r} has no namespace")
    return _Step(f"{{{namespaces[prefix]}}}{name}", attrs, prefix, namespaces[prefix])


def insert_child(parent: etree._Element, child: etree._Element,
                 order: ChildOrder) -> etree._Element:
    """Add child after the last sibling with its tag, or else before the first sibling that
    order[parent.tag] puts after it, or else at the end. Returns child."""
    same = list(parent.iterchildren(child.tag))
    tags = order.get(parent.tag, ())
    later = set(tags[tags.index(child.tag) + 1:]) if child.tag in tags else set()
    following = next((node for node in parent if node.tag in later), None)
    if same:
        same[-1].addnext(child)
    elif following is not None:
        following.addprevious(child)
    else:
        parent.append(child)
    return child


def _prune_empty(node: etree._Element, root: etree._Element) -> None:
    """Remove node and its ancestors below root while they hold nothing at all."""
    while node is not root and len(node) == 0 and not node.attrib and not (node.text or "").strip():
        parent = node.getparent()
        parent.remove(node)
        node = parent


# ---------------------------------------------------------------------------------------------
# The object model


class XMLObject:
    """One XML element. Subclasses set `tag`, declare properties, and may set `child_order`."""

    tag: ClassVar[str] = ""
    child_order: ClassVar[ChildOrder] = {}

    def __init__(self, element: etree._Element) -> None:
        if element.tag != self.tag:
            raise ValueError(f"expected <{self.tag}>, got <{element.tag}>")
        self.element = element

    @classmethod
    def new(cls) -> Self:
        return cls(etree.Element(cls.tag))

    @classmethod
    def from_xml(cls, text: str | bytes) -> Self:
        """From XML a user gave (see parse_untrusted)."""
        return cls(parse_untrusted(text))

    @classmethod
    def from_libvirt(cls, text: str | bytes) -> Self:
        """From XML that libvirt produced (see parse_trusted)."""
        return cls(parse_trusted(text))

    def copy(self) -> Self:
        """A deep copy, detached from this object's document: to change without touching the original."""
        return type(self)(copy.deepcopy(self.element))

    def to_xml(self) -> str:
        """This element as indented XML text; the object itself is left as it is."""
        element = copy.deepcopy(self.element)
        element.tail = None
        etree.indent(element)  # rewrites whitespace between elements only, never a leaf's text
        return etree.tostring(element, encoding="unicode") + "\n"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {etree.tostring(self.element, encoding='unicode')[:60]!r}>"


class _Descriptor:
    """A property bound to a path below its object's element; errors name the property."""

    def __init__(self, xpath: str, validate: Callable[[Any], None] | None = None,
                 namespaces: Mapping[str, str] | None = None) -> None:
        self.path = _Path.parse(xpath, namespaces)
        self.validate = validate
        self.name = xpath

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: XMLObject | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return self.read(obj)
        except ValueError as exc:
            raise ValueError(f"{type(obj).__name__}.{self.name}: {exc}") from None

    def read(self, obj: XMLObject) -> Any:
        raise NotImplementedError

    def checked(self, obj: XMLObject, value: Any, kind: type) -> str:
        """value as XML text, once its type and the validator accept it."""
        try:
            text = _to_text(value, kind)
            if self.validate:
                self.validate(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{type(obj).__name__}.{self.name}: {exc}") from None
        return text


class XMLProperty(_Descriptor):
    """A value at a path: text of an element or an attribute, as str, int or bool (yes/no)."""

    def __init__(self, xpath: str, kind: type = str, *,
                 validate: Callable[[Any], None] | None = None) -> None:
        super().__init__(xpath, validate)
        self.kind = kind

    def __set__(self, obj: XMLObject, value: Any) -> None:
        if value is None:
            self.path.clear(obj.element)
        else:
            self.write(obj, self.checked(obj, value, self.kind))

    def read(self, obj: XMLObject) -> Any:
        text = self.path.get(obj.element)
        if text is None or (text == "" and self.kind is not str):
            return None
        return _from_text(text, self.kind)

    def write(self, obj: XMLObject, text: str) -> None:
        self.path.set(obj.element, text, obj.child_order)


class XMLFlag(_Descriptor):
    """An element whose presence is the value, like <readonly/>."""

    def __init__(self, xpath: str, *, namespaces: Mapping[str, str] | None = None) -> None:
        super().__init__(xpath, namespaces=namespaces)
        if self.path.attribute or not self.path.steps:
            raise ValueError(f"flag path {xpath!r} must name an element")

    def read(self, obj: XMLObject) -> bool:
        return self.path.find(obj.element) is not None

    def __set__(self, obj: XMLObject, value: bool | None) -> None:
        if value:
            self.path.make(obj.element, obj.child_order)
        else:
            self.path.clear(obj.element)


class XMLValueList(_Descriptor):
    """The values of one attribute over repeated elements, like the devs of <os><boot dev=.../>."""

    def __init__(self, xpath: str, *, validate: Callable[[str], None] | None = None,
                 namespaces: Mapping[str, str] | None = None) -> None:
        super().__init__(xpath, validate, namespaces)
        if not self.path.attribute or not self.path.steps:
            raise ValueError(f"value list path {xpath!r} must end in an element and an attribute")

    def read(self, obj: XMLObject) -> list[str]:
        elements = self.path.find_all(obj.element)
        return [element.get(self.path.attribute) or "" for element in elements]

    def __set__(self, obj: XMLObject, values: Iterable[str] | None) -> None:
        texts = [self.checked(obj, value, str) for value in values or []]
        old = self.path.find_all(obj.element)
        parent = old[0].getparent() if old else self.path.parent.make(obj.element, obj.child_order)
        # The new elements take the place of the old ones, or go where a first one would.
        index = parent.index(old[0]) if old else None
        for element in old:
            parent.remove(element)
        for offset, text in enumerate(texts):
            element = self.path.steps[-1].create()
            element.set(self.path.attribute, text)
            if index is None:
                insert_child(parent, element, obj.child_order)
            else:
                parent.insert(index + offset, element)
        _prune_empty(parent, obj.element)


XO = TypeVar("XO", bound=XMLObject)


class XMLChild(_Descriptor, Generic[XO]):
    """The one child element at a path wrapped in child_class, or None when there is none,
    e.g. ./cpu. Read-only: set its properties, or those of the parent."""

    def __init__(self, child_class: type[XO], xpath: str) -> None:
        super().__init__(xpath)
        if self.path.attribute or not self.path.steps or self.path.steps[-1].tag != child_class.tag:
            raise ValueError(f"child path {xpath!r} must end in <{child_class.tag}>")
        self.child_class = child_class

    def read(self, obj: XMLObject) -> XO | None:
        element = self.path.find(obj.element)
        return None if element is None else self.child_class(element)

    def __set__(self, obj: XMLObject, value: Any) -> None:
        raise AttributeError(f"{type(obj).__name__}.{self.name} is read-only")


class XMLChildList(_Descriptor, Generic[XO]):
    """The child elements at a path, each wrapped in child_class, e.g. ./devices/disk."""

    def __init__(self, child_class: type[XO], xpath: str) -> None:
        super().__init__(xpath)
        if self.path.attribute or not self.path.steps or self.path.steps[-1].tag != child_class.tag:
            raise ValueError(f"child list path {xpath!r} must end in <{child_class.tag}>")
        self.child_class = child_class

    def read(self, obj: XMLObject) -> ChildList[XO]:
        return ChildList(obj, self.child_class, self.path)


class ChildList(Generic[XO]):
    """A live view: it reads the document on every access."""

    def __init__(self, owner: XMLObject, child_class: type[XO], path: _Path) -> None:
        self._owner = owner
        self._child_class = child_class
        self._path = path

    def _elements(self) -> list[etree._Element]:
        return self._path.find_all(self._owner.element)

    def __iter__(self) -> Iterator[XO]:
        return iter([self._child_class(element) for element in self._elements()])

    def __len__(self) -> int:
        return len(self._elements())

    def __getitem__(self, index: int) -> XO:
        return self._child_class(self._elements()[index])

    def add(self, child: XO | None = None) -> XO:
        """Add child (or a new empty one) after the existing ones, and return it."""
        element = child.element if child is not None else self._path.steps[-1].create()
        order = self._owner.child_order
        insert_child(self._path.parent.make(self._owner.element, order), element, order)
        return self._child_class(element)

    def remove(self, child: XO) -> None:
        if child.element not in self._elements():
            raise ValueError(f"{child!r} is not in this list")
        child.element.getparent().remove(child.element)
