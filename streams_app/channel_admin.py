"""Channels in the admin: every write goes through channels_app.services and
streams_app.lifecycle, like the API and CLI."""
from datetime import timedelta

from django.contrib import admin, messages
from django.utils.html import format_html

from channels_app import logos, services
from channels_app.forms import ChannelConfigForm, ChannelForm
from channels_app.models import Channel, ChannelConfig
from retrovue.errors import ConfigError, ServiceError
from retrovue.record_admin import records_of

from . import iptv, lifecycle
from .models import Stream

ACTIVE = (Channel.Status.STARTING, Channel.Status.RUNNING, Channel.Status.STOPPING)


class ChannelConfigInline(admin.StackedInline):
    model = ChannelConfig
    form = ChannelConfigForm
    min_num = max_num = 1
    extra = 0
    can_delete = False


class StreamInline(admin.TabularInline):
    """The channel's latest runs, read-only; the streams admin has the full history."""

    model = Stream
    recent = 10
    fields = ["generation", "host", "status", "status_reason", "pid", "started_at", "ended_at",
              "exit_code", "restart_count", "heartbeat_at"]
    readonly_fields = fields
    verbose_name_plural = f"recent streams (last {recent})"
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["number", "name", "status", "host", "uptime", "on_demand"]
    list_display_links = ["number", "name"]
    list_filter = ["status", "desired_state", "on_demand"]
    search_fields = ["name"]
    actions = ["start", "stop", "restart", "start_all", "stop_all", "restart_failed"]
    # Changed only by the actions and the supervisor.
    readonly_fields = ["status", "status_reason", "desired_state", "generation", "host", "uptime",
                       "id", "created_at", "updated_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_runtime()

    def get_readonly_fields(self, request, obj=None):
        # The number names the channel's HLS path and default port: fixed once created.
        return [*self.readonly_fields, "logo_preview", *(["number"] if obj else [])]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [(None, {"fields": ["name", "number", "description", "playlist", "on_demand", "group"]}),
                     ("Logo", {"fields": ["logo_preview", "logo_file", "remove_logo"] if obj else ["logo_file"]})]
        if obj:
            fieldsets.append(("State", {"fields": self.readonly_fields}))
        return fieldsets

    def get_inlines(self, request, obj):
        return [ChannelConfigInline, StreamInline] if obj else [ChannelConfigInline]

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, StreamInline):
            # Every run has its own generation, so the latest runs are the highest generations.
            kwargs["queryset"] = kwargs["queryset"].filter(generation__gt=obj.generation - inline.recent)
        return kwargs

    @admin.display(ordering="current_host")
    def host(self, channel):
        return getattr(channel, "current_host", None)

    @admin.display(description="current logo")
    def logo_preview(self, channel):
        if not channel.logo:
            return "none"
        url = iptv.rooted_url("", "iptv-logo", number=channel.number, ext=logos.extension(channel))
        return format_html('<img src="{}" alt="logo of {}" height="48">', url, channel.name)

    def uptime(self, channel):
        seconds = services.uptime_seconds(channel)
        return None if seconds is None else str(timedelta(seconds=round(seconds)))

    def save_model(self, request, obj, form, change):
        """Nothing here: save_related writes the channel and its config together, via the services."""

    def save_related(self, request, form, formsets, change):
        channel = form.instance
        config = {}
        for formset in formsets:
            if formset.model is ChannelConfig:
                config = {k: v for f in formset.forms for k, v in f.service_data().items()}
            formset.save(commit=False)  # records the changes for the history, writes nothing
        if change:
            fields = {k: form.cleaned_data[k] for k in ("name", "description", "playlist", "on_demand", "group")
                      if k in form.changed_data}
            changes = {**config, **fields}
            channel = services.update_config(services.get_channel(channel.pk), changes)
            outcome = services.change_outcome(channel, changes)
            if outcome["restart_required"]:
                self.message_user(request, f"{channel}: restart it to apply {', '.join(outcome['restart_for'])}.",
                                  messages.WARNING)
            if "playlist" in fields:
                self.message_user(request, f"{channel}: the new playlist airs from the next segment.")
        else:
            fields = {k: form.cleaned_data[k] for k in ("name", "number", "description", "playlist", "on_demand",
                                                         "group")}
            # The service creates its own row; the admin's redirect and history need that one.
            channel.pk = services.create_channel({**fields, **config}).pk
        if form.cleaned_data.get("logo_file"):
            logos.store_logo(channel, form.cleaned_data["logo_file"])
        elif form.cleaned_data.get("remove_logo"):
            logos.remove_logo(channel)
        if not change:
            channel.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        """A channel that runs or wants to must be stopped first (as the API requires)."""
        if obj and (obj.desired_state == Channel.Desired.RUNNING or obj.status in ACTIVE):
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # Its records (runs, alerts, as-run log) go with a channel, though their admins delete nothing.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.difference_update(records_of(self.admin_site))
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        self.delete_queryset(request, [obj])

    def delete_queryset(self, request, queryset):
        for channel in queryset:
            try:
                services.delete_channel(channel)
            except ServiceError as exc:
                self.message_user(request, f"{channel}: delete refused: {exc}", messages.ERROR)

    def _act(self, request, queryset, service, verb):
        """Run one service action per channel; a refusal is reported for that channel only."""
        for channel in queryset.select_related("config"):
            try:
                channel = service(channel)
            except (ServiceError, ConfigError) as exc:
                self.message_user(request, f"{channel}: {verb} refused: {exc}", messages.ERROR)
            else:
                where = f" on {channel.current_host}" if channel.current_host else ""
                self.message_user(request, f"{channel}: {verb} requested, now {channel.status}{where}.",
                                  messages.SUCCESS)

    @admin.action(description="Start selected channels", permissions=["change"])
    def start(self, request, queryset):
        self._act(request, queryset, lifecycle.start_channel, "start")

    @admin.action(description="Stop selected channels", permissions=["change"])
    def stop(self, request, queryset):
        self._act(request, queryset, lifecycle.stop_channel, "stop")

    @admin.action(description="Restart selected channels", permissions=["change"])
    def restart(self, request, queryset):
        self._act(request, queryset, lifecycle.restart_channel, "restart")

    def _bulk(self, request, verb, results):
        """Report a bulk service's outcome per channel in one message."""
        summary = ", ".join(f"{number}: {outcome}" for number, outcome in results.items())
        self.message_user(request, f"{verb}: {summary or 'nothing to do for the selection'}")

    @admin.action(description="Start all selected channels that are not running (start_all_channels)",
                  permissions=["change"])
    def start_all(self, request, queryset):
        self._bulk(request, "start all", lifecycle.start_all_channels(queryset))

    @admin.action(description="Stop all selected channels (stop_all_channels)", permissions=["change"])
    def stop_all(self, request, queryset):
        self._bulk(request, "stop all", lifecycle.stop_all_channels(queryset))

    @admin.action(description="Restart selected channels that failed (ERROR, auto restart on)", permissions=["change"])
    def restart_failed(self, request, queryset):
        self._bulk(request, "restart failed", lifecycle.restart_failed_channels(queryset))
