"""System checks run by every manage.py command (the listener, the console proxy, migrate...)."""
from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, register

from vmsite.private import data_dir_problems


@register(Tags.security)
def data_dir_is_private(app_configs, **kwargs) -> list[Error]:
    if not settings.DATA_DIR_MUST_BE_PRIVATE:
        return []
    problems = data_dir_problems(settings.DATA_DIR)
    if not problems:
        return []
    return [Error("The data folder must be private to vmsite's user (folders 0700, files 0600): "
                  + "; ".join(problems),
                  hint="Run `.venv/bin/python manage.py private_data_dir` (make run does), or "
                       f"`chmod -R go-rwx {settings.DATA_DIR}`.", id="vmsite.E001")]
