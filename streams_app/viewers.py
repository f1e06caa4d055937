"""What viewers get: live MPEG-TS over HTTP (`/iptv/channels/<n>.ts`, what players and tuner
clients tune) and the HLS window (`/hls/<n>/`, public like any IPTV head-end).

A viewer follows the channel's HLS window (the segments FFmpeg writes), so every viewer shares
the channel's one pipeline. Under ASGI (uvicorn, as compose serves the web) a viewer is a
coroutine waiting on that window, not a thread: viewers never take the threads the API, the
admin and the pages run on. Under WSGI (`make run`'s development server) the same follower runs
in the viewer's thread. Seats cap the viewers of one channel and of one client, per web process.
"""
import asyncio
import os
import threading
import time
from collections import Counter

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse

from channels_app.models import Channel
from retrovue.errors import ServiceError

from . import tuning

from .hls import HLS_FILE, PREVIOUS, hls_dir, output_starts, playlist_text, served_window, whole
from .iptv import gated

POLL_SECONDS = 0.25
IDLE_SECONDS = 10.0
JOIN_SEGMENTS = 2  # a new viewer's head start (4 s): enough for players to probe the stream
CHUNK_BYTES = 64 * 1024


class Listing:
    """One version of a channel's served window: (media sequence number, file name) of each
    whole segment it lists, and the bytes of those segments, read once for every viewer."""

    def __init__(self, folder):
        self.folder, self.data = folder, {}
        served = served_window(folder)
        sequence, entries = (served[0], served[1]) if served else (0, [])
        self.segments = [(sequence + i, name) for i, (_extinf, name, _size) in enumerate(entries)]

    def read(self, name):
        if name not in self.data:
            try:
                self.data[name] = (self.folder / name).read_bytes()
            except FileNotFoundError:  # rotated out of the window before we got to it
                self.data[name] = b""
        return self.data[name]


class Listings:
    """The current Listing of each channel folder, shared by the viewers of this process: a new
    one only when a playlist file changed (FFmpeg rewrites it at each segment's end), so 300
    viewers polling a channel cost two stat calls a poll, not 300 parses and reads."""

    def __init__(self):
        self.current, self.lock = {}, threading.Lock()

    def get(self, folder):
        key = tuple(file_version(folder / name) for name in ("index.m3u8", PREVIOUS))
        with self.lock:
            found = self.current.get(folder)
            if found is None or found[0] != key:
                found = self.current[folder] = (key, Listing(folder))
            return found[1]


def file_version(path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


LISTINGS = Listings()


class HlsFollower:
    """The HLS window in `folder` as one MPEG-TS byte stream: the newest JOIN_SEGMENTS, then each
    segment once it is listed (FFmpeg's HLS muxer writes a segment whole when it ends), until
    nothing arrives for `idle` seconds. When FFmpeg restarts (its numbering starts over) the
    stream goes on from the new window's start. A viewer that started the channel (`after_starts`:
    how many output starts the folder had before) waits for the new output stage and follows it
    from its first segment, never the window a past run left. `step()` returns the bytes that are
    new (b"" for nothing yet) or None once the window has gone quiet."""

    def __init__(self, folder, idle=IDLE_SECONDS, clock=time.monotonic, after_starts=None):
        self.folder, self.idle, self.clock = folder, idle, clock
        self.last, self.quiet_since = None, clock()
        self.after_starts = after_starts

    def step(self):
        if self.clock() - self.quiet_since >= self.idle:
            return None
        if self.after_starts is not None:
            starts = output_starts(self.folder)
            if len(starts) <= self.after_starts:
                return b""  # the output stage it asked for has not begun yet
            self.last, self.after_starts = starts[-1] - 1, None
        listing = LISTINGS.get(self.folder)
        listed = listing.segments
        if self.last is None:
            fresh = listed[-JOIN_SEGMENTS:]
        elif listed and listed[-1][0] < self.last:
            fresh = listed
        else:
            fresh = [entry for entry in listed if entry[0] > self.last]
        data = b"".join(listing.read(name) for _sequence, name in fresh)
        if fresh:
            self.last, self.quiet_since = fresh[-1][0], self.clock()
        return data


def follow_hls(folder, poll=POLL_SECONDS, idle=IDLE_SECONDS, after_starts=None):
    """The follower driven in a thread (WSGI)."""
    follower = HlsFollower(folder, idle, after_starts=after_starts)
    while (data := follower.step()) is not None:
        if data:
            yield from (data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES))
        else:
            time.sleep(poll)


async def follow_hls_async(folder, poll=POLL_SECONDS, idle=IDLE_SECONDS, after_starts=None):
    """The follower driven by the event loop (ASGI); its file reads go to a worker thread."""
    follower = HlsFollower(folder, idle, after_starts=after_starts)
    while (data := await asyncio.to_thread(follower.step)) is not None:
        if data:
            for i in range(0, len(data), CHUNK_BYTES):
                yield data[i:i + CHUNK_BYTES]
        else:
            await asyncio.sleep(poll)


