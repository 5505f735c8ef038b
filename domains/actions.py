"""The lifecycle actions a user can ask for, and the states in which each makes sense."""
from __future__ import annotations

from dataclasses import dataclass

from domains.choices import DomainState

S = DomainState
RUNNING_LIKE = frozenset({S.RUNNING, S.BLOCKED})
ANY_ACTIVE = frozenset({S.RUNNING, S.BLOCKED, S.PAUSED, S.SHUTDOWN, S.PMSUSPENDED, S.CRASHED})
OFF = frozenset({S.SHUTOFF, S.NOSTATE, S.CRASHED})


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    icon: str
    style: str
    states: frozenset  # states in which the button is offered
    bulk: bool = False
    needs_persistent: bool = False

    @property
    def kind(self) -> str:
        return f"domain.{self.name}"


ACTIONS: dict[str, Action] = {action.name: action for action in [
    Action("start", "Start", "play-fill", "success", OFF, bulk=True),
    Action("start_paused", "Start paused", "pause-circle", "outline-success", OFF),
    Action("shutdown", "Shut down", "power", "outline-secondary", RUNNING_LIKE, bulk=True),
    Action("force_off", "Force off", "x-octagon", "outline-danger", ANY_ACTIVE, bulk=True),
    Action("reboot", "Reboot", "arrow-clockwise", "outline-secondary", RUNNING_LIKE),
    Action("reset", "Reset", "lightning", "outline-warning", RUNNING_LIKE),
    Action("pause", "Pause", "pause-fill", "outline-secondary", RUNNING_LIKE),
    Action("resume", "Resume", "play", "outline-success", frozenset({S.PAUSED, S.PMSUSPENDED})),
    Action("save", "Save state", "save", "outline-secondary", RUNNING_LIKE | {S.PAUSED}, needs_persistent=True),
    Action("discard_save", "Discard saved state", "trash3", "outline-warning", OFF, needs_persistent=True),
    Action("autostart_on", "Autostart on", "toggle-off", "outline-secondary", frozenset(S), needs_persistent=True),
    Action("autostart_off", "Autostart off", "toggle-on", "outline-secondary", frozenset(S), needs_persistent=True),
]}
# Rename and delete take input and a confirmation page of their own.
FORM_ACTIONS = {"rename": "Rename", "delete": "Delete", "migrate": "Migrate",
                "snapshot_create": "Take snapshot", "snapshot_revert": "Revert to snapshot",
                "snapshot_delete": "Delete snapshot", "snapshot_refresh": "Refresh snapshots",
                "clone": "Clone", "mark_template": "Mark as template"}
# Changes to a VM's devices and settings, each with a form of its own (domains/views_config.py).
FORM_ACTIONS.update({"attach_disk": "Add disk", "detach_disk": "Remove disk", "attach_nic": "Add NIC",
                     "detach_nic": "Remove NIC", "set_vcpus": "Set vCPUs", "set_memory": "Set memory",
                     "change_media": "Change CD-ROM", "set_boot_order": "Set boot order",
                     "set_metadata": "Set title and description", "set_tags": "Set tags", "define_xml": "Define XML",
                     "refresh": "Refresh", "set_nic_link": "Set NIC link", "update_nic": "Change NIC",
                     "set_nic_filter": "Set NIC filter"})
BULK_ACTIONS = [action for action in ACTIONS.values() if action.bulk]


def available_actions(domain) -> list[Action]:
    """The buttons that make sense for this VM as last seen."""
    offered = []
    for action in ACTIONS.values():
        if domain.state not in action.states or (action.needs_persistent and not domain.persistent):
            continue
        if action.name in ("start", "start_paused") and domain.is_template:
            continue  # a template is cloned, not started, until it is unmarked
        if action.name == "discard_save" and not domain.has_managed_save:
            continue
        if action.name in ("autostart_on", "autostart_off") and domain.autostart == (action.name == "autostart_on"):
            continue
        offered.append(action)
    return offered
