"""The IPTV client surface: what players and media servers need to add RetroVue's channels
without knowing its API.

- `GET /iptv/channels.m3u`: extended M3U of every channel (tvg-id `retrovue.<number>`), its
  `url-tvg` pointing at the guide. Every channel is listed, running or not, so the lineup players
  and media servers map (favourites, DVR rules) stays put while channels stop and start; a
  stopped channel's stream answers 503.
- `GET /iptv/xmltv.xml`: XMLTV guide of every channel from `channel_segments`, the same
  resolution of schedules the playout uses: what airs from the last few hours (so the current
  programme keeps its real start) to a day ahead. Gaps show as one programme titled after the
  filler asset (or the channel), so guides have no holes; an unscheduled channel is one long
  programme named after the channel.
- `GET /iptv/channels/<number>.ts`: the live channel as one continuous MPEG-TS body over HTTP
  (viewers.py). It follows the channel's own HLS window (the segments its one FFmpeg already
  writes): a new viewer gets the newest segments at once, then each new one as the playlist
  lists it (polled every 0.25 s). The segments come from one muxer, so continuity counters and
  timestamps run on across them. Viewers share the pipeline; under ASGI each is a coroutine,
  never a thread the API needs, and never an FFmpeg. The body ends when the client goes or no
  segment arrives for 10 s (the channel stopped).
- `GET /discover.json`, `/lineup.json`, `/lineup_status.json`: HDHomeRun emulation (field
  names as SiliconDust's devices and Jellyfin's HdHomerun tuner host read them), so Plex and
  Jellyfin can add RetroVue as a network tuner. TunerCount is the number of channels: viewers
  share each channel's pipeline, so a client may watch or record every channel at once.

Access is public by default, like /hls/: players and tuner clients rarely send credentials.
With RETROVUE_IPTV_TOKEN set, every endpoint here requires `?token=<token>` (403 otherwise)
and every URL they generate carries it, so a player given the M3U URL needs nothing else.
"""
import hmac
import inspect
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from urllib.parse import urlencode
from xml.etree.ElementTree import Element, SubElement, tostring

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from channels_app.models import Channel
from channels_app.programming import channel_segments

from .models import TunerDevice

log = logging.getLogger("retrovue.iptv")
GUIDE_LOOKBACK_HOURS = 6
GUIDE_HOURS = 24
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def token_refusal(request):
    """With RETROVUE_IPTV_TOKEN set, a 403 unless `?token=` matches it."""
    token = settings.RETROVUE_IPTV_TOKEN
    given = request.GET.get("token", "")
    if token and not hmac.compare_digest(given.encode(), token.encode()):
        return HttpResponseForbidden("a valid ?token= is required\n", content_type="text/plain")
    return None


def gated(view):
    """GET only, behind the IPTV token; for plain and async views (the live TS view is async)."""
    if inspect.iscoroutinefunction(view):
        @wraps(view)
        async def check(request, *args, **kwargs):
            return token_refusal(request) or await view(request, *args, **kwargs)
    else:
        @wraps(view)
        def check(request, *args, **kwargs):
            return token_refusal(request) or view(request, *args, **kwargs)
    return require_GET(check)


def absolute_url(request, name, **kwargs):
    """The absolute URL of one of these endpoints, carrying the access token when one is set."""
    url = request.build_absolute_uri(reverse(name, kwargs=kwargs))
    token = settings.RETROVUE_IPTV_TOKEN
    return f"{url}?{urlencode({'token': token})}" if token else url


def one_line(text):
    """Text safe for a single-line field: no control characters, whitespace collapsed."""
    return " ".join(CONTROL.sub("", text).split())


def tvg_id(channel):
    return f"retrovue.{channel.number}"


# --- M3U ---------------------------------------------------------------------------------------

