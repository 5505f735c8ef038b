"""Hypothesis strategies for what an attacker or a careless user types into a form.

A post is built from a valid one: a few of its fields are left out or replaced by hostile text
(alone, or spliced into the valid value), and unknown fields may be added. Mostly-valid posts
reach the form's clean() and the view's service call, where a 500 hides; wholly random posts
would stop at the first field check.
"""
from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

MISSING = object()  # the field is not sent at all

NASTY_TEXT = [
    "", " ", "\x00", "a\x00b", "\x01", "a\x08b", "\x1b[31m", "\x7f", "\u0085", "\r\n", "a\nb", "\t", "\u202e",
    "\ufeff", "\ufffe", "\U0001f600", "é", "日本", "..", "../..", "../../etc/passwd", "/", "//", "/etc/passwd",
    "/var/lib/libvirt/images/../../../etc", "./x", "a/b", "\\", "C:\\x", "~", "$(id)", "`id`", "; rm -rf /",
    "| cat /etc/shadow", "&& reboot", "'", '"', "<script>alert(1)</script>", "]]>", "&amp;", "&#0;", "%00",
    "%2e%2e%2f", "{{ 7*7 }}", "{% debug %}", "qemu+ssh://root@h/system?command=/bin/sh", "test:///default",
    "file:///etc/passwd", "http://127.0.0.1:1/", "h?keyfile=/etc/shadow", "-oProxyCommand=sh", "fe80::1%x#y",
    "::1%0", "0", "-1", "1e309", "NaN", "inf", "-0", "0x10", "１２", "²", "--5", "- 5", "1.5", " 5 ", "null",
    "[]", "{}", "None", "True", "9" * 40, "-" + "9" * 40, "9" * 5000, "x" * 300, "ß" * 2000, "a" * 70_000,
]
NASTY_NUMBERS = ["0", "-1", "1", "65535", "65536", "2147483648", "9223372036854775808", "-9223372036854775809",
                 "9" * 40, "9" * 5000, "1.5", "1e3", "1e309", "NaN", "Infinity", "-0", "0x10", "", " ", "abc",
                 "١٢", "²", "--5", "+5", "5 ", "1_000"]
EXTRA_FIELDS = ["csrfmiddlewaretoken", "id", "pk", "host_id", "user", "is_superuser", "uri", "xml", "command",
                "keyfile", "__proto__", "name[]", ""]

_printable = st.characters(exclude_categories=("Cs",))  # surrogates cannot be sent as UTF-8
_control = st.characters(min_codepoint=0, max_codepoint=0x1F)


def hostile_text() -> SearchStrategy[str]:
    """Text a form must refuse or store safely: NUL and control characters, unicode, huge strings,
    paths with '..', shell and URI metacharacters."""
    return st.one_of(
        st.sampled_from(NASTY_TEXT),
        st.text(_printable, max_size=40),
        st.text(_control, min_size=1, max_size=5),
        st.tuples(st.text(_printable, max_size=10), st.sampled_from(NASTY_TEXT), st.text(_printable, max_size=10))
        .map("".join),
        st.tuples(st.sampled_from(["a", "é", "/", "9", ". "]), st.integers(250, 5000))
        .map(lambda pair: pair[0] * pair[1]),
    )


def hostile_number() -> SearchStrategy[str]:
    """What may arrive in a number field: huge, negative, fractional or not a number at all."""
    return st.one_of(st.sampled_from(NASTY_NUMBERS), st.integers().map(str), hostile_text())


def spliced(valid: str) -> SearchStrategy[str]:
    """The valid value with hostile text put in somewhere: what gets past a check that looks only
    at the start of a value, or at a few characters."""
    pieces = st.sampled_from(NASTY_TEXT) | st.text(_control, min_size=1, max_size=2)
    return st.tuples(st.integers(0, len(valid)), pieces).map(lambda cut: valid[:cut[0]] + cut[1] + valid[cut[0]:])


def corrupted(valid: object, specific: SearchStrategy | None = None) -> SearchStrategy:
    """A field's value other than its valid one: field-specific values first (what Hypothesis
    shrinks to), then the valid value spliced with hostile text, hostile text, or no field at all."""
    choices = [specific] if specific is not None else []
    if isinstance(valid, str):
        choices.append(spliced(valid))
        if valid.lstrip("-").isdigit():
            choices.append(hostile_number())
    choices += [hostile_text(), st.just(MISSING)]
    return st.one_of(*choices)


@st.composite
def posts(draw, valid: dict[str, object], **specific: SearchStrategy) -> dict:
    """A valid post with up to three fields corrupted (`specific` gives field-specific values,
    also for fields the valid post leaves out), and maybe unknown fields added."""
    names = list(valid) + [name for name in specific if name not in valid]
    bad = draw(st.sets(st.sampled_from(names), max_size=3)) if names else set()
    post = dict(draw(st.dictionaries(st.sampled_from(EXTRA_FIELDS), hostile_text(), max_size=2)))
    for name in names:
        value = valid.get(name, MISSING)
        if name in bad:
            value = draw(corrupted(value, specific.get(name)))
        if value is not MISSING:
            post[name] = value
    return post


def ids(*known: int) -> SearchStrategy[str]:
    """A model choice: a real id, an id of nothing, or not an id."""
    return st.one_of(st.sampled_from([str(pk) for pk in known] or ["1"]), hostile_number())
