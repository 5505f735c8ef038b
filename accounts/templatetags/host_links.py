from django import template
from django.urls import reverse
from django.utils.html import format_html

from accounts.access import visible_host_ids

register = template.Library()


@register.simple_tag(takes_context=True)
def host_link(context, host) -> str:
    """The host's name, linked to its page only for a user who may open that page. The hosts the
    user may see are read once per request, however many rows name a host."""
    if host is None:
        return "—"
    request = context.get("request")  # None: rendered for no one in particular, so no link
    if request is not None and not hasattr(request, "_visible_host_ids"):
        request._visible_host_ids = visible_host_ids(request.user)
    if request is None or host.pk not in request._visible_host_ids:
        return format_html('<span class="host-name">{}</span>', host.name)
    return format_html('<a href="{}">{}</a>', reverse("hosts:detail", args=[host.pk]), host.name)
