"""The database away is an outage, not a bug: a 503 with Retry-After and one line of reason,
never a traceback: JSON on the API, plain text on the pages, the IPTV surface and the admin
(DRF re-raises what its exception handler leaves, so this one place answers for both)."""
import logging

from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse

log = logging.getLogger("retrovue.outage")
RETRY_AFTER_SECONDS = 5
REASON = "the database is unavailable; try again shortly"


def outage_response(json=True):
    response = JsonResponse({"detail": REASON}, status=503) if json else \
        HttpResponse(REASON + "\n", status=503, content_type="text/plain")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseOutageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DatabaseError):
            return None
        log.warning("%s %s: database unavailable: %s", request.method, request.path, exception)
        return outage_response(json=request.path.startswith("/api/"))
