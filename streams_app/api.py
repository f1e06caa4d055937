"""Stream endpoints (keyed by channel UUID or number): thin views over streams_app.services."""
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.serializers import channel_data
from channels_app.services import get_channel

from . import services


class StreamRead(APIView):
    reader = None

    def get(self, request, ref):
        return Response(getattr(services, self.reader)(get_channel(ref)))


class StreamRestart(APIView):
    def post(self, request, ref):
        channel = services.restart_stream(get_channel(ref))
        return Response(channel_data(channel), status=status.HTTP_202_ACCEPTED)
