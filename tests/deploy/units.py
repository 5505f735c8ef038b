"""systemd unit files read the way systemd reads them, and their services started the way systemd
would start them, for machines where systemd is not PID 1 (this one, the suite's containers).

What is read: the unit and its drop-ins (`<name>.service.d/` and the prefix folders such as
`vmsite-.service.d/`), `EnvironmentFile=` and `Environment=`, `ExecStart=` with systemd's quoting,
`%%` and `${NAME}`/`$NAME` expansion. What is applied to the process: `User=`/`Group=` (with the
user's other groups, as systemd's initgroups), `NoNewPrivileges=`, an empty
`CapabilityBoundingSet=`, `UMask=`, `WorkingDirectory=` and exactly the environment systemd gives.
The file-system sandbox (`ProtectSystem=`, `ReadWritePaths=`, `PrivateTmp=`...) needs systemd
itself; tests/deploy/test_units.py checks that each unit asks for it.
"""
from __future__ import annotations

import pwd
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LIST_KEYS = {"ExecStart", "Environment", "EnvironmentFile", "ReadWritePaths", "After", "Wants"}
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_WORD_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class UnitError(ValueError):
    pass


@dataclass
class Unit:
    path: Path
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    def value(self, section: str, key: str, default: str | None = None) -> str | None:
        values = self.values(section, key)
        return values[-1] if values else default

    def flag(self, key: str) -> bool:
        return (self.value("Service", key) or "no").lower() in {"yes", "true", "1", "on"}


def read_unit(path: Path) -> Unit:
    """The unit with its drop-ins applied, in systemd's order (all drop-ins sorted by file name)."""
    unit = Unit(path=path)
    _apply(unit, path)
    dropins = {}
    for folder in _dropin_folders(path):
        for conf in sorted(folder.glob("*.conf")):
            dropins.setdefault(conf.name, conf)  # the more specific folder wins a name
    for name in sorted(dropins):
        _apply(unit, dropins[name])
    return unit


def _dropin_folders(path: Path) -> list[Path]:
    """vmsite-web.service: vmsite-web.service.d/, then vmsite-.service.d/ (systemd's prefix drop-ins)."""
    stem, kind = path.name.rsplit(".", 1)
    names = [stem]
    parts = stem.split("-")
    names += ["-".join(parts[:count]) + "-" for count in range(len(parts) - 1, 0, -1)]
    return [path.parent / f"{name}.{kind}.d" for name in names if (path.parent / f"{name}.{kind}.d").is_dir()]


def _apply(unit: Unit, path: Path) -> None:
    section = None
    for number, raw in enumerate(_logical_lines(path.read_text()), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section is None or "=" not in line:
            raise UnitError(f"{path}:{number}: not a `Key=value` line inside a section: {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        values = unit.sections.setdefault(section, {}).setdefault(key, [])
        if key in LIST_KEYS and value == "":
            values.clear()  # an empty assignment resets a list
        elif key in LIST_KEYS:
            values.append(value)
        else:
            values[:] = [value]


def _logical_lines(text: str) -> list[str]:
    lines, pending = [], ""
    for line in text.splitlines():
        if line.endswith("\\") and not line.lstrip().startswith(("#", ";")):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


def read_environment_file(path: Path) -> dict[str, str]:
    """KEY=value lines; comments and blank lines skipped, one level of quotes taken off."""
    environment = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        environment[key.strip()] = value
    return environment


def service_environment(unit: Unit) -> dict[str, str]:
    """What systemd hands the service: PATH, the user's identity, then the unit's environment."""
    account = pwd.getpwnam(unit.value("Service", "User", "root"))
    environment = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": account.pw_dir, "USER": account.pw_name,
                   "LOGNAME": account.pw_name, "SHELL": account.pw_shell}
    for name in unit.values("Service", "EnvironmentFile"):
        optional = name.startswith("-")
        path = Path(name.lstrip("-"))
        if path.exists() or not optional:
            environment.update(read_environment_file(path))
    for assignments in unit.values("Service", "Environment"):
        for assignment in shlex.split(assignments):
            key, _, value = assignment.partition("=")
            environment[key] = value
    return environment


def exec_start(unit: Unit, environment: dict[str, str]) -> list[str]:
    """The one ExecStart command line as argv: quoting, `%%`, `${NAME}` inside a word, `$NAME` as
    words of their own, as systemd does. Other specifiers (%h, %i...) are refused: vmsite's units
    use none."""
    lines = unit.values("Service", "ExecStart")
    if len(lines) != 1:
        raise UnitError(f"{unit.path}: want exactly one ExecStart, found {len(lines)}")
    line = lines[0].lstrip("-@:+!")
    argv = []
    for word in shlex.split(line):
        word = _specifiers(unit, word)
        whole = _WHOLE_WORD_VARIABLE.fullmatch(word)
        if whole:
            argv.extend(_lookup(unit, environment, whole.group(1)).split())
            continue
        argv.append(_VARIABLE.sub(lambda match: _lookup(unit, environment, match.group(1)), word))
    return argv


def _specifiers(unit: Unit, word: str) -> str:
    def replace(match: re.Match) -> str:
        if match.group(1) != "%":
            raise UnitError(f"{unit.path}: specifier %{match.group(1)} in {word!r} is not handled here")
        return "%"
    return re.sub(r"%(.)", replace, word)


def _lookup(unit: Unit, environment: dict[str, str], name: str) -> str:
    if name not in environment:
        raise UnitError(f"{unit.path}: ExecStart uses ${{{name}}}, which its environment does not set")
    return environment[name]


def privilege_drop(unit: Unit) -> list[str]:
    """setpriv(1) arguments that give the command the unit's user, groups and no new privileges."""
    user = unit.value("Service", "User")
    if not user or user == "root":
        raise UnitError(f"{unit.path}: runs as root")
    group = unit.value("Service", "Group", user)
    argv = ["setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups"]
    if unit.flag("NoNewPrivileges"):
        argv.append("--no-new-privs")
    if unit.value("Service", "CapabilityBoundingSet") == "":
        argv += ["--bounding-set=-all", "--inh-caps=-all"]
    return argv


@dataclass
class ServiceCommand:
    """What to run for a unit's service: argv (setpriv + ExecStart), its environment, folder, umask."""
    argv: list[str]
    environment: dict[str, str]
    working_directory: str
    umask: int

    def start(self, *, log_path: Path, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        """Started in a session of its own (stop it with os.killpg). `prefix` runs it through
        another command first, as nsenter into a mount namespace (then the folder is given to it)."""
        with open(log_path, "w") as log:
            return subprocess.Popen([*prefix, *self.argv], env=self.environment, umask=self.umask,
                                    cwd=None if prefix else self.working_directory, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def service_command(unit: Unit) -> ServiceCommand:
    environment = service_environment(unit)
    return ServiceCommand(argv=[*privilege_drop(unit), *exec_start(unit, environment)], environment=environment,
                          working_directory=unit.value("Service", "WorkingDirectory", "/"),
                          umask=int(unit.value("Service", "UMask", "0022"), 8))
