"""Read representations of channels for the API and the CLI's --json output."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from . import logos, openapi, services
from .models import Channel
from .validation import udp_url


class ChannelSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    host = serializers.SerializerMethodField()
    uptime_s = serializers.SerializerMethodField()
    config = serializers.SerializerMethodField()
    outputs = serializers.SerializerMethodField()
    logo = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = ["id", "number", "name", "description", "status", "status_reason", "desired_state",
                  "host", "uptime_s", "generation", "playlist", "on_demand", "group", "logo", "config", "outputs",
                  "created_at", "updated_at"]

    @extend_schema_field(serializers.ChoiceField([*Channel.Status.values, "UNKNOWN"]))
    def get_status(self, channel):
        return services.reported_status(channel)

    @extend_schema_field(OpenApiTypes.STR)
    def get_host(self, channel):
        return getattr(channel, "current_host", None)

    @extend_schema_field(OpenApiTypes.FLOAT)
    def get_uptime_s(self, channel):
        return services.uptime_seconds(channel)

    @extend_schema_field(openapi.ConfigSections)
    def get_config(self, channel):
        return channel.config.sections()

    @extend_schema_field(openapi.Outputs)
    def get_outputs(self, channel):
        network = channel.config.network_settings
        return {"udp": udp_url(network, network.get("ttl", 16)).split("?")[0],
                "hls": f"/hls/{channel.number}/index.m3u8"}


    @extend_schema_field(OpenApiTypes.STR)
    def get_logo(self, channel):
        """Where players fetch the logo (under /iptv/t/<token>/ when an IPTV token is set), or null."""
        return f"/iptv/logos/{channel.number}.{logos.extension(channel)}" if channel.logo else None


class ConfigOutcomeSerializer(ChannelSerializer):
    """What PUT .../config answers (for the schema): the channel, and what its change needs."""

    restart_required = serializers.BooleanField()
    restart_for = serializers.ListField(child=serializers.CharField(), help_text="changes that need a restart")
    applied_live = serializers.ListField(child=serializers.CharField(), help_text="changes that air without one")

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "restart_required", "restart_for", "applied_live"]


def channel_data(channel):
    return ChannelSerializer(channel).data
