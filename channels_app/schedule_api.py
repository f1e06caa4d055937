"""Media, schedule and switch endpoints: thin views over channels_app.media and .schedules."""
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from retrovue.errors import ConfigError

from retrovue.api import documented

from . import media, openapi, schedules, services
from .models import MediaAsset


def body_field(data, name):
    """The one field a request body holds: {"path": ...} or {"asset": ...}."""
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object"]})
    unknown = sorted(set(data) - {name})
    if unknown:
        raise ConfigError({key: ["unknown field"] for key in unknown})
    return data.get(name)


class MediaList(APIView):
    permissions = {"GET": "channels_app.view_mediaasset", "POST": "channels_app.add_mediaasset"}

    @documented(openapi.MediaAsset(many=True))
    def get(self, request):
        return Response([media.asset_data(asset) for asset in MediaAsset.objects.all()])

    @documented(openapi.MediaAsset, request=openapi.MediaImport, status=201)
    def post(self, request):
        """Import (or re-probe) one file under the media roots or an http(s) URL."""
        asset, created = media.import_media(body_field(request.data, "path"))
        return Response(media.asset_data(asset),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ScheduleView(APIView):
    permissions = {"GET": "channels_app.view_schedule", "PUT": "channels_app.change_schedule"}

    @documented(openapi.Schedule, parameters=[OpenApiParameter("hours", int, description="how far ahead (1-168)")])
    def get(self, request, ref):
        channel = services.get_channel(ref)
        return Response(schedules.schedule_data(channel, request.query_params.get("hours")))

    @documented(openapi.Schedule, request=openapi.ScheduleChange)
    def put(self, request, ref):
        channel = services.get_channel(ref)
        schedules.replace_schedule(channel, request.data)
        return Response(schedules.schedule_data(channel))


class SwitchView(APIView):
    permissions = {"POST": "channels_app.change_channel"}

    @documented(openapi.SwitchAccepted, request=openapi.SwitchRequest, status=202)
    def post(self, request, ref):
        """202: the running playout engine airs the asset within a second."""
        channel = services.get_channel(ref)
        return Response(schedules.switch_channel(channel, body_field(request.data, "asset")),
                        status=status.HTTP_202_ACCEPTED)
