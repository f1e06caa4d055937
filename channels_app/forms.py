"""Admin forms: the same allow-list validation as the API, shown as per-field errors."""
import re

from django import forms
from django.conf import settings

from retrovue.errors import ConfigError

from . import logos, validation
from .models import Channel, ChannelConfig
from .profiles import QUALITY_PROFILES, merged_sections
from .system_config import default_resource_limits


def add_config_errors(form, exc):
    """Put each ConfigError message on the field it is about ('stream_settings.bitrate' -> stream_settings)."""
    for path, messages in exc.errors.items():
        field = re.split(r"[.\[]", path, maxsplit=1)[0]
        prefix = "" if path == field else f"{path}: "
        form.add_error(field if field in form.fields else None, [prefix + m for m in messages])


class ChannelForm(forms.ModelForm):
    # Checked by the API's check (logos.image_kind); the admin stores it through logos.store_logo.
    logo_file = forms.FileField(required=False, label="Logo",
                                help_text="A PNG or JPEG image of at most 1 MB; replaces the current logo.")
    remove_logo = forms.BooleanField(required=False, help_text="Remove the current logo.")

    class Meta:
        model = Channel
        fields = ["name", "number", "description", "playlist", "on_demand", "group"]
        help_texts = {"playlist": "JSON list of media file paths under the media roots, played in a "
                                  "loop; empty plays the slate."}

    CHECKS = {
        "name": validation.validate_name,
        "number": validation.validate_number,
        "playlist": lambda paths: validation.validate_playlist(paths, settings.RETROVUE_MEDIA_ROOTS),
        "group": validation.validate_group,
    }

    def clean_logo_file(self):
        """The uploaded logo's bytes (None: no upload), refused as the API refuses them."""
        upload = self.cleaned_data.get("logo_file")
        if not upload:
            return None
        data = logos.read_upload(upload)
        try:
            logos.image_kind(data)
        except ConfigError as exc:
            raise forms.ValidationError(exc.errors["logo"]) from None
        return data

    def clean(self):
        cleaned = super().clean()
        for field, check in self.CHECKS.items():
            if field in cleaned:  # absent when read-only or already invalid
                try:
                    cleaned[field] = check(cleaned[field])
                except ConfigError as exc:
                    add_config_errors(self, exc)
        return cleaned


class ChannelConfigForm(forms.ModelForm):
    """The config inline: only the sections the operator edits are sent to the service."""

    quality = forms.ChoiceField(
        required=False, choices=[("", "---------")] + [(name, name) for name in QUALITY_PROFILES],
        help_text="Replace the stream and quality settings with this profile; keys edited below still win.")

    class Meta:
        model = ChannelConfig
        fields = ["quality", *ChannelConfig.SECTIONS]
        help_texts = {name: "JSON object; keys left out keep their current (or the template's) value."
                      for name in ChannelConfig.SECTIONS}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ChannelConfig.SECTIONS:
            self.fields[name].required = False

    def service_data(self):
        """The `quality` and config sections to pass to create_channel / update_config."""
        data = {name: self.cleaned_data[name] for name in ChannelConfig.SECTIONS
                if name in self.changed_data and self.cleaned_data.get(name) is not None}
        if self.cleaned_data.get("quality"):
            data["quality"] = self.cleaned_data["quality"]
        return data

    def clean(self):
        cleaned = super().clean()
        data = self.service_data()
        base = self.instance.sections() if self.instance.pk else None
        try:
            # The channel number only picks the default port, so any number validates the same.
            validation.validate_config(merged_sections(0, data.pop("quality", None), data, base=base,
                                                       default_limits=default_resource_limits()))
        except ConfigError as exc:
            add_config_errors(self, exc)
        return cleaned
