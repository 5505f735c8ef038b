"""The data folder holds the database, session keys, second-factor secrets, API token digests and
SSH keys: only vmsite's own user may read it. Every process vmsite starts (manage.py, the ASGI
server, Celery) creates files with umask 077 and refuses to start when the folder or anything in
it can be read or written by others; `manage.py private_data_dir` makes an existing one private
(`make run` does it)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

PRIVATE_UMASK = 0o077
SHOWN = 5  # paths named in the error; the count says how many more


def use_private_umask() -> None:
    """New files 0600, new folders 0700, whoever creates them in this process."""
    os.umask(PRIVATE_UMASK)


def data_dir_problems(folder: Path) -> list[str]:
    """What is wrong with the folder: not there yet is fine (it is made private when first used)."""
    try:
        info = folder.lstat()
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(info.st_mode):
        return [f"{folder} is not a folder"]
    problems = []
    if info.st_uid != os.geteuid():
        problems.append(f"{folder} belongs to user id {info.st_uid}, not to vmsite's user ({os.geteuid()})")
    exposed = [path for path in _walk(folder) if path.lstat().st_mode & 0o077 and not path.is_symlink()]
    for path in exposed[:SHOWN]:
        problems.append(f"{path} is mode {stat.S_IMODE(path.lstat().st_mode):04o}, open to other users "
                        f"(want {'0700' if path.is_dir() else '0600'})")
    if len(exposed) > SHOWN:
        problems.append(f"and {len(exposed) - SHOWN} more")
    return problems


def check_data_dir(folder: Path) -> None:
    """Raises ImproperlyConfigured, saying what is wrong and how to mend it, unless the folder is private."""
    problems = data_dir_problems(folder)
    if problems:
        raise ImproperlyConfigured(
            "The data folder must be private to vmsite's user (folders 0700, files 0600):\n  "
            + "\n  ".join(problems)
            + f"\nMend it with `.venv/bin/python manage.py private_data_dir` (or `chmod -R go-rwx {folder}`).")


def make_private(folder: Path) -> int:
    """Creates the folder 0700, or takes every other user's rights off it and all it holds.
    Returns how many paths it changed."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    changed = 0
    for path in _walk(folder):
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            path.chmod(mode & ~0o077)
            changed += 1
    return changed


def _walk(folder: Path):
    yield folder
    for root, folders, files in os.walk(folder):
        for name in (*folders, *files):
            yield Path(root) / name


def start_private_process() -> None:
    """First thing every long-running vmsite process does once settings are loaded (the ASGI
    server, Celery workers and beat): umask 077, then the data folder checked. manage.py sets the
    umask itself before anything else, and checks the folder with a system check."""
    from django.conf import settings

    if settings.DATA_DIR_MUST_BE_PRIVATE:
        use_private_umask()
        check_data_dir(settings.DATA_DIR)
