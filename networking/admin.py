from django.contrib import admin

from networking.models import HostInterface, Lease, NetworkFilter, VirtualNetwork


@admin.register(VirtualNetwork)
class VirtualNetworkAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "mode", "bridge", "active", "autostart", "synced_at"]
    list_filter = ["host", "mode", "active"]
    search_fields = ["name", "uuid", "bridge"]


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["ip", "mac", "hostname", "network", "expiry"]
    search_fields = ["ip", "mac", "hostname"]


@admin.register(HostInterface)
class HostInterfaceAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "kind", "mac", "active"]
    list_filter = ["host", "kind"]


@admin.register(NetworkFilter)
class NetworkFilterAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "chain", "rule_count"]
    list_filter = ["host"]