def m3u(channels, guide_url, stream_url):
    """Extended M3U; `stream_url(channel)` gives each entry's URL."""
    # Some players read the guide's address from url-tvg, others from x-tvg-url.
    lines = [f'#EXTM3U url-tvg="{guide_url}" x-tvg-url="{guide_url}"']
    for channel in channels:
        name = one_line(channel.name)
        quoted = name.replace('"', "'")  # attribute values cannot hold a double quote
        lines += [f'#EXTINF:-1 tvg-id="{tvg_id(channel)}" tvg-name="{quoted}" tvg-chno="{channel.number}" '
                  f'group-title="RetroVue",{name}',
                  stream_url(channel)]
    return "\n".join(lines) + "\n"


@gated
def playlist(request):
    body = m3u(Channel.objects.all(), absolute_url(request, "iptv-guide"),
               lambda channel: absolute_url(request, "iptv-stream", number=channel.number))
    return HttpResponse(body, content_type="audio/x-mpegurl; charset=utf-8")


# --- XMLTV -------------------------------------------------------------------------------------

@dataclass
class Airing:
    start: datetime
    stop: datetime
    title: str
    description: str
    kind: str


def airings(channel, now):
    """What the channel airs from the current programme to GUIDE_HOURS ahead, gaps merged.

    The window opens GUIDE_LOOKBACK_HOURS before the hour, so a programme that began within
    that time keeps its real start and the listing stays the same all hour."""
    since = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=GUIDE_LOOKBACK_HOURS)
    merged = []
    for segment in channel_segments(channel, since, now + timedelta(hours=GUIDE_HOURS)):
        title = one_line(segment.title) or one_line(channel.name)
        last = merged[-1] if merged else None
        if last and segment.kind != "program" and (last.kind, last.title) == (segment.kind, title):
            last.stop = segment.end
        else:
            merged.append(Airing(segment.start, segment.end, title, segment.description, segment.kind))
    return [airing for airing in merged if airing.stop > now]


def xmltv_time(moment):
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S +0000")


def xmltv(channels, now):
    """An XMLTV document (valid against xmltv.dtd): every channel, then their programmes."""
    tv = Element("tv", {"generator-info-name": "RetroVue"})
    for channel in channels:
        node = SubElement(tv, "channel", id=tvg_id(channel))
        SubElement(node, "display-name").text = one_line(channel.name)
        SubElement(node, "display-name").text = str(channel.number)
    for channel in channels:
        try:
            listed = airings(channel, now)
        except (OverflowError, ValueError) as exc:  # one channel's data never breaks everyone's guide
            log.warning("guide: channel %s left without programmes: %s", channel.number, exc)
            continue
        for airing in listed:
            programme = SubElement(tv, "programme", start=xmltv_time(airing.start),
                                   stop=xmltv_time(airing.stop), channel=tvg_id(channel))
            SubElement(programme, "title").text = airing.title
            if description := CONTROL.sub("", airing.description).strip():
                SubElement(programme, "desc").text = description
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n'
            + tostring(tv, encoding="unicode") + "\n")


@gated
def guide(request):
    channels = list(Channel.objects.select_related("current_schedule"))
    return HttpResponse(xmltv(channels, timezone.now()), content_type="application/xml; charset=utf-8")


# --- HDHomeRun emulation -----------------------------------------------------------------------

@gated
def discover(request):
    return JsonResponse({
        "FriendlyName": "RetroVue",
        "Manufacturer": "Silicondust",
        "ModelNumber": "HDTC-2US",
        "FirmwareName": "hdhomeruntc_atsc",
        "FirmwareVersion": "20190621",
        "DeviceID": TunerDevice.current().device_id,
        "DeviceAuth": "retrovue",
        "BaseURL": request.build_absolute_uri("/").rstrip("/"),
        "LineupURL": absolute_url(request, "hdhr-lineup"),
        "TunerCount": max(1, Channel.objects.count()),
    })


@gated
def lineup(request):
    return JsonResponse([{"GuideNumber": str(channel.number), "GuideName": channel.name,
                          "URL": absolute_url(request, "iptv-stream", number=channel.number)}
                         for channel in Channel.objects.all()], safe=False)


@gated
def lineup_status(request):
    return JsonResponse({"ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"]})
