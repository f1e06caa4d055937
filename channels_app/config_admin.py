"""The system defaults in the admin: one row, edited as the design's JSON block and saved by the
same service as PUT /api/config (validated whole, errors by dotted path, nothing half-written)."""
import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from retrovue.errors import ConfigError

from . import system_config
from .models import SystemConfig


class SystemConfigForm(forms.ModelForm):
    class Meta:
        model = SystemConfig
        fields = ["values"]
        labels = {"values": "Stored defaults"}
        help_texts = {"values": "The configuration block's keys to store (max_channels, resource_allocation, "
                                "failover_settings, monitoring); a key left out comes from the environment."}

    def clean_values(self):
        values = self.cleaned_data["values"]
        try:
            system_config.parse(values)
        except ConfigError as exc:
            raise forms.ValidationError([f"{path}: {' '.join(messages)}" for path, messages in exc.errors.items()])
        return values


@admin.register(SystemConfig)
class SystemConfigAdmin(admin.ModelAdmin):
    form = SystemConfigForm
    readonly_fields = ["effective", "updated_at"]
    fields = ["values", "effective", "updated_at"]

    def has_add_permission(self, request):
        return False  # the one row is made on first use

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        """Straight to the one row (made empty, i.e. all from the environment, on first visit)."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        SystemConfig.objects.get_or_create(pk=system_config.SINGLETON)
        return redirect(reverse("admin:channels_app_systemconfig_change", args=[system_config.SINGLETON]))

    @admin.display(description="Effective (stored, else environment)")
    def effective(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(system_config.describe(), indent=2))

    def save_model(self, request, obj, form, change):
        system_config.replace(form.cleaned_data["values"])
