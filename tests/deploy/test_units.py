"""deploy/systemd: a unit for every process of the Procfile, with the Procfile's own command line,
as the vmsite user and sandboxed. (tests/deploy/test_production.py runs them.)"""
import re
from pathlib import Path

import pytest

from tests.deploy.units import UnitError, exec_start, read_unit, service_environment

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def as_in_procfile(command: str) -> str:
    """The unit's ExecStart written as the Procfile writes it: the venv where make run has it,
    systemd's %% as one %."""
    return command.replace("@VENV@/", ".venv/").replace("%%", "%")


def without_defaults(command: str) -> str:
    """${NAME:-default} as ${NAME}: the defaults are the environment file's job in a unit."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-[^}]*\}", r"${\1}", command)


@pytest.mark.parametrize("process", sorted(procfile()))
def test_each_process_of_the_procfile_has_a_unit_with_its_command_line(process):
    unit = read_unit(UNITS / f"vmsite-{process}.service")
    assert as_in_procfile(unit.value("Service", "ExecStart")) == without_defaults(procfile()[process])


def test_no_unit_is_left_out_of_the_target_or_the_procfile():
    services = {path.name for path in UNITS.glob("vmsite-*.service")}
    assert services == {f"vmsite-{process}.service" for process in procfile()}
    wanted = read_unit(UNITS / "vmsite.target").value("Unit", "Wants").split()
    assert sorted(wanted) == sorted(services)


@pytest.mark.parametrize("process", sorted(procfile()))
def test_each_unit_runs_as_the_vmsite_user_in_a_read_only_system(process):
    unit = read_unit(UNITS / f"vmsite-{process}.service")
    service = unit.sections["Service"]
    assert service["User"] == ["vmsite"] and service["Group"] == ["vmsite"]
    expected = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                "PrivateDevices": "yes", "CapabilityBoundingSet": "", "UMask": "0077",
                "WorkingDirectory": "@APP_DIR@"}
    assert {key: unit.value("Service", key) for key in expected} == expected
    assert unit.values("Service", "EnvironmentFile") == ["@ENV_FILE@", "-@LOCAL_ENV_FILE@"]  # the admin's last
    assert unit.values("Service", "ReadWritePaths") == ["@DATA_DIR@"]  # the data folder, nothing else


def test_exec_start_is_expanded_as_systemd_does(tmp_path):
    (tmp_path / "env").write_text("# settings\nPORT=8001\nFLAGS=-a -b\nQUOTED=\"two words\"\n")
    (tmp_path / "demo-one.service").write_text(
        f"[Service]\nUser=nobody\nEnvironmentFile={tmp_path / 'env'}\nEnvironment=EXTRA=x\n"
        "ExecStart=/bin/prog -p ${PORT} --name w@%%h $FLAGS \"${QUOTED}\" at-${EXTRA}\n")
    unit = read_unit(tmp_path / "demo-one.service")
    environment = service_environment(unit)
    assert exec_start(unit, environment) == ["/bin/prog", "-p", "8001", "--name", "w@%h", "-a", "-b", "two words",
                                             "at-x"]
    assert environment["USER"] == "nobody" and "PYTHONPATH" not in environment


def test_a_prefix_drop_in_applies_and_the_units_own_wins(tmp_path):
    (tmp_path / "demo-one.service").write_text("[Service]\nExecStart=/bin/true\n")
    (tmp_path / "demo-.service.d").mkdir()
    (tmp_path / "demo-.service.d" / "common.conf").write_text("[Service]\nUser=shared\nReadWritePaths=/a\n")
    (tmp_path / "demo-one.service.d").mkdir()
    (tmp_path / "demo-one.service.d" / "common.conf").write_text("[Service]\nUser=own\n")
    (tmp_path / "demo-one.service.d" / "z.conf").write_text("[Service]\nReadWritePaths=\nReadWritePaths=/b\n")
    unit = read_unit(tmp_path / "demo-one.service")
    assert unit.value("Service", "User") == "own" and unit.values("Service", "ReadWritePaths") == ["/b"]


def test_an_unset_variable_or_an_unknown_specifier_is_refused(tmp_path):
    (tmp_path / "demo.service").write_text("[Service]\nExecStart=/bin/prog ${MISSING}\n")
    unit = read_unit(tmp_path / "demo.service")
    with pytest.raises(UnitError, match="MISSING"):
        exec_start(unit, {})
    (tmp_path / "demo.service").write_text("[Service]\nExecStart=/bin/prog %h\n")
    with pytest.raises(UnitError, match="%h"):
        exec_start(read_unit(tmp_path / "demo.service"), {})
