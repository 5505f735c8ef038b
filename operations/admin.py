from django.contrib import admin

from operations.models import Operation


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "target_label", "state", "progress", "user", "created_at"]
    list_filter = ["state", "kind"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the audit log is never edited

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
