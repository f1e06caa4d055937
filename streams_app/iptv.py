"""The IPTV client surface: what players and media servers need to add RetroVue's channels
without knowing its API.

- `GET /iptv/channels.m3u`: extended M3U of every channel (tvg-id `retrovue.<number>`), its
  `url-tvg` pointing at the guide. Every channel is listed, running or not, so the lineup players
  and media servers map (favourites, DVR rules) stays put while channels stop and start; a
  stopped channel's stream answers 503. Players that take the name after the line's last comma
  get it whole: a comma in it is written as U+201A, which looks the same.
  Each entry names its group (`group-title`, the channel's group or "RetroVue") and, when the
  channel has one, its logo (`tvg-logo`).
- `GET /iptv/logos/<number>.<png|jpg>`: a channel's logo (channels_app/logos.py), cacheable for
  an hour and revalidated by its ETag; the guide's channels show it as their icon.
- `GET /iptv/xmltv.xml`: XMLTV guide of every channel (xmltv.py) from `channel_segments`, the
  same resolution of schedules the playout uses: what airs from the current programme (with its
  real start) to two days ahead, each programme with its asset's metadata (listings.py). Gaps
  show as one programme titled after the filler asset (or the channel), so guides have no holes;
  an unscheduled channel is one long programme named after the channel. A rendered guide is
  served again for up to a minute while no channel or schedule changes.
- `GET /iptv/artwork/<asset id>.<jpg|png>`: a programme's artwork, the guide's icon for it: only
  the image file its asset records, and only under the media roots; cached as logos are.
- `GET /iptv/channels/<number>.ts`: the live channel as one continuous MPEG-TS body over HTTP
  (viewers.py). It follows the channel's own HLS window (the segments its one FFmpeg already
  writes): a new viewer gets the newest segments at once, then each new one as the playlist
  lists it (polled every 0.25 s). The segments come from one muxer, so continuity counters and
  timestamps run on across them. Viewers share the pipeline; under ASGI each is a coroutine,
  never a thread the API needs, and never an FFmpeg. The body ends when the client goes or no
  segment arrives for 10 s (the channel stopped).
- `GET /discover.json`, `/lineup.json`, `/lineup_status.json`, `/device.xml` (UPnP) and
  `POST /lineup.post` (a channel scan, which has nothing to do): HDHomeRun emulation (field
  names as SiliconDust's devices and Jellyfin's HdHomerun tuner host read them), so Plex and
  Jellyfin can add RetroVue as a network tuner; `manage.py discovery` (discovery.py) lets them
  find it. TunerCount is RETROVUE_TUNER_COUNT, by default the number of channels: viewers share
  each channel's pipeline, so a client may watch or record every channel at once. The lineup
  leaves out channels stopped for good (stopped and not running): a tuner never gets a channel
  whose stream answers 503.

Access is public by default, like /hls/: players and tuner clients rarely send credentials.
With RETROVUE_IPTV_TOKEN set, every endpoint here requires the token (403 otherwise), in the
path (`/iptv/t/<token>/...` serves all of them) or as `?token=`. Every URL they generate uses
the path form, so a player given one URL needs nothing else, and a client that appends its own
query to a stream URL (Jellyfin adds `?transcode=...`) keeps the token.
"""
import hmac
import inspect
import os
import uuid
from functools import cache, partial, wraps
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, tostring

from django.conf import settings
from django.core.cache import caches
from django.db.models import Count, Max, Q
from django.http import Http404, HttpResponse, HttpResponseForbidden, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from channels_app import logos
from channels_app.models import Channel, MediaAsset, Schedule
from library_app.models import ChannelProgramming

from .listings import one_line
from .models import TunerDevice
from .xmltv import tvg_id, xmltv

