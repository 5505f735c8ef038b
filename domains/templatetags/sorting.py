from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag(takes_context=True)
def sort_header(context, key: str, label: str) -> str:
    """A column header that sorts by `key`, and flips direction when it is already the sort."""
    current = context.get("sort", "name")
    ascending_now = current == key
    target = f"-{key}" if ascending_now else key
    arrow = " ▲" if current == key else " ▼" if current == f"-{key}" else ""
    filters = context.get("filter_string", "")
    href = f"?{filters + '&' if filters else ''}sort={target}"
    return format_html('<a class="link-body-emphasis text-decoration-none" href="{}">{}{}</a>', href, label, arrow)
