"""Channel endpoints: thin views over channels_app.services."""
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from retrovue.api import documented

from . import openapi, services
from .models import Channel
from .serializers import ChannelSerializer, ConfigOutcomeSerializer, channel_data


class ChannelList(APIView):
    permissions = {"GET": "channels_app.view_channel", "POST": "channels_app.add_channel"}

    @documented(ChannelSerializer(many=True))
    def get(self, request):
        channels = Channel.objects.with_runtime().select_related("config")
        return Response(ChannelSerializer(channels, many=True).data)

    @documented(ChannelSerializer, request=openapi.ChannelCreate, status=201)
    def post(self, request):
        channel = services.create_channel(request.data)
        return Response(channel_data(channel), status=status.HTTP_201_CREATED)


class ChannelDetail(APIView):
    permissions = {"GET": "channels_app.view_channel", "DELETE": "channels_app.delete_channel"}

    @documented(ChannelSerializer)
    def get(self, request, ref):
        return Response(channel_data(services.get_channel(ref)))

    @documented(None, status=204)
    def delete(self, request, ref):
        services.delete_channel(services.get_channel(ref))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelConfigView(APIView):
    permissions = {"GET": "channels_app.view_channel", "PUT": "channels_app.change_channel"}

    @documented(openapi.ConfigSections)
    def get(self, request, ref):
        return Response(services.get_channel(ref).config.sections())

    @documented(ConfigOutcomeSerializer, request=openapi.ConfigChange)
    def put(self, request, ref):
        channel = services.update_config(services.get_channel(ref), request.data)
        return Response({**channel_data(channel), **services.change_outcome(channel, request.data)})
