"""The media library: files under the media roots (or http(s) URLs) probed with ffprobe.

Importing records what scheduling needs to know before anything airs: a duration to lay
programs out on the timeline, and the codecs, size and rate that decide whether a copy-mode
channel can pass an asset through. A source ffprobe cannot read is refused with its reason.
"""
import ipaddress
import json
import socket
import subprocess
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from django.conf import settings

from retrovue.errors import ConfigError

from . import validation
from .models import MediaAsset

MEDIA_EXTENSIONS = {".mp4", ".mkv", ".mov", ".ts", ".m2ts", ".avi", ".webm", ".mpg", ".mpeg", ".m4v", ".flv"}
PROBE_TIMEOUT_S = 30
URL_PROBE_TIMEOUT_S = 10  # a web request thread waits on it: a URL that does not answer is refused soon
# ffprobe may only open what the source names: a file under the roots reads no network, a URL
# no local file.
FILE_PROTOCOLS = "file"
URL_PROTOCOLS = "http,https,tcp,tls,crypto"
MAX_SOURCE = MediaAsset._meta.get_field("source").max_length


def is_url(text):
    return isinstance(text, str) and text[:8].lower().startswith(("http://", "https://"))


def check_source(raw, field="path"):
    """The normalised source: an http(s) URL as given, or the resolved path of an existing file
    under the media roots (the same check as channel playlists)."""
    if isinstance(raw, str) and len(raw) > MAX_SOURCE:
        raise ConfigError({field: [f"longer than {MAX_SOURCE} characters"]})
    if is_url(raw):
        try:
            valid = bool(urlsplit(raw).hostname) and not any(c.isspace() or ord(c) < 32 for c in raw)
        except ValueError:
            valid = False
        if not valid:
            raise ConfigError({field: [f"'{raw}' is not a valid http(s) URL"]})
        return raw
    try:
        return validation.validate_playlist([raw], settings.RETROVUE_MEDIA_ROOTS)[0]
    except ConfigError as exc:
        raise ConfigError({field: exc.errors["playlist[0]"]}) from None


def _rate(text):
    """'30000/1001' -> 29.97; None for '0/0' or nothing."""
    try:
        num, _, den = str(text or "").partition("/")
        value = float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return round(value, 3) if value > 0 else None


