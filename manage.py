#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.umask(0o077)  # every file and folder this process makes is its user's only (vmsite/private.py)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vmsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
