"""Code above virt/ hands libvirt's handles back to virt/ functions and never calls their methods,
read from the source (no daemons): a method call whose name only libvirt's handles have is one."""
from __future__ import annotations

import ast
import re

import libvirt

from tests.architecture.test_imports import import_graph, in_virt

HANDLE_CLASSES = (libvirt.virConnect, libvirt.virDomain, libvirt.virDomainSnapshot, libvirt.virStoragePool,
                  libvirt.virStorageVol, libvirt.virNetwork, libvirt.virInterface, libvirt.virNWFilter,
                  libvirt.virStream, libvirt.virNodeDevice, libvirt.virSecret)
# Method names of the handles that other objects have too (uuid.UUID, a model's delete(), a
# socket's shutdown()...) are not counted: camelCase names and a few of libvirt's own words are.
SHARED_NAMES = {"UUID"}
LIBVIRT_WORDS = {"undefine", "destroy", "wipe", "suspend", "autostart", "dettach", "migrate2", "migrate3",
                 "screenshot", "vcpus", "c_pointer"}


def handle_method_names() -> set[str]:
    names = {name for cls in HANDLE_CLASSES for name in vars(cls) if not name.startswith("_")}
    return {name for name in names if re.search("[A-Z]", name) or name in LIBVIRT_WORDS} - SHARED_NAMES


def handle_method_calls(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of each such call, a module's functions left out (virt_networks.undefine(...))."""
    tree = ast.parse(source)
    modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in node.names}
    return sorted((node.lineno, node.func.attr) for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names
                  and not (isinstance(node.func.value, ast.Name) and node.func.value.id in modules))


def test_no_module_above_virt_calls_a_libvirt_handle_method():
    names = handle_method_names()
    offenders = [f"{module}:{line} calls .{name}()" for module, path in import_graph.module_files().items()
                 if not in_virt(module) for line, name in handle_method_calls(path.read_text(), names)]
    assert offenders == []


def test_the_check_sees_the_calls_the_storage_handlers_made():
    names = handle_method_names()
    source = "active = {uuid} if handle.isActive() else set()\ndomain.isPersistent()\npool.undefine()\n"
    assert handle_method_calls(source, names) == [(1, "isActive"), (2, "isPersistent"), (3, "undefine")]
    assert handle_method_calls("from virt import networks as virt_networks\nvirt_networks.undefine(net)\n"
                               "Volume.objects.filter(pk=1).delete()\nuuid.UUID(text)\n", names) == []
