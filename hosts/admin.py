from django.contrib import admin

from hosts.models import Host

# Hosts are added and edited on vmsite's own pages, whose form validates every part of the URI and
# stores the credentials as files; a free-text admin form would take any address ('h?command=...')
# and every page that shows the host's URI would then fail.
EDITABLE_IN_ADMIN = {"enabled"}


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "transport", "address", "status", "last_seen", "enabled"]
    readonly_fields = [field.name for field in Host._meta.concrete_fields
                       if field.editable and field.name not in EDITABLE_IN_ADMIN]

    def has_add_permission(self, request) -> bool:
        return False
