"""Running channels' endpoints (keyed by channel UUID or number): thin views over
streams_app.lifecycle and streams_app.services."""
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.serializers import channel_data
from channels_app.services import get_channel

from . import lifecycle, services

# Starting, stopping and restarting are changes of the channel, as in the admin and the pages.
CHANGE_CHANNELS = "channels_app.change_channel"


class StreamRead(APIView):
    permissions = {"GET": "streams_app.view_stream"}
    reader = None

    def get(self, request, ref):
        return Response(getattr(services, self.reader)(get_channel(ref)))


class StreamRestart(APIView):
    permissions = {"POST": CHANGE_CHANNELS}

    def post(self, request, ref):
        channel = lifecycle.restart_channel(get_channel(ref))
        return Response(channel_data(channel), status=status.HTTP_202_ACCEPTED)


class ChannelAction(APIView):
    """POST /api/channels/{id}/start|stop: returns 202 at once; the status is then read from
    the channel."""

    permissions = {"POST": CHANGE_CHANNELS}
    action = None

    def post(self, request, ref):
        channel = getattr(lifecycle, f"{self.action}_channel")(get_channel(ref))
        return Response(channel_data(channel), status=status.HTTP_202_ACCEPTED)


class BulkAction(APIView):
    """POST start-all / stop-all / restart-failed: 202 with what happened to each channel."""

    permissions = {"POST": CHANGE_CHANNELS}
    action = None

    def post(self, request):
        return Response({"channels": getattr(lifecycle, self.action)()}, status=status.HTTP_202_ACCEPTED)
