"""API plumbing shared by the apps: domain errors become HTTP answers with field errors."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from retrovue.errors import ConfigError

from .errors import ServiceError


def exception_handler(exc, context):
    if isinstance(exc, ConfigError):
        return Response(exc.errors, status=400)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": f"the request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"},
                        status=413)
    if isinstance(exc, ServiceError):
        return Response({"detail": str(exc), **exc.details}, status=exc.http_status)
    return drf_exception_handler(exc, context)
