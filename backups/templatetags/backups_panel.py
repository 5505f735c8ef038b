"""{% backups_panel %}: the VM page's Backups panel, from the page's `domain`, `can_operate` and
`busy` (domain_detail.html includes it with one line, so the VM page's view stays as it is)."""
from __future__ import annotations

from django import template

from accounts.access import restore_hosts_for, restore_refusal
from backups.models import AttachedBackupDisk
from backups.restores import attach_refusal, in_place_refusal
from backups.forms import BackupNowForm, no_backup_pool_refusal
from backups.forms_restores import no_attach_pool_refusal
from backups.selectors import restore_points_list
from backups.services import backup_state_refusal

register = template.Library()


@register.inclusion_tag("backups/_panel_backups.html", takes_context=True)
def backups_panel(context) -> dict:
    domain, user = context["domain"], context["request"].user
    can_operate = bool(context.get("can_operate"))
    points = list(restore_points_list(user=user, domain=domain)[:50])
    panel = {"domain": domain, "points": points, "can_operate": can_operate, "busy": context.get("busy"),
             "last_pool": points[0].pool_name if points else ""}
    if can_operate:
        panel["backup_form"] = BackupNowForm(domain=domain, user=user)
        panel["no_pool_refusal"] = no_backup_pool_refusal(domain)
        panel["backup_refusal"] = backup_state_refusal(domain)
        panel["operated_hosts"] = set(restore_hosts_for(user).values_list("pk", flat=True))
        panel["can_restore_new"] = bool(panel["operated_hosts"])  # a new VM goes on any host they operate
        panel["restore_refusal"] = ("" if panel["can_restore_new"] or not points
                                    else restore_refusal(user, domain, points[0]))
        panel["in_place_refusal"] = in_place_refusal(domain)
        # an attached disk is a copy made in one of the pools "Back up now" offers (backup_pools_for)
        panel["attach_refusal"] = attach_refusal(domain) or (
            "" if panel["backup_form"].pools else no_attach_pool_refusal(domain))
    panel["attached_disks"] = list(AttachedBackupDisk.objects.filter(domain=domain))
    return panel