class Seats:
    """Viewers per channel and per client address in this web process."""

    def __init__(self):
        self.by_channel, self.by_client = Counter(), Counter()
        self.lock = threading.Lock()  # WSGI viewers come and go on many threads

    def take(self, number, client):
        """None if a seat was taken, else (HTTP status, why)."""
        with self.lock:
            if self.by_channel[number] >= settings.RETROVUE_MAX_VIEWERS_PER_CHANNEL:
                return 503, f"channel {number} has its {settings.RETROVUE_MAX_VIEWERS_PER_CHANNEL} viewers"
            if self.by_client[client] >= settings.RETROVUE_MAX_VIEWERS_PER_CLIENT:
                return 429, f"{client} already watches {settings.RETROVUE_MAX_VIEWERS_PER_CLIENT} streams"
            self.by_channel[number] += 1
            self.by_client[client] += 1
        return None

    def give_back(self, number, client):
        with self.lock:
            self.by_channel[number] -= 1
            self.by_client[client] -= 1


SEATS = Seats()


class Seated:
    """A viewer's stream holding its seat and its viewer session (tuning.py): both are given
    back once, when the server closes the response (the viewer went, or the body ended), whether
    or not it was ever read; the session is marked seen as the bytes flow."""

    def __init__(self, stream, number, client, session):
        self.stream, self.number, self.client, self.session, self.held = stream, number, client, session, True

    def close(self):
        if self.held:
            self.held = False
            SEATS.give_back(self.number, self.client)
            tuning.close_session(self.session)


class SeatedSync(Seated):
    def __iter__(self):
        for chunk in self.stream:
            if seen := tuning.TS_VIEWERS.saw(self.session):
                tuning.mark_seen(seen)
            yield chunk


class SeatedAsync(Seated):
    async def __aiter__(self):
        async for chunk in self.stream:
            if seen := tuning.TS_VIEWERS.saw(self.session):
                await sync_to_async(tuning.mark_seen)(seen)
            yield chunk


def refusal(status, why, retry_after):
    return HttpResponse(f"{why}\n", status=status, content_type="text/plain", headers={"Retry-After": retry_after})


@gated
async def channel_stream(request, number):
    """One viewer: 404 for no such channel, 503 for one not running (an on-demand channel is
    started by the tune) or full or with no host to start on, 429 for a client with too many
    streams open."""
    channel = await Channel.objects.filter(number=number).only(
        "number", "status", "desired_state", "on_demand").afirst()
    if channel is None:
        raise Http404(f"no channel {number}")
    if not channel.on_demand and channel.status != Channel.Status.RUNNING:
        return HttpResponse(f"channel {number} is {channel.status}\n", status=503, content_type="text/plain")
    client = request.META.get("REMOTE_ADDR", "")
    refused = SEATS.take(number, client)
    if refused:
        return refusal(*refused, "30")
    try:
        session, after_starts = await sync_to_async(tuning.start_watching)(channel, client)
    except ServiceError as exc:
        SEATS.give_back(number, client)
        return refusal(503, f"channel {number} cannot start now: {exc}", "5")
    if isinstance(request, ASGIRequest):
        stream = SeatedAsync(follow_hls_async(hls_dir(number), after_starts=after_starts), number, client, session)
    else:
        stream = SeatedSync(follow_hls(hls_dir(number), after_starts=after_starts), number, client, session)
    response = StreamingHttpResponse(stream, content_type="video/mp2t")
    response["Cache-Control"] = "no-cache"
    return response



# --- HLS -----------------------------------------------------------------------------------------
CONTENT_TYPES = {"m3u8": "application/vnd.apple.mpegurl", "ts": "video/mp2t"}
ON_DEMAND_PATIENCE = 8.0  # seconds a playlist request waits for an on-demand channel's first window


def hls_client(request):
    """An HLS viewer: its address and user agent (HLS players keep one for a session)."""
    return f"{request.META.get('REMOTE_ADDR', '')} {request.META.get('HTTP_USER_AGENT', '')[:60]}"


def hls_file(request, number, filename):
    """A channel's playlist (only whole segments: `served_window`) or one of its whole segments;
    an empty or truncated one is never served. Each request is its client's viewer session going
    on; a playlist request of an on-demand channel that is not live starts it and waits for its
    first window."""
    match = HLS_FILE.match(filename)
    if not match:
        raise Http404("no such HLS file")
    folder = hls_dir(number)
    tuning.hls_seen(number, hls_client(request))
    if match.group(1) == "m3u8":
        channel = Channel.objects.filter(number=number).only("number", "status", "desired_state", "on_demand").first()
        if channel is not None and channel.on_demand:
            try:
                before = tuning.tune(channel)
            except ServiceError as exc:
                return refusal(503, f"channel {number} cannot start now: {exc}", "5")
            if before is not None and not tuning.tuned_window(channel, before, ON_DEMAND_PATIENCE):
                return refusal(503, f"channel {number} is starting", "1")
        served = served_window(folder)
        if served is None:
            raise Http404("no HLS window yet")
        live = Channel.objects.filter(number=number, status__in=tuning.LIVE).exists()
        response = HttpResponse(playlist_text(folder, served, live), content_type=CONTENT_TYPES["m3u8"])
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
