"""Read representations of channels for the API and the CLI's --json output."""
from rest_framework import serializers

from . import services
from .models import Channel
from .validation import udp_url


class ChannelSerializer(serializers.ModelSerializer):
    host = serializers.SerializerMethodField()
    uptime_s = serializers.SerializerMethodField()
    config = serializers.SerializerMethodField()
    outputs = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = ["id", "number", "name", "description", "status", "status_reason", "desired_state",
                  "host", "uptime_s", "generation", "playlist", "config", "outputs",
                  "created_at", "updated_at"]

    def get_host(self, channel):
        return getattr(channel, "current_host", None)

    def get_uptime_s(self, channel):
        return services.uptime_seconds(channel)

    def get_config(self, channel):
        return channel.config.sections()

    def get_outputs(self, channel):
        network = channel.config.network_settings
        return {"udp": udp_url(network, network.get("ttl", 16)).split("?")[0],
                "hls": f"/hls/{channel.number}/index.m3u8"}


def channel_data(channel):
    return ChannelSerializer(channel).data
