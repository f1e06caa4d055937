"""Viewers and on-demand channels.

Every tune is a viewer session of its channel: an HTTP TS connection (players, tuner clients)
from connect to close, an HLS client (by address and token or user agent) while its requests
keep coming. Sessions give tune-ins, concurrent viewers and watch time. An on-demand channel
runs only while it has viewers: a tune of one that is not live starts it (placement and
admission as any start), and beat stops one nobody has been seen watching for
RETROVUE_ON_DEMAND_IDLE_SECONDS.
"""
import threading
import time
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from channels_app.models import Channel, ViewerSession

from . import lifecycle
from .hls import hls_dir, output_starts, served_window
from .models import Stream

LIVE = (Channel.Status.STARTING, Channel.Status.RUNNING)
# Seconds between writes of a session's last_seen_at: a viewer is seen at every chunk or request,
# written this often (a write per viewer every few seconds slowed the API at 200 viewers).
SEEN_EVERY = 15.0
HLS_GAP = timedelta(seconds=3 * SEEN_EVERY)  # an HLS client not seen for this long has left
STALE = timedelta(seconds=3 * SEEN_EVERY)  # a TS session not seen for this long lost its web process


def tune(channel):
    """Start an on-demand channel that is not live; returns how many output starts its HLS
    folder had before (for the viewer to follow the new one), or None if nothing was started.
    A start refused (no host has room) raises as any start does."""
    if not channel.on_demand or (channel.status in LIVE and channel.desired_state == Channel.Desired.RUNNING):
        return None
    before = len(output_starts(hls_dir(channel.number)))
    lifecycle.start_channel(channel)
    return before


def start_watching(channel, client):
    """A TS viewer arrives: its session (opened first, so beat sees a viewer before the start)
    and what `tune` returned; a start refused closes the session again and raises."""
    session = open_session(channel, ViewerSession.Kind.TS, client)
    try:
        return session, tune(channel)
    except Exception:
        close_session(session)
        raise


def open_session(channel, kind, client):
    now = timezone.now()
    return ViewerSession.objects.create(channel=channel, kind=kind, client=client[:100], started_at=now,
                                        last_seen_at=now).pk


def close_session(session_id):
    now = timezone.now()
    ViewerSession.objects.filter(pk=session_id, ended_at=None).update(last_seen_at=now, ended_at=now)


class Sightings:
    """When each HLS client's session was last written, in this process: a client is seen at
    every request, its session written at most every SEEN_EVERY seconds."""

    def __init__(self):
        self.written, self.lock = {}, threading.Lock()

    def due(self, key, now):
        with self.lock:
            if now - self.written.get(key, -SEEN_EVERY) < SEEN_EVERY:
                return False
            self.written[key] = now
            return True


SIGHTINGS = Sightings()


class SeenViewers:
    """The TS viewers of this process seen since their sessions were last written: one UPDATE
    for all of them at most every SEEN_EVERY seconds (a write per viewer slowed the API that
    shares the web process's database thread at 300 viewers)."""

    def __init__(self):
        self.seen, self.written_at, self.lock = set(), time.monotonic(), threading.Lock()

    def saw(self, session_id):
        """Note a viewer seen now; the sessions to write (mark_seen) when a write is due, else None."""
        with self.lock:
            self.seen.add(session_id)
            now = time.monotonic()
            if now - self.written_at < SEEN_EVERY:
                return None
            due, self.seen, self.written_at = self.seen, set(), now
            return due


TS_VIEWERS = SeenViewers()


def mark_seen(session_ids):
    ViewerSession.objects.filter(pk__in=session_ids, ended_at=None).update(last_seen_at=timezone.now())


def hls_seen(number, client):
    """An HLS request of `client` for channel `number`: its session goes on, or one starts (a
    tune-in). The database is asked only when the session is due a write, not per segment."""
    if not SIGHTINGS.due(("hls", number, client), time.monotonic()):
        return
    now = timezone.now()
    if not ViewerSession.objects.filter(channel__number=number, kind=ViewerSession.Kind.HLS, client=client[:100],
                                        ended_at=None, last_seen_at__gte=now - HLS_GAP).update(last_seen_at=now):
        channel = Channel.objects.filter(number=number).first()
        if channel is not None:
            open_session(channel, ViewerSession.Kind.HLS, client)