def url_destination(url, field="path"):
    """The address an http(s) URL's host resolves to, checked: loopback, private, link-local,
    multicast and other non-internet destinations are refused unless RETROVUE_MEDIA_URL_NETWORKS
    allows them (the media library must not be a way to probe the head-end's own network)."""
    parts = urlsplit(url)
    default_port = 443 if parts.scheme.lower() == "https" else 80
    try:
        found = socket.getaddrinfo(parts.hostname, parts.port or default_port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        raise ConfigError({field: [f"refused: '{parts.hostname}' cannot be resolved"]}) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    for address in addresses:
        allowed = any(address in n for n in settings.RETROVUE_MEDIA_URL_NETWORKS if n.version == address.version)
        if not allowed and (not address.is_global or address.is_multicast):
            raise ConfigError({field: [f"refused: {parts.hostname} is not an internet address; "
                                       "RETROVUE_MEDIA_URL_NETWORKS lists the local networks media may come from"]})
    return addresses[0]


def url_probe_args(url, field):
    """ffprobe's input for a URL: for http, the checked address itself with the original Host
    header (no second lookup that could answer differently); for https the name (TLS needs it
    for the server's certificate and virtual host), resolved and checked just before."""
    address = url_destination(url, field)
    parts = urlsplit(url)
    options = ["-protocol_whitelist", URL_PROTOCOLS, "-rw_timeout", str(URL_PROBE_TIMEOUT_S * 1_000_000)]
    if parts.scheme.lower() != "http":
        return options, url
    host = f"[{address}]" if address.version == 6 else str(address)
    pinned = parts._replace(netloc=f"{host}:{parts.port or 80}").geturl()
    return [*options, "-headers", f"Host: {parts.netloc.rpartition('@')[2]}\r\n"], pinned


def probe_media(source, field="path"):
    """ffprobe's view of a source: (MediaAsset fields, the container's tags with lower-case
    names); ConfigError with ffprobe's reason (for a URL only that it could not be read: what
    answered there is not echoed)."""
    argv = [settings.RETROVUE_FFPROBE, "-v", "error", "-of", "json", "-show_format", "-show_streams",
            "-show_chapters"]
    timeout, target = PROBE_TIMEOUT_S, source
    if is_url(source):
        options, target = url_probe_args(source, field)
        argv += options
        timeout = URL_PROBE_TIMEOUT_S
    else:
        argv += ["-protocol_whitelist", FILE_PROTOCOLS]
    try:
        done = subprocess.run([*argv, target], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError({field: [f"ffprobe gave no answer within {timeout}s"]}) from None
    if done.returncode != 0:
        if is_url(source):
            raise ConfigError({field: ["refused: ffprobe could not read media at that URL"]})
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise ConfigError({field: [f"ffprobe cannot read it: {lines[-1] if lines else 'no reason given'}"]})
    info = json.loads(done.stdout or "{}")
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    durations = [info.get("format", {}).get("duration")] + [s.get("duration") for s in streams]
    duration = max((float(d) for d in durations if d not in (None, "N/A")), default=0.0)
    if video is None:
        raise ConfigError({field: ["ffprobe found no video stream in it"]})
    if duration <= 0:
        raise ConfigError({field: ["ffprobe found no duration (a live stream or a broken file?)"]})
    fields = {
        "duration_s": round(duration, 3),
        "video_codec": video.get("codec_name", ""),
        "audio_codec": (audio or {}).get("codec_name", ""),
        "width": video.get("width"),
        "height": video.get("height"),
        "frame_rate": _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")),
        "audio_sample_rate": int(audio["sample_rate"]) if audio and audio.get("sample_rate") else None,
        "chapters": _chapter_starts(info.get("chapters", [])),
    }
    tags = {str(name).lower(): str(value) for name, value in info.get("format", {}).get("tags", {}).items()}
    return fields, tags


def _chapter_starts(chapters):
    """Each chapter's start time in seconds, in order (the first is usually 0)."""
    starts = []
    for chapter in chapters:
        try:
            starts.append(round(float(chapter["start_time"]), 3))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(starts)


def probe(source, field="path"):
    """ffprobe's view of a source as MediaAsset fields."""
    return probe_media(source, field)[0]


def default_title(source):
    path = PurePosixPath(urlsplit(source).path if is_url(source) else source)
    return (path.stem or urlsplit(source).hostname or source)[:200]


def import_source(source, field="path"):
    """Probe a checked source and record it; re-importing a source updates its probe (and keeps
    a title someone edited). Returns (asset, created)."""
    fields = {**probe(source, field), "missing_since": None}
    return MediaAsset.objects.update_or_create(
        source=source, defaults=fields, create_defaults={**fields, "title": default_title(source)})


def import_media(raw, field="path"):
    return import_source(check_source(raw, field), field)


def known_asset(source):
    """The recorded asset of a source, unless its file changed since it was probed or a
    library scan found it gone (it is back: importing it again clears that)."""
    asset = MediaAsset.objects.filter(source=source, missing_since=None).first()
    if asset is None or is_url(source):
        return asset
    modified = datetime.fromtimestamp(Path(source).stat().st_mtime, dt_timezone.utc)
    return asset if modified <= asset.probed_at else None


def resolve_asset(ref, field="asset"):
    """An asset by id (a number, or {"id": n} as the API shows it) or by source; a source not
    yet imported (or changed since) is imported now."""
    if isinstance(ref, dict) and "id" in ref:
        ref = ref["id"]
    if ref in (None, ""):
        raise ConfigError({field: ["required: an asset id or a file path"]})
    by_id = isinstance(ref, int) and not isinstance(ref, bool)
    if by_id or (isinstance(ref, str) and ref.strip().isdigit()):
        asset = MediaAsset.objects.filter(pk=int(ref)).first()
        if asset is None:
            raise ConfigError({field: [f"no media asset {ref}"]})
        return asset
    source = check_source(ref, field)
    return known_asset(source) or import_source(source, field)[0]


def check_folder(folder, field="folder"):
    """The resolved path of an existing folder under the media roots."""
    path = Path(str(folder)).expanduser().resolve()
    if not any(path.is_relative_to(root) for root in settings.RETROVUE_MEDIA_ROOTS):
        roots = ":".join(str(r) for r in settings.RETROVUE_MEDIA_ROOTS)
        raise ConfigError({field: [f"'{folder}' is outside the media roots ({roots})"]})
    if not path.is_dir():
        raise ConfigError({field: [f"'{folder}' does not exist or is not a folder"]})
    return path


def find_media(folder):
    """Media files under a folder (recursively, by extension), or the one file named."""
    path = Path(str(folder)).expanduser().resolve()
    if path.is_file():
        return [path]
    path = check_folder(folder)
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in MEDIA_EXTENSIONS and p.is_file())


def import_files(paths, step=lambda: None):
    """Import each file; one already imported and unchanged since (mtime not after its probe)
    is skipped, one ffprobe refuses is reported with the reason. `step` runs after each file."""
    summary = {"imported": [], "skipped": [], "failed": []}
    for path in paths:
        try:
            source = check_source(str(path))
            if known_asset(source):
                summary["skipped"].append(source)
            else:
                summary["imported"].append(import_source(source)[0].source)
        except ConfigError as exc:
            summary["failed"].append({"path": str(path), "reason": " ".join(exc.errors["path"])})
        step()
    return summary


def asset_ref(asset):
    return {"id": asset.pk, "source": asset.source} if asset else None


def asset_data(asset):
    return {
        "id": asset.pk, "source": asset.source, "title": asset.title, "duration_s": asset.duration_s,
        "video_codec": asset.video_codec, "audio_codec": asset.audio_codec, "width": asset.width,
        "height": asset.height, "resolution": asset.resolution, "frame_rate": asset.frame_rate,
        "audio_sample_rate": asset.audio_sample_rate, "probed_at": asset.probed_at,
    }
