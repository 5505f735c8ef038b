from django.contrib import admin

from hosts.models import Host


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["name", "transport", "address", "status", "last_seen", "enabled"]
    readonly_fields = ["status", "status_reason", "last_seen", "hostname", "libvirt_version", "hypervisor_version",
                       "capabilities", "synced_at"]
