"""Running channels' endpoints (keyed by channel UUID or number): thin views over
streams_app.lifecycle and streams_app.services."""
from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.serializers import ChannelSerializer, channel_data
from channels_app.services import get_channel

from retrovue.api import documented

from . import lifecycle, openapi, services

# Starting, stopping and restarting are changes of the channel, as in the admin and the pages.
CHANGE_CHANNELS = "channels_app.change_channel"


class StreamRead(APIView):
    """One view of a channel's current run; each subclass names its reader."""

    permissions = {"GET": "streams_app.view_stream"}
    reader = None

    def get(self, request, ref):
        return Response(getattr(services, self.reader)(get_channel(ref)))


@extend_schema_view(get=documented(openapi.StreamStatus))
class StreamStatusView(StreamRead):
    reader = "stream_status"


@extend_schema_view(get=documented(openapi.StreamHealth))
class StreamHealthView(StreamRead):
    reader = "stream_health"


@extend_schema_view(get=documented(openapi.StreamMetrics))
class StreamMetricsView(StreamRead):
    reader = "stream_metrics"


class StreamRestart(APIView):
    permissions = {"POST": CHANGE_CHANNELS}

    @documented(ChannelSerializer, request=None, status=202)
    def post(self, request, ref):
        channel = lifecycle.restart_channel(get_channel(ref))
        return Response(channel_data(channel), status=status.HTTP_202_ACCEPTED)


class ChannelAction(APIView):
    """POST /api/channels/{id}/start|stop: returns 202 at once; the status is then read from
    the channel."""

    permissions = {"POST": CHANGE_CHANNELS}
    action = None

    @documented(ChannelSerializer, request=None, status=202)
    def post(self, request, ref):
        channel = getattr(lifecycle, f"{self.action}_channel")(get_channel(ref))
        return Response(channel_data(channel), status=status.HTTP_202_ACCEPTED)


class BulkAction(APIView):
    """POST start-all / stop-all / restart-failed: 202 with what happened to each channel."""

    permissions = {"POST": CHANGE_CHANNELS}
    action = None

    @documented(openapi.BulkOutcome, request=None, status=202)
    def post(self, request):
        return Response({"channels": getattr(lifecycle, self.action)()}, status=status.HTTP_202_ACCEPTED)
