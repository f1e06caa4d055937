"""Media and schedules in the admin, checked by the same services as the API and CLI.

Media is imported by the CLI or API (the admin re-probes); a schedule saved here is validated
by schedules.validate_schedule, each error shown on the row and field it is about, and nothing
is written while any remains.
"""
import re
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, F, OuterRef
from django.forms.models import BaseInlineFormSet

from retrovue.errors import ConfigError

from . import config_admin  # noqa: F401  (the system defaults)
from . import media, schedules
from .models import Channel, MediaAsset, Program, Schedule, TransitionRule

PROBE_FIELDS = ["source", "duration_s", "video_codec", "audio_codec", "width", "height", "frame_rate",
                "audio_sample_rate", "probed_at"]


@admin.register(MediaAsset)
class MediaAssetAdmin(admin.ModelAdmin):
    list_display = ["source", "title", "duration", "video_codec", "audio_codec", "resolution", "fps"]
    search_fields = ["source", "title"]
    fields = ["title", *PROBE_FIELDS]
    readonly_fields = PROBE_FIELDS
    actions = ["reprobe"]

    def has_add_permission(self, request):
        return False  # `retrovue media import` or POST /api/media probes what it adds

    def save_model(self, request, obj, form, change):
        """Only what was edited: probed_at must keep saying when the file was probed."""
        obj.save(update_fields=form.changed_data)

    @admin.display(ordering="duration_s")
    def duration(self, asset):
        return str(timedelta(seconds=round(asset.duration_s)))

    @admin.display(ordering="frame_rate")
    def fps(self, asset):
        return f"{asset.frame_rate:g}" if asset.frame_rate else None

    @admin.action(description="Probe selected media again", permissions=["change"])
    def reprobe(self, request, queryset):
        for asset in queryset:
            try:
                media.import_media(asset.source)
            except ConfigError as exc:
                self.message_user(request, f"{asset}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{asset}: probed again.", messages.SUCCESS)


class ScheduleCheckFormSet(BaseInlineFormSet):
    """Runs the schedule service's validation over what this inline edits."""

    def payload(self):
        """The part of a schedule (service shape) this inline edits; sets `self.rows`."""
        raise NotImplementedError

    def locate(self, path):
        """(form, field) an error path is about, or (None, None)."""
        raise NotImplementedError

    def live_forms(self):
        return [f for f in self.forms if f.cleaned_data and not self._should_delete_form(f)]

    def clean(self):
        super().clean()
        schedule = self.instance
        if any(self.errors) or not schedule.channel_id:  # the forms already say what is wrong
            return
        try:
            schedules.validate_schedule(schedule.channel, {"timezone": schedule.timezone,
                                                           "loop": schedule.loop, **self.payload()})
        except ConfigError as exc:
            unplaced = []
            for path, errors in exc.errors.items():
                form, field = self.locate(path)
                if form is None:
                    unplaced += [f"{path}: {error}" for error in errors]
                else:
                    form.add_error(field if field in form.fields else None, errors)
            if unplaced:
                raise ValidationError(unplaced) from None


class ProgramFormSet(ScheduleCheckFormSet):
    def payload(self):
        self.rows = sorted(self.live_forms(), key=lambda f: f.cleaned_data["position"])
        keys = ("start", "in_point", "out_point", "title", "description")
        programs = [{**{k: f.cleaned_data[k] for k in keys}, "asset": f.cleaned_data["asset"].pk}
                    for f in self.rows]
        return {"programs": programs}

    def locate(self, path):
        match = re.fullmatch(r"programs\[(\d+)\]\.(\w+)", path)
        return (self.rows[int(match[1])], match[2]) if match else (None, None)


class TransitionFormSet(ScheduleCheckFormSet):
    def payload(self):
        self.rows = self.live_forms()
        if not self.rows:
            return {"programs": []}
        data = self.rows[0].cleaned_data
        return {"programs": [], "transition": {"fill": data["fill"],
                                               "filler": data["filler"] and data["filler"].pk}}

    def locate(self, path):
        match = re.fullmatch(r"transition\.(\w+)", path)
        return (self.rows[0], match[1]) if match else (None, None)


class ProgramInline(admin.TabularInline):
    model = Program
    formset = ProgramFormSet
    fields = ["position", "asset", "start", "in_point", "out_point", "title", "description"]
    ordering = ["position"]
    autocomplete_fields = ["asset"]
    extra = 1


class TransitionRuleInline(admin.StackedInline):
    model = TransitionRule
    formset = TransitionFormSet
    autocomplete_fields = ["filler"]
    max_num = 1
    verbose_name_plural = "transition (what fills gaps; none = the slate)"


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = ["channel", "timezone", "loop"]

    def clean_timezone(self):
        try:
            return schedules.validate_timezone(self.cleaned_data["timezone"])
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    inlines = [ProgramInline, TransitionRuleInline]
    list_display = ["__str__", "channel", "created_at", "timezone", "loop", "programs", "on_air"]
    list_filter = ["loop", "channel"]
    list_select_related = ["channel"]
    actions = ["make_current"]

    def get_queryset(self, request):
        on_air = Channel.objects.filter(current_schedule=OuterRef("pk"))
        return super().get_queryset(request).annotate(program_count=Count("programs"), on_air=Exists(on_air))

    def get_readonly_fields(self, request, obj=None):
        return ["channel"] if obj else []  # a version belongs to one channel's history

    @admin.display(ordering="program_count")
    def programs(self, schedule):
        return schedule.program_count

    @admin.display(boolean=True, ordering="on_air", description="current")
    def on_air(self, schedule):
        return schedule.on_air

    def save_formset(self, request, form, formset, change):
        """Move edited programs out of the way first, so swapping two positions does not trip
        the one-program-per-position constraint halfway through."""
        if formset.model is Program:
            edited = [f.instance.pk for f in formset.initial_forms if f.has_changed()]
            Program.objects.filter(pk__in=edited).update(position=F("position") + 1_000_000)
        super().save_formset(request, form, formset, change)

    @admin.action(description="Make current schedule of its channel", permissions=["change"])
    def make_current(self, request, queryset):
        chosen = list(queryset.select_related("channel__config"))
        if len({s.channel_id for s in chosen}) < len(chosen):
            self.message_user(request, "Select one schedule per channel.", messages.ERROR)
            return
        for schedule in chosen:
            try:
                schedules.make_current(schedule)
            except ConfigError as exc:
                self.message_user(request, f"{schedule}: refused: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{schedule} is now on air.", messages.SUCCESS)
