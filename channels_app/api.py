"""Channel endpoints: thin views over channels_app.services."""
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .models import Channel
from .serializers import ChannelSerializer, channel_data


class ChannelList(APIView):
    permissions = {"GET": "channels_app.view_channel", "POST": "channels_app.add_channel"}

    def get(self, request):
        channels = Channel.objects.with_runtime().select_related("config")
        return Response(ChannelSerializer(channels, many=True).data)

    def post(self, request):
        channel = services.create_channel(request.data)
        return Response(channel_data(channel), status=status.HTTP_201_CREATED)


class ChannelDetail(APIView):
    permissions = {"GET": "channels_app.view_channel", "DELETE": "channels_app.delete_channel"}

    def get(self, request, ref):
        return Response(channel_data(services.get_channel(ref)))

    def delete(self, request, ref):
        services.delete_channel(services.get_channel(ref))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelConfigView(APIView):
    permissions = {"GET": "channels_app.view_channel", "PUT": "channels_app.change_channel"}

    def get(self, request, ref):
        return Response(services.get_channel(ref).config.sections())

    def put(self, request, ref):
        channel = services.update_config(services.get_channel(ref), request.data)
        return Response({**channel_data(channel), **services.change_outcome(channel, request.data)})
