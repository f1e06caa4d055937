"""Serving each channel's rolling HLS window at /hls/<number>/ (public, like any IPTV head-end)."""
import os
import re

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse

from .playout.argv import HLS_SEGMENT_SECONDS

HLS_FILE = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(m3u8|ts)$")
CONTENT_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t"}


def channel_dir(number):
    """Where a channel's runtime files live (playlist, slate text, the HLS window)."""
    return settings.RETROVUE_DATA_DIR / "channels" / str(number)


def hls_dir(number):
    return channel_dir(number) / "hls"


PACKET = 188
STALE_SEGMENTS = 3  # no new segment for this many segment durations: the leg is failing


def window(folder):
    """(media sequence, [(EXTINF line, segment name, size or None if gone)], header lines) of
    the playlist FFmpeg writes, or None when it is missing or not a playlist (its write failed)."""
    try:
        lines = (folder / "index.m3u8").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != "#EXTM3U":
        return None
    header = [line for line in lines if line.startswith("#") and not line.startswith(("#EXTINF:", "#EXT-X-ENDLIST"))]
    sequence = next((int(line.partition(":")[2]) for line in header if line.startswith("#EXT-X-MEDIA-SEQUENCE:")), 0)
    entries = []
    for extinf, name in zip(lines, lines[1:]):
        if extinf.startswith("#EXTINF:") and HLS_FILE.match(name):
            try:
                size = (folder / name).stat().st_size
            except OSError:
                size = None
            entries.append((extinf, name, size))
    return sequence, entries, header


def whole(size):
    """A segment written out: some TS packets, none cut (a failed write leaves 0 or a partial block)."""
    return bool(size) and size % PACKET == 0


def served_window(folder):
    """What players may see: the segments up to the first empty or truncated one (a write
    that failed, e.g. a full disk), leading ones (and ones rotated out) dropped with the media
    sequence advanced, as the window slides anyway. (media sequence, entries, header), or None
    with nothing whole."""
    found = window(folder)
    if found is None:
        return None
    sequence, entries, header = found
    while entries and not whole(entries[0][2]):
        entries, sequence = entries[1:], sequence + 1
    cut = next((i for i, (_, _, size) in enumerate(entries) if size is not None and not whole(size)), len(entries))
    return (sequence, entries[:cut], header) if cut else None


def leg_problem(folder, running_for, now):
    """Why the HLS leg is failing, or None: its playlist is missing or unreadable, its newest
    segment is empty or truncated, or no segment came for STALE_SEGMENTS durations. FFmpeg says
    nothing when its HLS writes fail (a full disk): only its output tells."""
    grace = STALE_SEGMENTS * HLS_SEGMENT_SECONDS
    found = window(folder)
    if found is None or not found[1]:
        return None if running_for < grace else "no HLS playlist"
    name, size = found[1][-1][1:]
    if not whole(size):
        return f"segment {name} is {'empty' if not size else f'truncated ({size} bytes)'}"
    try:
        age = now - (folder / name).stat().st_mtime
    except OSError:
        return None  # rotated out meanwhile: a newer one exists
    if age > grace and running_for > grace:
        return f"no new HLS segment for {age:.0f}s"
    return None


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


def playlist_text(served):
    sequence, entries, header = served
    header = [f"#EXT-X-MEDIA-SEQUENCE:{sequence}" if line.startswith("#EXT-X-MEDIA-SEQUENCE:") else line
              for line in header]
    return "\n".join([*header, *(line for extinf, name, _ in entries for line in (extinf, name))]) + "\n"


def hls_file(request, number, filename):
    """A channel's playlist (only whole segments: `served_window`) or one of its whole segments;
    an empty or truncated one is never served."""
    match = HLS_FILE.match(filename)
    if not match:
        raise Http404("no such HLS file")
    folder = hls_dir(number)
    if match.group(1) == "m3u8":
        served = served_window(folder)
        if served is None:
            raise Http404("no HLS window yet")
        response = HttpResponse(playlist_text(served), content_type=CONTENT_TYPES["m3u8"])
    else:
        try:
            handle = open(folder / filename, "rb")
        except OSError:
            raise Http404("no such HLS file") from None
        if not whole(os.fstat(handle.fileno()).st_size):
            handle.close()
            raise Http404("segment not whole")
        response = FileResponse(handle, content_type=CONTENT_TYPES["ts"])
    response["Cache-Control"] = "no-cache" if match.group(1) == "m3u8" else "max-age=60"
    response["Access-Control-Allow-Origin"] = "*"
    return response