# Artwork files the guide serves, by extension, and the extension of their URLs.
ARTWORK_EXTENSIONS = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png"}
# Where iptv_urls mounts every endpoint again under /iptv/t/<token>/.
TOKEN_NAMESPACE = "iptv-token"
# What the tuner says it is. Not an HDTC model: Jellyfin takes any model containing "HDTC" for a
# transcoding tuner and asks for `?transcode=internet540` (RetroVue never transcodes per viewer),
# so this is an HDHomeRun 5 (ATSC), whose streams are served as they are.
MODEL_NUMBER = "HDHR5-4US"
FIRMWARE_NAME = "hdhomerun5_atsc"
# UDNs of this installation's tuner: a uuid5 of its device id in this namespace.
UDN_NAMESPACE = uuid.UUID("5a0c1d36-4f4e-4b8e-9c51-7d0e7e2f1a0b")
# Audio codecs of stream_settings as HDHomeRun lineups name them. A copy channel passes H.264
# and AAC through (channels_app.schedules.copy_mode_errors holds its sources to them).
AUDIO_CODEC_NAMES = {"aac": "AAC", "ac3": "AC3", "eac3": "EAC3", "mp2": "MP2", "copy": "AAC"}


def token_refusal(request, path_token=None):
    """With RETROVUE_IPTV_TOKEN set, a 403 unless the token in the path (or else `?token=`) matches it."""
    token = settings.RETROVUE_IPTV_TOKEN
    given = path_token if path_token is not None else request.GET.get("token", "")
    if token and not hmac.compare_digest(given.encode(), token.encode()):
        return HttpResponseForbidden("a valid token is required\n", content_type="text/plain")
    return None


def token_gated(view):
    """Behind the IPTV token, for plain and async views (the live TS view is async). The token
    comes as the `token` URL argument (the /iptv/t/<token>/ mount) or as `?token=`."""
    if inspect.iscoroutinefunction(view):
        @wraps(view)
        async def check(request, *args, token=None, **kwargs):
            return token_refusal(request, token) or await view(request, *args, **kwargs)
    else:
        @wraps(view)
        def check(request, *args, token=None, **kwargs):
            return token_refusal(request, token) or view(request, *args, **kwargs)
    return check


def gated(view):
    """GET only, behind the IPTV token."""
    return require_GET(token_gated(view))


def site_root(request):
    return request.build_absolute_uri("/").rstrip("/")


def rooted_url(root, name, **kwargs):
    """`root` + the path of one of these endpoints; with a token set, its path that carries it."""
    token = settings.RETROVUE_IPTV_TOKEN
    if token:
        return root + reverse(f"{TOKEN_NAMESPACE}:{name}", kwargs={"token": token, **kwargs})
    return root + reverse(name, kwargs=kwargs)


def absolute_url(request, name, **kwargs):
    """The absolute URL of one of these endpoints, carrying the access token when one is set."""
    return rooted_url(site_root(request), name, **kwargs)


def tuner_base_url(root):
    """Where a tuner client finds discover.json, lineup.json and device.xml (its BaseURL)."""
    return rooted_url(root, "hdhr-discover").removesuffix("/discover.json")


def tuner_count():
    return settings.RETROVUE_TUNER_COUNT or max(1, Channel.objects.count())


def device_udn(device_id):
    return f"uuid:{uuid.uuid5(UDN_NAMESPACE, device_id)}"


def absolute_logo_url(request, channel):
    """The absolute URL of the channel's logo (carrying the token when one is set), or None."""
    if not channel.logo:
        return None
    return absolute_url(request, "iptv-logo", number=channel.number, ext=logos.extension(channel))


# --- M3U ---------------------------------------------------------------------------------------

def attribute(text):
    """Text for a quoted attribute value, which cannot hold a double quote."""
    return one_line(text).replace('"', "'")


