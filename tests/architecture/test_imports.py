"""The shape of the imports, read from the source (no daemons): virt/ has no circle among its
files, and XML is parsed and built only inside virt/xml/ (the hardened parser is the only one)."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)

# Libraries that parse or build XML: only virt/xml/ may use them.
XML_LIBRARIES = ("lxml", "xml", "defusedxml")


def in_virt(module: str) -> bool:
    return module == "virt" or module.startswith("virt.")


def test_virt_has_no_circle_among_its_modules():
    circles = [circle for circle in import_graph.circles(import_graph.module_graph()) if any(map(in_virt, circle))]
    assert circles == []


def test_no_module_outside_virt_xml_imports_an_xml_library():
    offenders = []
    for module, path in import_graph.module_files().items():
        if module == "virt.xml" or module.startswith("virt.xml."):
            continue
        imported = import_graph.imported_modules(ast.parse(path.read_text()))
        offenders += [f"{module} imports {name}" for name in imported if name.split(".")[0] in XML_LIBRARIES]
    assert offenders == []


def test_the_module_graph_sees_a_circle_made_by_an_import_inside_a_function(tmp_path):
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "one.py").write_text("from app.two import b\n")
    (package / "two.py").write_text("def b():\n    from app import one\n")
    (package / "three.py").write_text("import app.one\n")
    graph = import_graph.module_graph(tmp_path)
    assert graph["app.two"] == {"app", "app.one"} and graph["app.three"] == {"app.one"}
    assert import_graph.circles(graph) == [["app.one", "app.two"]]
