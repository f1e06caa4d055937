"""Stream runs, alerts and the as-run log in the admin: read-only records of what the system saw.

Runs change only through the channel actions; alerts are raised by the system, and the one
thing an operator does to them is clear (acknowledge) them.
"""
import json

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils.html import format_html

from retrovue.record_admin import RecordAdmin

from . import channel_admin  # noqa: F401  (channels, with their start/stop/restart actions)
from .alerts import clear_alert
from .asrun import as_run_csv, as_run_rows
from .models import Alert, AsRunEntry, Stream


def pretty(value):
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2))


@admin.register(Stream)
class StreamAdmin(RecordAdmin):
    list_display = ["channel", "host", "generation", "status", "pid", "started_at", "ended_at",
                    "exit_code", "restart_count", "heartbeat_at"]
    list_filter = ["status", "host"]
    list_select_related = ["channel"]
    search_fields = ["channel__name", "host"]
    fields = ["channel", "host", "generation", "status", "status_reason", "pid", "created_at",
              "started_at", "ended_at", "exit_code", "restart_count", "heartbeat_at",
              "health", "errors", "command"]
    readonly_fields = fields

    @admin.display(description="health metrics")
    def health(self, stream):
        return pretty(stream.health_metrics)

    @admin.display(description="error log")
    def errors(self, stream):
        return pretty(stream.error_log)

    @admin.display(description="FFmpeg argv")
    def command(self, stream):
        return pretty(stream.argv)


class OpenFilter(admin.SimpleListFilter):
    title = parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "open"), ("no", "cleared")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(cleared_at__isnull=self.value() == "yes")
        return queryset


@admin.register(Alert)
class AlertAdmin(RecordAdmin):
    list_display = ["kind", "severity", "channel", "host", "message", "raised_at", "cleared_at", "open"]
    list_filter = ["kind", "severity", OpenFilter]
    list_select_related = ["channel"]
    search_fields = ["message", "host", "channel__name"]
    actions = ["clear"]

    @admin.display(boolean=True, ordering="cleared_at")
    def open(self, alert):
        return alert.is_open

    @admin.action(description="Clear selected alerts", permissions=["clear"])
    def clear(self, request, queryset):
        """An operator's acknowledgement: a condition still present is raised again as a new alert."""
        selected = list(queryset)
        cleared = sum(clear_alert(a.kind, channel_id=a.channel_id, host=a.host)
                      for a in selected if a.is_open)
        self.message_user(request, f"Cleared {cleared} of {len(selected)} selected alerts.",
                          messages.SUCCESS)

    def has_clear_permission(self, request):
        # The form stays read-only; clearing is the one change, under the model's change permission.
        return request.user.has_perm(f"{Alert._meta.app_label}.change_alert")


@admin.register(AsRunEntry)
class AsRunEntryAdmin(RecordAdmin):
    list_display = ["actual_start", "actual_end", "channel", "kind", "title", "scheduled_start", "frames",
                    "host", "note"]
    list_filter = ["kind", "host", "channel"]
    list_select_related = ["channel"]
    search_fields = ["title", "source", "note", "channel__name"]
    date_hierarchy = "actual_start"
    actions = ["export_csv"]

    @admin.action(description="Export selected entries as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        rows = as_run_rows(queryset.select_related("channel").order_by("actual_start", "pk"))
        response = HttpResponse(as_run_csv(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="as-run.csv"'
        return response