def m3u(channels, guide_url, stream_url, logo_url):
    """Extended M3U; `stream_url(channel)` gives each entry's URL, `logo_url(channel)` its logo's
    (or None)."""
    # Some players read the guide's address from url-tvg, others from x-tvg-url.
    lines = [f'#EXTM3U url-tvg="{guide_url}" x-tvg-url="{guide_url}"']
    for channel in channels:
        shown = one_line(channel.name).replace(",", "\u201a")  # some players read the name after the last comma
        icon = logo_url(channel)
        logo_attribute = f' tvg-logo="{attribute(icon)}"' if icon else ""
        lines += [f'#EXTINF:-1 tvg-id="{tvg_id(channel)}" tvg-name="{attribute(channel.name)}" '
                  f'tvg-chno="{channel.number}"{logo_attribute} '
                  f'group-title="{attribute(channel.group) or "RetroVue"}",{shown}',
                  stream_url(channel)]
    return "\n".join(lines) + "\n"


@gated
def playlist(request):
    body = m3u(Channel.objects.all(), absolute_url(request, "iptv-guide"),
               lambda channel: absolute_url(request, "iptv-stream", number=channel.number),
               lambda channel: absolute_logo_url(request, channel))
    return HttpResponse(body, content_type="audio/x-mpegurl; charset=utf-8")


# --- Logos and artwork -------------------------------------------------------------------------

def image_response(request, path, ext):
    """An image players fetch without credentials, often, for every channel or programme: it may
    be cached for an hour, then revalidated by its ETag (a replaced file changes it)."""
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            data = file.read()
    except OSError:
        raise Http404("no such image") from None
    response = HttpResponse(data, content_type=logos.CONTENT_TYPES[ext])
    response["ETag"] = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    response["Last-Modified"] = http_date(stat.st_mtime)
    response["Cache-Control"] = "public, max-age=3600"
    response["Access-Control-Allow-Origin"] = "*"
    return get_conditional_response(request, etag=response["ETag"], last_modified=int(stat.st_mtime),
                                    response=response)


@gated
def channel_logo(request, number, ext):
    channel = Channel.objects.filter(number=number).only("id", "number", "logo").first()
    if channel is None or not channel.logo or logos.extension(channel) != ext:
        raise Http404("no such logo")
    return image_response(request, logos.logo_path(channel), ext)


def artwork_extension(path):
    """The URL extension ("jpg" or "png") of an artwork file's path, or None for another file."""
    return ARTWORK_EXTENSIONS.get(os.path.splitext(path)[1].lower())


def artwork_url(root, asset):
    """`root` + the URL of the asset's artwork (carrying the token when one is set), or None."""
    ext = artwork_extension(asset.artwork)
    return rooted_url(root, "iptv-artwork", asset_id=asset.pk, ext=ext) if ext else None


def artwork_urls(root):
    """`artwork_url` for a whole guide: each asset's URL is worked out once, however often it airs."""
    return cache(partial(artwork_url, root))


def servable_artwork(recorded):
    """The recorded artwork file, resolved, when it is an image under the media roots; else None."""
    if not recorded or "\0" in recorded:
        return None
    path = Path(recorded).resolve()
    under_roots = any(path.is_relative_to(root) for root in settings.RETROVUE_MEDIA_ROOTS)
    return path if under_roots and artwork_extension(path.name) else None


@gated
def asset_artwork(request, asset_id, ext):
    """A programme's artwork: only the file its asset records, and only an image under the media
    roots (the guide's icon for it)."""
    recorded = MediaAsset.objects.filter(pk=asset_id).values_list("artwork", flat=True).first()
    path = servable_artwork(recorded)
    if path is None or artwork_extension(path.name) != ext:
        raise Http404("no such artwork")
    return image_response(request, path, ext)


# --- XMLTV -------------------------------------------------------------------------------------

GUIDE_FRESH_SECONDS = 60  # a guide is rendered at most once a minute per address it is asked at


def guide_version():
    """What a rendered guide depends on, as one value: the channels (a change of a channel or
    of its schedule touches its updated_at), hand-edited schedules and rule-built ones."""
    return (Channel.objects.aggregate(Max("updated_at"), Count("pk")),
            Schedule.objects.aggregate(Max("updated_at")), ChannelProgramming.objects.aggregate(Max("built_at")))


