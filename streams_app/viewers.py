"""Live MPEG-TS over HTTP (`/iptv/channels/<n>.ts`): what viewers and tuner clients tune.

A viewer follows the channel's HLS window (the segments FFmpeg writes), so every viewer shares
the channel's one pipeline. Under ASGI (uvicorn, as compose serves the web) a viewer is a
coroutine waiting on that window, not a thread: viewers never take the threads the API, the
admin and the pages run on. Under WSGI (`make run`'s development server) the same follower runs
in the viewer's thread. Seats cap the viewers of one channel and of one client, per web process.
"""
import asyncio
import threading
import time
from collections import Counter

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpResponse, StreamingHttpResponse

from channels_app.models import Channel

from .hls import HLS_FILE, hls_dir, served_window
from .iptv import gated

POLL_SECONDS = 0.25
IDLE_SECONDS = 10.0
JOIN_SEGMENTS = 2  # a new viewer's head start (4 s): enough for players to probe the stream
CHUNK_BYTES = 64 * 1024


def listed_segments(folder):
    """(media sequence number, file name) of each whole segment the channel's window lists."""
    served = served_window(folder)
    if served is None:
        return []
    sequence, entries, _header = served
    return [(sequence + i, name) for i, (_extinf, name, _size) in enumerate(entries)]


def segment_bytes(path):
    try:
        return path.read_bytes()
    except FileNotFoundError:  # rotated out of the window before we got to it
        return b""


class HlsFollower:
    """The HLS window in `folder` as one MPEG-TS byte stream: the newest JOIN_SEGMENTS, then every
    new segment as it is listed, until none arrives for `idle` seconds. When FFmpeg restarts (its
    numbering starts over) the stream goes on from the new window's start. `step()` returns the
    bytes that are new (b"" for nothing yet) or None once the window has gone quiet."""

    def __init__(self, folder, idle=IDLE_SECONDS, clock=time.monotonic):
        self.folder, self.idle, self.clock = folder, idle, clock
        self.last, self.quiet_since = None, clock()

    def step(self):
        if self.clock() - self.quiet_since >= self.idle:
            return None
        listed = listed_segments(self.folder)
        if self.last is None:
            fresh = listed[-JOIN_SEGMENTS:]
        elif listed and listed[-1][0] < self.last:
            fresh = listed
        else:
            fresh = [entry for entry in listed if entry[0] > self.last]
        data = b"".join(segment_bytes(self.folder / name) for _sequence, name in fresh)
        if fresh:
            self.last, self.quiet_since = fresh[-1][0], self.clock()
        return data


def follow_hls(folder, poll=POLL_SECONDS, idle=IDLE_SECONDS):
    """The follower driven in a thread (WSGI)."""
    follower = HlsFollower(folder, idle)
    while (data := follower.step()) is not None:
        if data:
            yield from (data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES))
        else:
            time.sleep(poll)


async def follow_hls_async(folder, poll=POLL_SECONDS, idle=IDLE_SECONDS):
    """The follower driven by the event loop (ASGI); its file reads go to a worker thread."""
    follower = HlsFollower(folder, idle)
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
    """A viewer's stream holding its seat: the seat is given back once, when the server closes
    the response (the viewer went, or the body ended), whether or not it was ever read."""

    def __init__(self, stream, number, client):
        self.stream, self.number, self.client, self.held = stream, number, client, True

    def close(self):
        if self.held:
            self.held = False
            SEATS.give_back(self.number, self.client)


class SeatedSync(Seated):
    def __iter__(self):
        return iter(self.stream)


class SeatedAsync(Seated):
    def __aiter__(self):
        return aiter(self.stream)


@gated
async def channel_stream(request, number):
    """One viewer of a running channel: 404 for no such channel, 503 for one not running or
    full, 429 for a client with too many streams open."""
    channel = await Channel.objects.filter(number=number).only("status").afirst()
    if channel is None:
        raise Http404(f"no channel {number}")
    if channel.status != Channel.Status.RUNNING:
        return HttpResponse(f"channel {number} is {channel.status}\n", status=503, content_type="text/plain")
    client = request.META.get("REMOTE_ADDR", "")
    refused = SEATS.take(number, client)
    if refused:
        status, why = refused
        return HttpResponse(f"{why}\n", status=status, content_type="text/plain", headers={"Retry-After": "30"})
    if isinstance(request, ASGIRequest):
        stream = SeatedAsync(follow_hls_async(hls_dir(number)), number, client)
    else:
        stream = SeatedSync(follow_hls(hls_dir(number)), number, client)
    response = StreamingHttpResponse(stream, content_type="video/mp2t")
    response["Cache-Control"] = "no-cache"
    return response

