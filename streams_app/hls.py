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


def output_bitrate_kbps(folder, segments=3):
    """The channel's output bitrate over its newest finished HLS segments (bytes over #EXTINF
    seconds): FFmpeg's -progress reports no bitrate for a tee output, and the TS muxed into
    each segment is what leaves on UDP too. None until a segment exists."""
    try:
        lines = (folder / "index.m3u8").read_text().splitlines()
    except OSError:
        return None
    entries = [(float(line[8:].split(",")[0]), lines[i + 1].strip())
               for i, line in enumerate(lines[:-1]) if line.startswith("#EXTINF:")]
    seconds = size = 0.0
    for duration, name in entries[-segments:]:
        try:
            size += (folder / name).stat().st_size
        except OSError:
            continue  # deleted from the window meanwhile
        seconds += duration
    return round(size * 8 / seconds / 1000, 1) if seconds else None


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
