"""The suite's test databases. Under pytest-xdist the first worker migrates a template database and
every worker clones it (PostgreSQL's CREATE DATABASE ... TEMPLATE, a file copy for SQLite), instead of
each worker running every migration at once on the same two cores."""
from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

RUN_FILES = "test-databases-"  # + the run's id (.lock, .built): one worker builds the template


def set_up(connection: BaseDatabaseWrapper) -> str:
    """Make this process's test database and point the connection at it; returns the name to give
    back to tear_down."""
    old_name = connection.settings_dict["NAME"]
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        return old_name
    target = connection.creation._get_test_db_name()
    lock, built = (_suite_folder() / f"{RUN_FILES}{run}{suffix}" for suffix in (".lock", ".built"))
    with _locked(lock):
        if not built.exists():
            _build_template(connection)
            built.touch(mode=0o600)
        _clone_template(connection, target)
    _point_at(connection, target)
    return old_name


def tear_down(connection: BaseDatabaseWrapper, old_name: str) -> None:
    if connection.vendor != "postgresql":
        connection.creation.destroy_test_db(old_name, verbosity=0)
        return
    name = connection.settings_dict["NAME"]
    _point_at(connection, old_name)
    with connection._nodb_cursor() as cursor:  # FORCE: a stack process still connected does not keep it
        cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(name)} WITH (FORCE)")


def drop_template(connection: BaseDatabaseWrapper) -> None:
    """After the run (pytest-xdist's controller, whose connection still names the real database)."""
    if connection.vendor == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{template_name(connection)}{suffix}").unlink(missing_ok=True)
        return
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {connection.ops.quote_name(template_name(connection))}")


def forget_runs() -> None:
    """After the run (the controller): remove the files by which its workers built the template once."""
    for path in _suite_folder().glob(f"{RUN_FILES}*"):
        path.unlink(missing_ok=True)


def template_name(connection: BaseDatabaseWrapper) -> str:
    if connection.vendor == "sqlite":
        return str(_suite_folder() / "test_template.sqlite3")
    return f"test_{connection.settings_dict['NAME']}_template"


def _build_template(connection: BaseDatabaseWrapper) -> None:
    old_name, target = connection.settings_dict["NAME"], connection.settings_dict["TEST"]["NAME"]
    template = template_name(connection)
    if connection.vendor == "sqlite":
        Path(template).parent.mkdir(parents=True, exist_ok=True)
    connection.settings_dict["TEST"]["NAME"] = template
    try:
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    finally:
        connection.close()  # PostgreSQL copies no database that has a session open
        connection.settings_dict["TEST"]["NAME"] = target
        _point_at(connection, old_name)


def _clone_template(connection: BaseDatabaseWrapper, target: str) -> None:
    template = template_name(connection)
    if connection.vendor == "sqlite":
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, target)
        return
    quote = connection.ops.quote_name
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {quote(target)} WITH (FORCE)")  # a killed run's
        cursor.execute(f"CREATE DATABASE {quote(target)} TEMPLATE {quote(template)}")


def _point_at(connection: BaseDatabaseWrapper, name: str) -> None:
    connection.close()
    settings.DATABASES[connection.alias]["NAME"] = name
    connection.settings_dict["NAME"] = name


def _suite_folder() -> Path:
    """The suite's data folder, above the workers' own (vmsite/settings_test.py)."""
    folder = Path(os.environ["VMSITE_SUITE_VMSITE_DATA_DIR"])
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