def tuned_window(channel, before, patience):
    """After `tune` started `channel`: wait up to `patience` seconds for its new output stage's
    first HLS window; True once it is there."""
    folder, deadline = hls_dir(channel.number), time.monotonic() + patience
    while time.monotonic() < deadline:
        if len(output_starts(folder)) > before and served_window(folder) is not None:
            return True
        time.sleep(0.05)
    return False


def end_stale_sessions(now):
    """HLS clients gone quiet, and TS sessions whose web process went without closing them,
    end when they were last seen; returns how many ended."""
    return ViewerSession.objects.filter(
        Q(kind=ViewerSession.Kind.HLS, last_seen_at__lt=now - HLS_GAP) |
        Q(kind=ViewerSession.Kind.TS, last_seen_at__lt=now - STALE), ended_at=None).update(ended_at=F("last_seen_at"))


def prune_viewer_sessions(now=None):
    """Delete sessions that ended more than RETROVUE_VIEWER_RETENTION_DAYS ago; returns how many
    (the all-time counters in /metrics restart lower then, which Prometheus reads as a reset)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.RETROVUE_VIEWER_RETENTION_DAYS)
    return ViewerSession.objects.filter(ended_at__lt=cutoff).delete()[0]


def stop_idle_on_demand(now=None):
    """One pass of beat's loop: end stale sessions, then stop each on-demand channel that
    wants to run but has had no viewer (nor a start) for RETROVUE_ON_DEMAND_IDLE_SECONDS;
    returns the numbers of the channels stopped."""
    now = now or timezone.now()
    end_stale_sessions(now)
    idle_since = now - timedelta(seconds=settings.RETROVUE_ON_DEMAND_IDLE_SECONDS)
    # Two subqueries, not two joins: a join of sessions and runs would multiply their rows.
    candidates = Channel.objects.filter(on_demand=True, desired_state=Channel.Desired.RUNNING).annotate(
        watched=Subquery(ViewerSession.objects.filter(channel=OuterRef("pk")).order_by("-last_seen_at")
                         .values("last_seen_at")[:1]),
        run_began=Subquery(Stream.objects.filter(channel=OuterRef("pk")).order_by("-created_at")
                           .values("created_at")[:1]))
    stopped = []
    for channel in candidates:
        last_sign = max(filter(None, [channel.watched, channel.run_began]), default=None)
        if last_sign is None or last_sign < idle_since:
            lifecycle.stop_channel(channel)
            stopped.append(channel.number)
    return stopped


class ViewerFigures(NamedTuple):
    viewers_now: int
    viewers_by_kind: dict  # {kind: viewers now}
    tune_ins: int
    watch_time_s: float


def viewer_figures(since=None):
    """{channel id: ViewerFigures} of each channel with a session, in one aggregate query: viewers
    now are sessions not ended; tune-ins the sessions started since `since`, watch time the part
    of each session after it (None: all time, as Prometheus' counters want)."""
    sessions, begun, tuned_in, watched = ViewerSession.objects.order_by(), F("started_at"), None, None
    if since is not None:
        sessions = sessions.filter(Q(ended_at=None) | Q(ended_at__gte=since))
        begun = Greatest("started_at", Value(since))
        tuned_in = Q(started_at__gte=since)
        watched = Q(ended_at__gte=since) | Q(ended_at=None, last_seen_at__gte=since)
    kinds = ViewerSession.Kind.values
    rows = sessions.values("channel_id").annotate(
        tune_ins=Count("pk", filter=tuned_in),
        watched=Sum(Coalesce("ended_at", "last_seen_at") - begun, filter=watched),
        **{f"now_{kind}": Count("pk", filter=Q(ended_at=None, kind=kind)) for kind in kinds})
    return {row["channel_id"]: ViewerFigures(
        viewers_now=sum(row[f"now_{kind}"] for kind in kinds),
        viewers_by_kind={kind: row[f"now_{kind}"] for kind in kinds},
        tune_ins=row["tune_ins"], watch_time_s=(row["watched"] or timedelta()).total_seconds()) for row in rows}


def no_viewers():
    return ViewerFigures(0, dict.fromkeys(ViewerSession.Kind.values, 0), 0, 0.0)
