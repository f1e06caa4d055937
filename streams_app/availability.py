"""Availability of each channel over the last 24 hours, 7 days and 30 days, read from the as-run
log: uptime, downtime, availability, failures, MTBF and MTTR.

Up is time covered by segments that aired (one still on air counts until now); down is the
log's interruptions, plus the outage going on now when a channel meant to run has nothing on air.
Time an operator had a channel stopped is neither, as in the log itself (playout/asrun.py never
writes an interruption across an operator's stop). Everything is clipped to the window.

`periods` and `figures` are pure (plain rows in, numbers out); `channel_availability` reads the
database in two queries whatever the number of channels.
"""
from datetime import timedelta
from typing import NamedTuple

from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from channels_app.models import Channel

from .models import AsRunEntry, Stream

SPANS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


class LogRow(NamedTuple):
    """An as-run row with what the reading needs of its run."""

    kind: str
    start: object  # datetime
    end: object  # datetime, None while on air
    run_live: bool = True  # its run is still starting, running or stopping
    run_seen_at: object = None  # its run's last heartbeat (or end): where a lost run's row ends
    operator_stopped: bool = False  # its run ended because an operator stopped the channel


# --- pure ------------------------------------------------------------------------------------------
def periods(rows, wants_air, now):
    """(aired, outages) as (start, end) pairs from a channel's rows, oldest first.

    A row still open whose run has ended (a lost host) ends at its run's last heartbeat, as the
    log will record it once the channel airs again; one whose run lives counts until `now`. A
    channel meant to run (`wants_air`) with nothing on air is in an outage from its last row's
    end until now, unless that row's run was stopped by an operator: from an operator's start to
    the first frame is start-up, which the log never counts as an interruption either."""
    aired, outages = [], []
    for row in rows:
        end = row.end or (now if row.run_live else max(row.start, min(row.run_seen_at or now, now)))
        (outages if row.kind == AsRunEntry.Kind.INTERRUPTION else aired).append((row.start, end))
    if rows and wants_air:
        last = rows[-1]
        on_air = last.end is None and last.run_live and last.kind != AsRunEntry.Kind.INTERRUPTION
        off_since = aired[-1][1] if last.kind != AsRunEntry.Kind.INTERRUPTION else outages[-1][1]
        if not on_air and not last.operator_stopped and off_since < now:
            outages.append((off_since, now))
    return aired, outages


def figures(aired, outages, since, until):
    """Uptime, downtime (seconds), availability (percent of up + down), failures (outages that
    began in the window), MTBF and MTTR (seconds; None without a failure) over [since, until).
    Aired time wins where an outage overlaps it, so up + down never exceeds the window."""
    up = _covered(aired, since, until)
    down = _covered([*aired, *outages], since, until) - up
    failures = sum(1 for start, _end in outages if since <= start < until)
    return {"uptime_s": round(up, 3), "downtime_s": round(down, 3),
            "availability_percent": round(100 * up / (up + down), 3) if up + down else None,
            "failures": failures,
            "mtbf_s": round(up / failures, 3) if failures else None,
            "mttr_s": round(down / failures, 3) if failures else None}


def _covered(intervals, since, until):
    """Seconds of [since, until) inside the union of `intervals`."""
    clipped = sorted((max(start, since), min(end, until)) for start, end in intervals)
    total, reach = 0.0, since
    for start, end in clipped:
        start = max(start, reach)
        if end > start:
            total += (end - start).total_seconds()
            reach = end
    return total


# --- the database --------------------------------------------------------------------------------
def channel_availability(channels=None, spans=SPANS, now=None):
    """[(channel, {span name: figures})] for `channels` (a Channel queryset; default: all) in its
    order, over windows of `spans` ({name: timedelta}) ending `now`, in two queries."""
    now = now or timezone.now()
    since = now - max(spans.values())
    last_row = AsRunEntry.objects.filter(channel=OuterRef("pk")).order_by("-actual_start", "-pk").values("pk")[:1]
    channels = list((Channel.objects.all() if channels is None else channels)
                    .annotate(last_as_run=Subquery(last_row)))
    rows = {}
    for row in (AsRunEntry.objects
                .filter(channel__in=channels)
                .filter(Q(actual_start__lt=now) & (Q(actual_end__gt=since) | Q(actual_end=None))
                        | Q(pk__in=[channel.last_as_run for channel in channels if channel.last_as_run]))
                .order_by("actual_start", "pk")
                .values("channel_id", "kind", "actual_start", "actual_end", "stream__status",
                        "stream__status_reason", "stream__heartbeat_at", "stream__ended_at")):
        rows.setdefault(row["channel_id"], []).append(_log_row(row))
    report = []
    for channel in channels:
        aired, outages = periods(rows.get(channel.pk, []), channel.desired_state == Channel.Desired.RUNNING, now)
        report.append((channel, {name: figures(aired, outages, now - span, now) for name, span in spans.items()}))
    return report


def _log_row(row):
    status = row["stream__status"]
    return LogRow(kind=row["kind"], start=row["actual_start"], end=row["actual_end"],
                  run_live=status in Stream.ACTIVE,
                  run_seen_at=row["stream__heartbeat_at"] or row["stream__ended_at"],
                  # as playout/asrun.py's close_previous_run tells an operator's stop
                  operator_stopped=status == Stream.Status.STOPPED and row["stream__status_reason"] == "stopped")


def availability_report(channel=None, now=None):
    """GET /api/availability: every channel (or one) over the last 24 h, 7 d and 30 d."""
    now = now or timezone.now()
    channels = Channel.objects.all() if channel is None else Channel.objects.filter(pk=channel.pk)
    return {"at": now, "channels": [{"number": ch.number, "name": ch.name, "desired_state": ch.desired_state,
                                     "windows": windows}
                                    for ch, windows in channel_availability(channels, now=now)]}
