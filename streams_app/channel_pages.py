"""/channels and /channels/<number>: every channel at a glance, one channel in depth, and their
buttons. Reads come from the existing read models (the health verdict is the one /streams
shows: monitoring.channel_verdict); every button calls streams_app.lifecycle."""
import json
import time
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import render
from django.utils import timezone

from channels_app import services
from channels_app.models import Channel
from channels_app.schedules import airing, schedule_data
from channels_app.serializers import channel_data
from retrovue.errors import NotFound
from retrovue.pages import CHANGE_CHANNELS, chart, duration, operator_action

from . import lifecycle
from .models import Stream
from .monitoring import (
    LIMITS,
    channel_verdict,
    current_streams,
    drop_baselines,
    exceeded,
    metric_series,
    metric_series_by_channel,
)
from .services import stream_health
from .thumbnails import MAX_AGE_SECONDS, thumbnail
from .tuning import no_viewers, viewer_figures

SPARKLINE_WINDOW = timedelta(minutes=10)
SCHEDULE_HOURS = 24  # how far ahead "next" and the channel page's schedule look
RECENT_RUNS = 20
ACTIONS = {"start": lifecycle.start_channel, "stop": lifecycle.stop_channel,
           "restart": lifecycle.restart_channel}


BULK_ACTIONS = {"start": lifecycle.start_all_channels, "stop": lifecycle.stop_all_channels}
VIEWER_WINDOW = timedelta(hours=24)  # tune-ins and watch time shown over this


def channel_or_404(number):
    try:
        return services.get_channel(number)
    except NotFound as exc:
        raise Http404(str(exc)) from None


def channel_row(channel, now, airs, samples):
    """What a channel's row shows: state, what airs now and next, a picture and sparklines."""
    since = now - SPARKLINE_WINDOW
    running = channel.status == Channel.Status.RUNNING
    return {
        "channel": channel,
        "host": channel.current_host,
        "uptime": duration(services.uptime_seconds(channel)),
        "schedule": airs,
        "now": airs["current"],
        "next": airs["upcoming"][0] if airs["upcoming"] else None,
        # A new URL every MAX_AGE_SECONDS: the page fetches a new picture then, not at every poll.
        "thumbnail_version": int(time.time() // MAX_AGE_SECONDS) if running else None,
        "bitrate": chart(samples, "bitrate_kbps", since, now),
        "fps": chart(samples, "fps", since, now),
    }


def run_health(channel, run, baselines, now):
    """The channel's verdict with its reasons, and its current run's CPU and memory against the
    channel's limits; figures only while the run is active (a finished run's last report is not
    what the channel uses now)."""
    verdict, reasons = channel_verdict(channel, run, baselines, now)
    metrics = (run.health_metrics or {}) if run is not None and run.status in Stream.ACTIVE else {}
    limits = channel.config.resource_limits or {}
    usage = [{"value": metrics.get(key), "limit": limits.get(limit_key), "unit": unit,
              "over": exceeded(metrics.get(key), limits, limit_key) is not None}
             for key, limit_key, unit in LIMITS]
    return {"verdict": verdict, "reasons": reasons, "usage": usage}


def all_channels():
    return Channel.objects.with_runtime().select_related("config", "current_schedule")


@login_required
def channel_list(request, partial=False):
    now = timezone.now()
    # Polled every second: the samples, the current runs and their drop baselines of all
    # channels in one query each, now/next without the programs list the detail page shows.
    series = metric_series_by_channel(now - SPARKLINE_WINDOW)
    runs, baselines = current_streams(), drop_baselines(now=now)
    viewers = viewer_figures(since=now - VIEWER_WINDOW)
    context = {"rows": [{**channel_row(channel, now, airing(channel, SCHEDULE_HOURS), series.get(channel.pk, [])),
                         "health": run_health(channel, runs.get(channel.pk), baselines, now),
                         "viewers": viewers.get(channel.pk) or no_viewers()}
                        for channel in all_channels()]}
    template = "dashboards/channel_rows.html" if partial else "dashboards/channels.html"
    return render(request, template, context)


@login_required
def channel_detail(request, number, partial=False):
    channel = channel_or_404(number)
    now = timezone.now()
    context = {
        "row": channel_row(channel, now, (airing if partial else schedule_data)(channel, SCHEDULE_HOURS),
                           metric_series(channel, since=now - SPARKLINE_WINDOW)),
        "health": stream_health(channel),
        "runs": Stream.objects.filter(channel=channel).order_by("-generation")[:RECENT_RUNS],
        "back": f"/channels/{channel.number}",  # where its buttons return to
    }
    if partial:
        return render(request, "dashboards/channel_live.html", context)
    data = channel_data(channel)
    context.update(
        outputs=data["outputs"],
        config={name: json.dumps(values, indent=2) for name, values in data["config"].items()},
    )
    return render(request, "dashboards/channel_detail.html", context)


@login_required
def channel_thumbnail(request, number):
    """The live picture of a running channel (404 otherwise: a stopped channel has none)."""
    channel = channel_or_404(number)
    path = thumbnail(channel.number) if channel.status == Channel.Status.RUNNING else None
    if path is None:
        raise Http404("no picture yet")
    response = FileResponse(open(path, "rb"), content_type="image/jpeg")
    response["Cache-Control"] = f"private, max-age={int(MAX_AGE_SECONDS)}"
    return response


@operator_action(CHANGE_CHANNELS)
def channel_action(request, number, action):
    channel = ACTIONS[action](channel_or_404(number))
    where = f" on {channel.current_host}" if channel.current_host else ""
    return f"{channel}: {action} requested, now {channel.status}{where}."


@operator_action(CHANGE_CHANNELS)
def bulk_action(request, action):
    results = BULK_ACTIONS[action]()
    summary = ", ".join(f"{number}: {outcome}" for number, outcome in results.items())
    return f"{action} all: {summary or 'nothing to do'}."
