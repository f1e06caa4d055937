"""API plumbing shared by the apps: domain errors become HTTP answers with field errors (the
database away is left to DatabaseOutageMiddleware, which answers the API in JSON)."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from retrovue.errors import ConfigError

from .errors import ServiceError

ERRORS = {
    400: OpenApiResponse(description="bad input: {field: [message, ...]}, nothing written"),
    401: OpenApiResponse(description="not authenticated"),
    403: OpenApiResponse(description="the user lacks the model permission this needs"),
    404: OpenApiResponse(description="no such channel or host"),
    409: OpenApiResponse(description="refused in this state: {detail, ...}"),
    503: OpenApiResponse(description="a dependency is away or no host can take it: {detail, ...}"),
}


def documented(responses, request=None, status=200, **options):
    """The OpenAPI description of an endpoint: what it takes, what it answers, and its errors."""
    return extend_schema(request=request, responses={status: responses, **ERRORS}, **options)


def exception_handler(exc, context):
    if isinstance(exc, ConfigError):
        return Response(exc.errors, status=400)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": f"the request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"},
                        status=413)
    if isinstance(exc, ServiceError):
        return Response({"detail": str(exc), **exc.details}, status=exc.http_status)
    return drf_exception_handler(exc, context)
