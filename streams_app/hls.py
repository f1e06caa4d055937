"""Serving each channel's rolling HLS window at /hls/<number>/ (public, like any IPTV head-end)."""
import re

from django.conf import settings
from django.http import FileResponse, Http404

HLS_FILE = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(m3u8|ts)$")
CONTENT_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t"}


def channel_dir(number):
    """Where a channel's runtime files live (playlist, slate text, the HLS window)."""
    return settings.RETROVUE_DATA_DIR / "channels" / str(number)


def hls_dir(number):
    return channel_dir(number) / "hls"


def hls_file(request, number, filename):
    match = HLS_FILE.match(filename)
    if not match:
        raise Http404("no such HLS file")
    path = hls_dir(number) / filename
    try:
        handle = open(path, "rb")
    except OSError:
        raise Http404("no such HLS file") from None
    response = FileResponse(handle, content_type=CONTENT_TYPES[match.group(1)])
    response["Cache-Control"] = "no-cache" if match.group(1) == "m3u8" else "max-age=60"
    response["Access-Control-Allow-Origin"] = "*"
    return response
