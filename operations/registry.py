"""Operation kinds and the functions that carry them out.

A handler takes the claimed Operation and a `report(progress, message)` callback, does its work
through `virt/` inside the frame of operations/frame.py, and returns a short result message or
raises. Handlers live in the app that owns the target (hosts/handlers.py, storage/handlers.py,
domains/handlers_*.py, ...) and are registered with `@operation_handler(kind)`.
"""
from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from pathlib import Path

from django.apps import apps

Report = Callable[[int, str], None]
Handler = Callable[..., str]

_HANDLERS: dict[str, Handler] = {}


def operation_handler(kind: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        if kind in _HANDLERS and _HANDLERS[kind] is not func:
            raise RuntimeError(f"two handlers for operation kind {kind!r}")
        _HANDLERS[kind] = func
        return func

    return register


def handler_for(kind: str) -> Handler:
    try:
        return _HANDLERS[kind]
    except KeyError:
        raise LookupError(f"no handler for operation kind {kind!r}") from None


# Kind -> what to do once the sweep has failed an operation of that kind whose worker died midway
# (undo what the handler could not: a backup's partial files). Called with the swept row.
_AFTER_SWEEP: dict[str, Callable[..., None]] = {}


def after_sweep(kind: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def register(func: Callable[..., None]) -> Callable[..., None]:
        _AFTER_SWEEP[kind] = func
        return func

    return register


def after_sweep_for(kind: str) -> Callable[..., None] | None:
    return _AFTER_SWEEP.get(kind)


def known_kinds() -> list[str]:
    return sorted(_HANDLERS)


def import_handlers() -> None:
    """Import every app's handlers.py and handlers_<topic>.py modules."""
    for config in apps.get_app_configs():
        for path in sorted(Path(config.path).glob("handlers*.py")):
            import_module(f"{config.name}.{path.stem}")
