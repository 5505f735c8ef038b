"""The production settings, plus one line per graph round from the listener (bench/listener.py reads them)."""
from vmsite.settings import *  # noqa: F401,F403
from vmsite.settings import LOGGING

LOGGING = {**LOGGING, "loggers": {"listener.rounds": {"level": "DEBUG"}}}
