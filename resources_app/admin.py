"""Encode hosts and reservations in the admin: hosts register themselves; an operator may drain
one (the same service as the CLI and API) and sees capacity, reserved and used side by side."""
from django.contrib import admin, messages
from django.db.models import Exists, OuterRef

from retrovue.errors import ServiceError

from . import services
from .models import EncodeHost, ProfileCost, ResourceAllocation
from .placement import host_loads


def _figure(row, unit):
    used = "-" if row["used"] is None else f"{row['used']:g}"
    return f"{row['reserved']:g} / {row['capacity']:g}{unit} (used {used})"


@admin.register(EncodeHost)
class EncodeHostAdmin(admin.ModelAdmin):
    fields = ["name", "state", "migrate", "live", "labels", "capacity", "cpu_count", "memory_mb",
              "bandwidth_mbps", "pid", "registered_at", "last_heartbeat", "cpu_percent",
              "memory_percent", "net_mbps", "limits_enforced", "limits_note"]
    # The worker reports everything but the state (its capacity comes from `worker --capacity`).
    readonly_fields = [f for f in fields if f not in ("state", "migrate")]
    list_filter = ["state"]
    actions = ["drain", "drain_and_migrate", "undrain"]
    # Set explicitly: by default Django derives it from get_list_display(), a second load query.
    sortable_by = ["name", "state", "capacity", "last_heartbeat", "live"]

    def get_queryset(self, request):
        # The same definition placement uses, as one boolean column.
        live = EncodeHost.objects.live().filter(pk=OuterRef("pk"))
        return super().get_queryset(request).annotate(is_live=Exists(live))

    def get_list_display(self, request):
        loads = host_loads()  # once per page, as placement counts them
        figures = {row["name"]: row for row in services.resource_status()["hosts"]}

        @admin.display(description="active channels")
        def active_channels(host):
            return f"{loads.get(host.name, 0)} / {host.capacity}"

        @admin.display(description="CPU reserved / capacity (% of a core)")
        def cpu(host):
            return _figure(figures[host.name]["cpu"], "%")

        @admin.display(description="memory reserved / capacity")
        def memory(host):
            return _figure(figures[host.name]["memory_mb"], " MB")

        @admin.display(description="bandwidth reserved / capacity")
        def bandwidth(host):
            return _figure(figures[host.name]["bandwidth_mbps"], " Mbit/s")

        @admin.display(description="limits enforced", boolean=True)
        def limits(host):
            return host.limits_enforced

        return ["name", "state", "live", active_channels, cpu, memory, bandwidth, limits, "last_heartbeat"]

    @admin.display(boolean=True, ordering="is_live")
    def live(self, host):
        return host.is_live

    def save_model(self, request, obj, form, change):
        # Only the state: the worker keeps renewing last_heartbeat while the form is open.
        obj.save(update_fields=["state", "migrate"])

    def has_add_permission(self, request):
        return False

    def _each(self, request, queryset, action, **kwargs):
        for host in queryset:
            try:
                action(host.name, **kwargs)
            except ServiceError as exc:
                self.message_user(request, f"{host.name}: {exc}", messages.WARNING)
            else:
                self.message_user(request, f"{host.name}: done")

    @admin.action(description="Drain: take no new channels", permissions=["change"])
    def drain(self, request, queryset):
        self._each(request, queryset, services.drain_host)

    @admin.action(description="Drain and move channels away one by one", permissions=["change"])
    def drain_and_migrate(self, request, queryset):
        self._each(request, queryset, services.drain_host, migrate=True)

    @admin.action(description="Undrain: take channels again", permissions=["change"])
    def undrain(self, request, queryset):
        self._each(request, queryset, services.undrain_host)


@admin.register(ResourceAllocation)
class ResourceAllocationAdmin(admin.ModelAdmin):
    list_display = ["channel", "host", "cpu_percent", "memory_mb", "bandwidth_mbps", "manual",
                    "stream", "reserved_at"]
    list_filter = ["host", "manual"]
    list_select_related = ["channel", "host", "stream"]
    readonly_fields = list_display

    def has_add_permission(self, request):
        return False  # reservations come from admission control (start, allocate)

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ProfileCost)
class ProfileCostAdmin(admin.ModelAdmin):
    list_display = ["profile", "host", "cpu_percent", "memory_mb", "measured_at"]
    list_filter = ["host", "profile"]
    readonly_fields = list_display
