"""GET /api/alerts: open alerts by default, `?all=1` for the history too, newest first."""
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from retrovue.api import documented
from retrovue.errors import ConfigError

from .alerts import find_alerts
from .models import Alert

FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}


class AlertSerializer(serializers.ModelSerializer):
    channel = serializers.IntegerField(source="channel.number", default=None)
    channel_name = serializers.CharField(source="channel.name", default=None)
    open = serializers.BooleanField(source="is_open")

    class Meta:
        model = Alert
        fields = ["id", "kind", "severity", "channel", "channel_name", "host", "message", "value",
                  "threshold", "raised_at", "last_seen_at", "cleared_at", "open"]


def _flag(name, value):
    try:
        return FLAGS[value.strip().lower()]
    except KeyError:
        raise ConfigError({name: [f"'{value}' is not one of 1, 0, true, false, yes, no"]}) from None


class AlertList(APIView):
    permissions = {"GET": "streams_app.view_alert"}

    @documented(AlertSerializer(many=True), parameters=[
        OpenApiParameter(name, str) for name in ("channel", "kind", "host", "all")])
    def get(self, request):
        params = request.query_params
        alerts = find_alerts(channel=params.get("channel"), kind=params.get("kind"),
                             host=params.get("host"), include_cleared=_flag("all", params.get("all", "")))
        return Response(AlertSerializer(alerts, many=True).data)
