"""GET /api/asrun?channel=&from=&to=: the as-run log, JSON or (`?format=csv`, Accept: text/csv) CSV."""
import json

from django.core.serializers.json import DjangoJSONEncoder
from drf_spectacular.utils import OpenApiParameter
from rest_framework import renderers, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from retrovue.api import documented

from .asrun import as_run_csv, as_run_rows, find_as_run


class CsvRenderer(renderers.BaseRenderer):
    """Rows as CSV; anything else (an error) stays JSON, so a bad filter reads the same either way."""

    media_type, format, charset = "text/csv", "csv", "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, list):
            return as_run_csv(data)
        renderer_context["response"]["Content-Type"] = "application/json"
        return json.dumps(data, cls=DjangoJSONEncoder)


class AsRunSerializer(serializers.Serializer):
    channel = serializers.IntegerField()
    channel_name = serializers.CharField()
    kind = serializers.CharField()
    title = serializers.CharField()
    asset = serializers.IntegerField(allow_null=True)
    source = serializers.CharField()
    scheduled_start = serializers.DateTimeField(allow_null=True)
    scheduled_end = serializers.DateTimeField(allow_null=True)
    actual_start = serializers.DateTimeField()
    actual_end = serializers.DateTimeField(allow_null=True)
    duration_s = serializers.FloatField(allow_null=True)
    frames = serializers.IntegerField(allow_null=True)
    host = serializers.CharField()
    run = serializers.IntegerField(allow_null=True)
    note = serializers.CharField()
    viewers = serializers.IntegerField(help_text="viewer sessions that watched during the entry")


class AsRunList(APIView):
    permissions = {"GET": "streams_app.view_asrunentry"}
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CsvRenderer]

    @documented(AsRunSerializer(many=True), parameters=[
        OpenApiParameter("channel", str, description="number or UUID"),
        OpenApiParameter("from", str, description="ISO 8601; default: 24 hours before 'to'"),
        OpenApiParameter("to", str, description="ISO 8601; default: now"),
        OpenApiParameter("format", str, enum=["json", "csv"])])
    def get(self, request):
        params = request.query_params
        entries = find_as_run(channel=params.get("channel"), since=params.get("from"), until=params.get("to"))
        return Response(as_run_rows(entries))
