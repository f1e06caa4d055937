"""Encode hosts in the admin: hosts register themselves; an operator may drain or retire one."""
from django.contrib import admin
from django.db.models import Exists, OuterRef

from .models import EncodeHost
from .placement import host_loads


@admin.register(EncodeHost)
class EncodeHostAdmin(admin.ModelAdmin):
    fields = ["name", "state", "live", "capacity", "cpu_count", "memory_mb", "pid",
              "registered_at", "last_heartbeat"]
    # The worker reports everything but the state (its capacity comes from `worker --capacity`).
    readonly_fields = [f for f in fields if f != "state"]
    list_filter = ["state"]
    # Set explicitly: by default Django derives it from get_list_display(), a second load query.
    sortable_by = ["name", "state", "capacity", "cpu_count", "memory_mb", "last_heartbeat", "live"]

    def get_queryset(self, request):
        # The same definition placement uses, as one boolean column.
        live = EncodeHost.objects.live().filter(pk=OuterRef("pk"))
        return super().get_queryset(request).annotate(is_live=Exists(live))

    def get_list_display(self, request):
        loads = host_loads()  # once per page, as placement counts them

        @admin.display(description="active channels")
        def active_channels(host):
            return loads.get(host.name, 0)

        return ["name", "state", "capacity", active_channels, "cpu_count", "memory_mb",
                "last_heartbeat", "live"]

    @admin.display(boolean=True, ordering="is_live")
    def live(self, host):
        return host.is_live

    def save_model(self, request, obj, form, change):
        # Only the state: the worker keeps renewing last_heartbeat while the form is open.
        obj.save(update_fields=["state"])

    def has_add_permission(self, request):
        return False
