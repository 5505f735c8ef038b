"""What live.js needs on every page: how a VM state number looks (label and colour), so that a
state badge changes the moment its message arrives, before the page part is fetched again."""
from __future__ import annotations

from django.http import HttpRequest

from domains.choices import DOMAIN_STATE_COLOURS, DomainState


def live_styles(request: HttpRequest) -> dict:
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    return {"domain_state_styles": {int(state): [state.label, DOMAIN_STATE_COLOURS.get(state, "secondary")]
                                    for state in DomainState}}
