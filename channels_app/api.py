"""Channel endpoints: thin views over channels_app.services (and .logos)."""
from drf_spectacular.types import OpenApiTypes
from rest_framework import status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from retrovue.api import documented
from retrovue.errors import ConfigError

from . import logos, openapi, services
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


class ImageParser(BaseParser):
    """A raw image body (image/png, image/jpeg; others are refused by their bytes), read no
    further than one byte past the logo limit."""

    media_type = "image/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read(logos.MAX_LOGO_BYTES + 1)


# Room for a multipart body's boundaries and part headers around a logo of the largest size.
MULTIPART_OVERHEAD = 64 * 1024
HOW_TO_SEND = ('send a PNG or JPEG image as the body (Content-Type image/png or image/jpeg) '
               'or as the multipart field "logo"')


def uploaded_logo(request):
    """The image bytes of a logo upload, refused early when the body is obviously too large."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > logos.MAX_LOGO_BYTES + MULTIPART_OVERHEAD:
        raise logos.refusal(f"is larger than 1 MB ({logos.MAX_LOGO_BYTES} bytes)")
    try:
        data = request.data
    except UnsupportedMediaType:
        raise ConfigError({"logo": [HOW_TO_SEND]}) from None
    if isinstance(data, bytes):
        return data
    if "logo" in request.FILES:
        return logos.read_upload(request.FILES["logo"])
    if request.content_type.startswith("image/"):  # an empty body: the parser was not called
        return b""
    raise ConfigError({"logo": [HOW_TO_SEND]})


class ChannelLogoView(APIView):
    permissions = {"PUT": "channels_app.change_channel", "DELETE": "channels_app.change_channel"}
    parser_classes = [ImageParser, MultiPartParser]

    @documented(ChannelSerializer, request={"image/png": OpenApiTypes.BINARY, "image/jpeg": OpenApiTypes.BINARY,
                                            "multipart/form-data": openapi.LogoUpload})
    def put(self, request, ref):
        """Set the channel's logo: a PNG or JPEG image of at most 1 MB."""
        channel = services.get_channel(ref)
        logos.store_logo(channel, uploaded_logo(request))
        return Response(channel_data(services.get_channel(channel.pk)))

    @documented(None, status=204)
    def delete(self, request, ref):
        logos.remove_logo(services.get_channel(ref))
        return Response(status=status.HTTP_204_NO_CONTENT)
