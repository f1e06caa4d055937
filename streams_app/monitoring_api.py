"""Monitoring endpoints (authenticated like the rest of the API): thin views over monitoring."""
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.services import get_channel
from retrovue.api import documented
from retrovue.errors import ConfigError

from . import openapi
from .alerts import channel_filter
from .availability import availability_report
from .monitoring import analyze_channel_performance, monitor_channel_health

MAX_WINDOW_MINUTES = 7 * 24 * 60


class HealthView(APIView):
    """GET /api/health: channels, hosts, stream quality, error rates and open alerts."""
    permissions = {"GET": "streams_app.view_stream"}


    @documented(openapi.Health)
    def get(self, request):
        return Response(monitor_channel_health())


class PerformanceView(APIView):
    """GET /api/performance[?channel=<number or UUID>][&window=<minutes, default 60>]."""
    permissions = {"GET": "streams_app.view_stream"}


    @documented(openapi.Performance, parameters=[
        OpenApiParameter("channel", str, description="number or UUID (default: every channel)"),
        OpenApiParameter("window", int, description="minutes, default 60")])
    def get(self, request):
        ref = request.query_params.get("channel")
        channel = get_channel(ref) if ref else None
        return Response(analyze_channel_performance(channel, window_minutes(request.query_params)))


class AvailabilityView(APIView):
    """GET /api/availability[?channel=<number or UUID>]: uptime, downtime, failures, MTBF and
    MTTR over the last 24 h, 7 d and 30 d (an unknown channel is a bad filter: 400)."""
    permissions = {"GET": "streams_app.view_stream"}

    @documented(openapi.Availability, parameters=[
        OpenApiParameter("channel", str, description="number or UUID (default: every channel)")])
    def get(self, request):
        ref = request.query_params.get("channel")
        return Response(availability_report(channel_filter(ref) if ref else None))


def window_minutes(params):
    raw = params.get("window", "60")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WINDOW_MINUTES:
        raise ConfigError({"window": [f"'{raw}' is not a whole number of minutes from 1 to "
                                      f"{MAX_WINDOW_MINUTES}"]})
    return int(raw)
