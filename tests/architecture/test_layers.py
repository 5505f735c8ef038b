"""Who may import whom, read from the source (no daemons): the rules issue 17 set for storing what
libvirt says (each object app's sync module, the whole-host reconcile above them in inventory/)
and for the operations app, which sits below the apps whose objects it acts on."""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)

OBJECT_APPS = {"hosts", "domains", "storage", "networking", "consoles", "metrics", "tombstones", "backups"}


@functools.cache
def module_graph() -> dict[str, set[str]]:  # parsing every file takes half a second: once per test process
    return import_graph.module_graph()


def imports_of(package: str) -> dict[str, set[str]]:
    """Each module of `package` and the top-level packages (other than its own) it imports."""
    return {module: {name.split(".")[0] for name in imported} - {package}
            for module, imported in module_graph().items() if module.split(".")[0] == package}


def test_no_module_circle_anywhere():
    assert import_graph.circles(module_graph()) == []


def test_operations_imports_no_app_whose_objects_it_acts_on():
    offenders = {module: sorted(imported & OBJECT_APPS) for module, imported in imports_of("operations").items()
                 if imported & OBJECT_APPS}
    assert offenders == {}


def test_only_the_processes_above_import_the_whole_host_reconcile():
    offenders = {module: sorted(imported & {"inventory"})
                 for app in OBJECT_APPS | {"operations", "accounts", "api", "vmsite"}
                 for module, imported in imports_of(app).items() if "inventory" in imported}
    assert offenders == {}


def test_hosts_stores_no_other_apps_rows():
    """The reconcile of a host's VMs, pools and networks is inventory's; hosts reads VM counts only."""
    offenders = {module: sorted(imported & {"storage", "networking", "domains"})
                 for module, imported in imports_of("hosts").items()
                 if imported & {"storage", "networking", "domains"} and module != "hosts.selectors"}
    assert offenders == {}
