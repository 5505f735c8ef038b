from django.contrib import admin

from domains.models import Domain


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "state", "uuid", "synced_at"]
    list_filter = ["host", "state"]
    search_fields = ["name", "uuid"]