@gated
def guide(request):
    """The XMLTV guide; guide clients (Plex, Jellyfin, players) fetch it often and it reads days
    of programmes, so it is rendered again only when its inputs change or a minute has passed."""
    now, root = timezone.now(), site_root(request)
    key = f"xmltv:{root}:{int(now.timestamp()) // GUIDE_FRESH_SECONDS}:{hash(repr(guide_version()))}"
    body = caches["default"].get(key)
    if body is None:
        channels = list(Channel.objects.select_related("current_schedule"))
        body = xmltv(channels, now, lambda channel: absolute_logo_url(request, channel), artwork_urls(root))
        caches["default"].set(key, body, GUIDE_FRESH_SECONDS)
    return HttpResponse(body, content_type="application/xml; charset=utf-8")


# --- HDHomeRun emulation -----------------------------------------------------------------------

@gated
def discover(request):
    return JsonResponse({
        "FriendlyName": "RetroVue",
        "Manufacturer": "Silicondust",
        "ModelNumber": MODEL_NUMBER,
        "FirmwareName": FIRMWARE_NAME,
        "FirmwareVersion": "20190621",
        "DeviceID": TunerDevice.current().device_id,
        "DeviceAuth": "retrovue",
        "BaseURL": tuner_base_url(site_root(request)),
        "LineupURL": absolute_url(request, "hdhr-lineup"),
        "TunerCount": tuner_count(),
    })


def device_xml(device_id, base_url):
    """The UPnP root device description SSDP's LOCATION points at."""
    root = Element("root", xmlns="urn:schemas-upnp-org:device-1-0")
    spec = SubElement(root, "specVersion")
    SubElement(spec, "major").text = "1"
    SubElement(spec, "minor").text = "0"
    SubElement(root, "URLBase").text = base_url
    device = SubElement(root, "device")
    for tag, text in (("deviceType", "urn:schemas-upnp-org:device:MediaServer:1"), ("friendlyName", "RetroVue"),
                      ("manufacturer", "Silicondust"), ("modelName", MODEL_NUMBER),
                      ("modelNumber", MODEL_NUMBER), ("serialNumber", device_id), ("UDN", device_udn(device_id))):
        SubElement(device, tag).text = text
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode") + "\n"


@gated
def device_description(request):
    body = device_xml(TunerDevice.current().device_id, tuner_base_url(site_root(request)))
    return HttpResponse(body, content_type="application/xml; charset=utf-8")


def lineup_channels():
    """Every channel but those stopped for good (stopped, not running, not started by a tune)."""
    stopped = Q(desired_state=Channel.Desired.STOPPED) & ~Q(status=Channel.Status.RUNNING) & Q(on_demand=False)
    return Channel.objects.exclude(stopped).select_related("config")


def video_codec_name(codec):
    """HDHomeRun's name of what a stream_settings video_codec (or its encoder) produces."""
    if "265" in codec or "hevc" in codec:
        return "HEVC"
    return "MPEG2" if codec == "mpeg2video" else "H264"  # copy passes H.264 through


def lineup_entry(channel, url):
    config = getattr(channel, "config", None)
    stream = config.stream_settings if config else {}
    height = int(stream.get("resolution", "0x0").split("x")[1])
    return {"GuideNumber": str(channel.number), "GuideName": channel.name,
            "VideoCodec": video_codec_name(stream.get("video_codec", "h264")),
            "AudioCodec": AUDIO_CODEC_NAMES.get(stream.get("audio_codec"), "AAC"),
            "HD": int(height >= 720), "URL": url}


@gated
def lineup(request):
    return JsonResponse([lineup_entry(channel, absolute_url(request, "iptv-stream", number=channel.number))
                         for channel in lineup_channels()], safe=False)


@gated
def lineup_status(request):
    return JsonResponse({"ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"]})


@csrf_exempt
@require_POST
@token_gated
def lineup_post(request):
    """Plex's `?scan=start` / `?scan=abort`: the lineup is always current, so a scan is done at once."""
    return HttpResponse(b"", content_type="text/plain")
