from __future__ import annotations

from pathlib import Path

from lxml import etree

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def canonical(xml: str) -> str:
    """C14N 2.0 without insignificant whitespace: equal for documents that mean the same."""
    return etree.canonicalize(xml, strip_text=True)
