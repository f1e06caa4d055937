"""GET /api/viewers[?channel=<number or UUID>][&hours=<1..720, default 24>]: per channel, its
viewers now (by kind), tune-ins and watch time over the last `hours` (tuning.viewer_figures)."""
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.models import Channel
from retrovue.api import documented
from retrovue.errors import ConfigError

from . import openapi
from .alerts import channel_filter
from .tuning import no_viewers, viewer_figures

MAX_HOURS = 30 * 24


def window_hours(raw):
    """`raw` (a query or CLI value) as a whole number of hours; anything else is a bad field."""
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_HOURS:
        raise ConfigError({"hours": [f"'{raw}' is not a whole number of hours from 1 to {MAX_HOURS}"]})
    return int(raw)


def viewer_report(channel=None, hours=24):
    """Every channel (or `channel`) by number, with its figures since `hours` ago (two queries)."""
    since = timezone.now() - timedelta(hours=hours)
    figures = viewer_figures(since)
    channels = [channel] if channel else Channel.objects.order_by("number")
    return [{"number": each.number, "name": each.name, **figures.get(each.pk, no_viewers())._asdict(),
             "since": since} for each in channels]


class ViewerList(APIView):
    permissions = {"GET": "channels_app.view_viewersession"}

    @documented(openapi.ChannelViewers(many=True), parameters=[
        OpenApiParameter("channel", str, description="number or UUID (default: every channel)"),
        OpenApiParameter("hours", int, description=f"window of tune-ins and watch time, 1 to {MAX_HOURS}, "
                                                   "default 24")])
    def get(self, request):
        params = request.query_params
        ref = params.get("channel")
        channel = channel_filter(ref) if ref else None
        return Response(viewer_report(channel, window_hours(params.get("hours", "24"))))
