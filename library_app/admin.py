"""Libraries, collections and programming rules in the admin, checked and written by the same
services as the API and CLI (errors shown on the fields they are about)."""
import json

from django import forms
from django.contrib import admin, messages

from channels_app.forms import add_config_errors
from retrovue.errors import ConfigError, ServiceError

from . import builder, collections, jobs, libraries, rules
from .models import ChannelProgramming, Collection, Library


LIBRARY_FIELDS = ["name", "path", "kind"]


class ServiceCheckedForm(forms.ModelForm):
    """A form whose whole input is checked by its service (`check`), each error shown on the
    field it is about, before save_model writes through the same service."""

    def check(self, cleaned):
        raise NotImplementedError

    def clean(self):
        try:
            self.check(self.cleaned_data)
        except ConfigError as exc:
            add_config_errors(self, exc)
        return self.cleaned_data

    @property
    def existing(self):
        return self.instance if self.instance.pk else None


class LibraryForm(ServiceCheckedForm):
    class Meta:
        model = Library
        fields = LIBRARY_FIELDS

    def check(self, cleaned):
        libraries.check_library({key: cleaned.get(key) for key in LIBRARY_FIELDS if key in self.fields},
                                self.existing)


@admin.register(Library)
class LibraryAdmin(admin.ModelAdmin):
    form = LibraryForm
    list_display = ["name", "path", "kind", "scan_state", "progress_percent", "last_scan_at", "assets"]
    readonly_fields = ["scan_state", "scan_done", "scan_total", "scan_error", "last_scan", "last_scan_at"]
    fields = [*LIBRARY_FIELDS, *readonly_fields]
    actions = ["scan"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "path"] if obj else self.readonly_fields

    @admin.display(description="progress")
    def progress_percent(self, library):
        return f"{library.progress * 100:.0f}%"

    @admin.display(description="assets")
    def assets(self, library):
        return libraries.library_assets(library).filter(missing_since=None).count()

    def save_model(self, request, obj, form, change):
        data = {key: form.cleaned_data[key] for key in LIBRARY_FIELDS if key in form.cleaned_data}
        if change:
            libraries.update_library(Library.objects.get(pk=obj.pk), data)
            return
        obj.pk = libraries.create_library(data).pk
        self.queue(request, obj)

    def queue(self, request, library):
        try:
            jobs.queue_scan(library)
        except ServiceError as exc:
            self.message_user(request, f"{library}: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"{library}: scan queued.", messages.SUCCESS)

    @admin.action(description="Scan selected libraries (new and changed files)", permissions=["change"])
    def scan(self, request, queryset):
        for library in queryset:
            self.queue(request, library)


class JSONText(forms.CharField):
    """A JSON document edited as text; parse errors are the field's own."""

    widget = forms.Textarea(attrs={"rows": 12, "cols": 90})

    def prepare_value(self, value):
        return value if isinstance(value, str) else json.dumps(value or {}, indent=2)

    def to_python(self, value):
        try:
            return json.loads(value or "{}")
        except ValueError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from None


class CollectionForm(ServiceCheckedForm):
    definition = JSONText(help_text='{"query": {"show": "...", "genre": "...", "year": {...}}} for a smart '
                                    'collection, or {"items": [asset ids or paths]} for a manual one')

    class Meta:
        model = Collection
        fields = ["name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            data = collections.collection_data(self.instance)
            self.initial["definition"] = {key: data[key] for key in ("query", "items") if key in data}

    def check(self, cleaned):
        collections.validate_collection({"name": cleaned.get("name"), **(cleaned.get("definition") or {})},
                                        self.existing)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    form = CollectionForm
    list_display = ["name", "kind", "size", "updated_at"]

    @admin.display(description="assets")
    def size(self, collection):
        return len(collections.collection_assets(collection))

    def save_model(self, request, obj, form, change):
        body = {"name": form.cleaned_data["name"], **form.cleaned_data["definition"]}
        if change:
            collections.update_collection(Collection.objects.get(pk=obj.pk), body)
        else:
            obj.pk = collections.create_collection(body).pk


class ProgrammingForm(ServiceCheckedForm):
    rules = JSONText(help_text="the body of PUT /api/channels/{id}/programming")

    class Meta:
        model = ChannelProgramming
        fields = ["channel", "rules"]

    def check(self, cleaned):
        if cleaned.get("channel") is not None:  # else the channel field says what is wrong
            rules.validate_rules(cleaned.get("rules"), cleaned["channel"])


@admin.register(ChannelProgramming)
class ChannelProgrammingAdmin(admin.ModelAdmin):
    form = ProgrammingForm
    list_display = ["channel", "built_until", "built_at", "build_error"]
    readonly_fields = ["built_until", "built_at", "build_error"]
    actions = ["extend"]

    def save_model(self, request, obj, form, change):
        obj.pk = builder.set_programming(form.cleaned_data["channel"], form.cleaned_data["rules"]).pk

    @admin.action(description="Build selected channels' schedules ahead now", permissions=["change"])
    def extend(self, request, queryset):
        for programming in queryset.select_related("channel"):
            builder.extend(programming.channel)
        self.message_user(request, f"{queryset.count()} schedules extended.", messages.SUCCESS)
