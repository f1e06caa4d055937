"""/streams: the live stream monitor. Verdicts come from the one verdict every view of a stream
uses (monitoring.channel_verdict), figures from each run's latest FFmpeg progress, availability
and quality score from the as-run log and the last hour's analysis, charts from the sampled
history. The page polls its three parts at their own pace."""
from datetime import datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from channels_app.models import Channel
from channels_app.services import uptime_seconds
from retrovue.pages import chart, duration

from .availability import SPANS, channel_availability
from .models import Stream
from .monitoring import (
    analyze_channel_performance,
    channel_verdict,
    current_streams,
    drop_baselines,
    lease_age,
    metric_series_by_channel,
)
from .tuning import no_viewers, viewer_figures

CHART_WINDOW = timedelta(hours=1)
# (sample field, label, unit, decimals shown, top of the scale: None for the peak)
CHARTS = (("bitrate_kbps", "bitrate", "kbit/s", 0, None), ("fps", "frame rate", "fps", 1, None),
          ("speed", "speed", "x", 2, 2.0))
LOG_LINES = 200
WATCHED = (*Stream.ACTIVE, Stream.Status.ERROR)


def watched_runs():
    """(channel, current run) of every channel that streams or failed, in number order."""
    runs = {pk: run for pk, run in current_streams().items() if run.status in WATCHED}
    channels = Channel.objects.with_runtime().select_related("config").filter(pk__in=list(runs))
    return [(channel, runs[channel.pk]) for channel in channels]


def table_part(request, watched):
    now = timezone.now()
    baselines = drop_baselines(now=now)
    day = {"24h": SPANS["24h"]}
    availability = {ch.pk: windows["24h"] for ch, windows in channel_availability(
        Channel.objects.filter(pk__in=[channel.pk for channel, _run in watched]), day, now)}
    quality = {entry["number"]: entry["quality_score"] for entry in analyze_channel_performance()["channels"]}
    viewers = viewer_figures(since=now - day["24h"])
    rows = []
    for channel, run in watched:
        verdict, reasons = channel_verdict(channel, run, baselines, now)
        rows.append({"channel": channel, "run": run, "verdict": verdict, "reasons": reasons,
                     "metrics": run.health_metrics or {}, "uptime": duration(uptime_seconds(channel)),
                     "lease_age": lease_age(run, now), "availability": availability[channel.pk],
                     "quality": quality.get(channel.number), "viewers": viewers.get(channel.pk) or no_viewers()})
    stopped = Channel.objects.filter(status=Channel.Status.STOPPED).count()
    return {"rows": rows, "stopped": stopped}


def charts_part(request, watched):
    until = timezone.now()
    since = until - CHART_WINDOW
    series = metric_series_by_channel(since)  # one query for every chart
    panels = []
    for channel, _run in watched:
        samples = series.get(channel.pk, [])
        panels.append({"channel": channel, "charts": [
            {"label": label, "unit": unit, "digits": digits,
             "drawing": chart(samples, field, since, until, width=300, height=70, points=120, ceiling=ceiling)}
            for field, label, unit, digits, ceiling in CHARTS]})
    return {"panels": panels}


def log_part(request, watched):
    """Error lines of the current runs, newest first, those containing the filter text."""
    query = request.GET.get("q", "").strip()[:100]
    lines = [{"at": datetime.fromisoformat(entry["at"]), "channel": channel, "line": entry["line"]}
             for channel, run in watched for entry in run.error_log or ()
             if query.lower() in entry.get("line", "").lower()]
    lines.sort(key=lambda entry: entry["at"], reverse=True)
    return {"query": query, "log": lines[:LOG_LINES]}


PARTS = {"table": ("dashboards/stream_table.html", table_part),
         "charts": ("dashboards/stream_charts.html", charts_part),
         "log": ("dashboards/stream_log.html", log_part)}


@login_required
def stream_monitor(request, part=None):
    watched = watched_runs()
    if part:
        template, build = PARTS[part]
        return render(request, template, build(request, watched))
    context = {}
    for _template, build in PARTS.values():
        context.update(build(request, watched))
    return render(request, "dashboards/streams.html", context)
