"""Predict and prevent: early-warning alerts from trends in the metrics history, raised before
the failure with the trend in the message and cleared once the trend no longer reaches the limit.

Beat runs evaluate_trends every health_check_interval (the system defaults). It judges each
current RUNNING run's encoding speed (falling toward below real time) and memory (growing toward
its channel's max_memory_mb within the run, or its peak growing run over run), each host's CPU
headroom (its streams' summed CPU samples rising toward alert_thresholds.cpu_usage percent of the
host: hosts report no history of their own) and the data disk of the host it runs on (free space sampled here, heading for full or
below RETROVUE_TREND_DISK_FREE_PERCENT). The maths is in trends.py.
"""
import logging
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Max, Min, Q
from django.utils import timezone

from channels_app.system_config import system_config
from resources_app.models import EncodeHost

from .alerts import clear_alert, raise_alert
from .models import Alert, DiskSample, MetricSample, Stream
from .monitoring import REAL_TIME
from .trends import bucket_totals, fit_line, forecast, time_to_cross

Kind = Alert.Kind
TREND_KINDS = (Kind.SPEED_TREND, Kind.MEMORY_TREND, Kind.DISK_TREND, Kind.CPU_TREND)
LAST_RUNS = 5  # finished runs whose memory peaks make the run-over-run trend
RUNS_AHEAD = 3  # the run-over-run trend warns this many runs before the limit
# A host's load is its streams' means over buckets of a twentieth of the window, summed; a bucket
# spans two sample periods at least, so that every running stream has a sample in each.
HOST_BUCKETS = 20
log = logging.getLogger("retrovue.forecasts")


@dataclass(frozen=True)
class EarlyWarning:
    kind: str
    label: str  # "channel 3" or "host enc-1"
    message: str
    value: float
    threshold: float
    channel_id: int | None = None
    host: str = ""

    @property
    def key(self):
        return self.kind, self.channel_id, self.host


def evaluate_trends(now=None, disk_space=None):
    """Raise the early warnings whose trend reaches its limit within the horizon and clear the
    open ones that no longer do; returns {"raised": [...], "cleared": [...]} of labels such as
    "SPEED_TREND channel 3". `disk_space(path)` gives (free bytes, total bytes) of the data disk
    (statvfs by default)."""
    now = now or timezone.now()
    since = now - timedelta(minutes=settings.RETROVUE_TREND_WINDOW_MINUTES)
    warnings = [*_run_warnings(now, since), *_host_warnings(now, since),
                *_disk_warnings(now, since, disk_space or data_disk_space)]
    done = {"raised": [], "cleared": []}
    for w in warnings:
        if raise_alert(w.kind, w.message, channel_id=w.channel_id, host=w.host,
                       value=round(w.value, 2), threshold=w.threshold):
            done["raised"].append(f"{w.kind} {w.label}")
    over = {w.key for w in warnings}
    # Only this host's disk is read here: other hosts' disk warnings are theirs to clear.
    judged = Alert.objects.filter(cleared_at=None, kind__in=TREND_KINDS).exclude(
        Q(kind=Kind.DISK_TREND) & ~Q(host=settings.RETROVUE_HOST)).select_related("channel")
    for alert in judged:
        key = (alert.kind, alert.channel_id, "" if alert.channel_id else alert.host)
        if key not in over and clear_alert(alert.kind, channel_id=alert.channel_id, host=alert.host):
            subject = f"channel {alert.channel.number}" if alert.channel else f"host {alert.host}"
            done["cleared"].append(f"{alert.kind} {subject}")
    return done


# --- runs: speed and memory ----------------------------------------------------------------------
def _run_warnings(now, since):
    runs = list(Stream.objects.filter(status=Stream.Status.RUNNING, generation=F("channel__generation"))
                .select_related("channel__config"))
    samples = defaultdict(list)
    for row in MetricSample.objects.filter(stream__in=runs, at__gte=since, at__lte=now).order_by("at") \
            .values("stream_id", "at", "restart_count", "speed", "memory_mb"):
        samples[row["stream_id"]].append(row)
    peaks = _finished_run_peaks([run.channel_id for run in runs])
    for run in runs:
        process = _latest_process(samples[run.pk])
        label = f"channel {run.channel.number}"
        limit = (run.channel.config.resource_limits or {}).get("max_memory_mb")
        speed = _speed_warning(_series(process, "speed", now))
        memory = limit and (_memory_warning(_series(process, "memory_mb", now), limit)
                            or _run_over_run_warning(peaks.get(run.channel_id, []), limit))
        for kind, found in ((Kind.SPEED_TREND, speed), (Kind.MEMORY_TREND, memory)):
            if found:
                yield EarlyWarning(kind, label, *found, channel_id=run.channel_id)


def _latest_process(rows):
    """The samples of the run's current FFmpeg process: a restart starts its counters and memory afresh."""
    return [row for row in rows if row["restart_count"] == rows[-1]["restart_count"]] if rows else []


def _series(rows, field, now):
    return [(_minutes(row["at"], now), row[field]) for row in rows if row[field] is not None]


def _speed_warning(series):
    trend = _forecast(series, REAL_TIME, rising=False)
    if trend is None:
        return None
    return (f"speed falling {_num(-trend.line.slope)}x/min: {trend.now:.2f}x now, below real time "
            f"({REAL_TIME:g}x) in {_eta(trend.eta)} {_over(trend)}", trend.now, REAL_TIME)


def _memory_warning(series, limit):
    trend = _forecast(series, limit, rising=True)
    if trend is None:
        return None
    return (f"memory growing {_num(trend.line.slope)} MB/min: {trend.now:.0f} MB now, its {limit:g} MB "
            f"limit in {_eta(trend.eta)} {_over(trend)}", trend.now, limit)


def _run_over_run_warning(peaks, limit):
    """Peaks of the last finished runs growing so that a run within RUNS_AHEAD reaches the limit."""
    line = fit_line([(i - len(peaks) + 1, peak) for i, peak in enumerate(peaks)])
    if line is None or line.slope <= 0 or not line.significant:
        return None
    runs = time_to_cross(line, limit)
    if runs is None or runs > RUNS_AHEAD:
        return None
    shown = ", ".join(f"{peak:.0f}" for peak in peaks)
    return (f"memory peak growing {_num(line.slope)} MB a run over the last {len(peaks)} runs ({shown} MB): "
            f"its {limit:g} MB limit within {math.ceil(runs)} more run(s)", peaks[-1], limit)


def _finished_run_peaks(channel_ids):
    """{channel id: the memory peaks of its last LAST_RUNS finished runs, oldest first}."""
    rows = MetricSample.objects.filter(channel_id__in=channel_ids, memory_mb__isnull=False) \
        .exclude(stream__status__in=Stream.ACTIVE).values("channel_id", "stream_id") \
        .annotate(peak=Max("memory_mb"), began=Min("at")).order_by("began")
    peaks = defaultdict(list)
    for row in rows:
        peaks[row["channel_id"]].append(row["peak"])
    return {channel_id: found[-LAST_RUNS:] for channel_id, found in peaks.items()}


# --- hosts: CPU headroom -------------------------------------------------------------------------
def _host_warnings(now, since):
    capacity = {host.name: host.cpu_capacity for host in EncodeHost.objects.exclude(state=EncodeHost.State.OFFLINE)}
    samples = defaultdict(list)
    for host, stream_id, at, cpu in MetricSample.objects.filter(
            stream__host__in=capacity, at__gte=since, at__lte=now, cpu_percent__isnull=False) \
            .values_list("stream__host", "stream_id", "at", "cpu_percent"):
        samples[host].append((_minutes(at, now), stream_id, cpu))
    width = max(settings.RETROVUE_TREND_WINDOW_MINUTES / HOST_BUCKETS,
                2 * settings.RETROVUE_METRICS_SAMPLE_SECONDS / 60)
    threshold = system_config()["monitoring"]["alert_thresholds"]["cpu_usage"]
    for host, found in samples.items():
        load = [(t, total / capacity[host] * 100) for t, total in bucket_totals(found, width)]
        trend = _forecast(load, threshold, rising=True)
        if trend:
            yield EarlyWarning(
                Kind.CPU_TREND, f"host {host}",
                f"CPU headroom shrinking: its channels use {trend.now:.0f}% of the host, "
                f"{_num(trend.line.slope)}% more a minute, {threshold:g}% in {_eta(trend.eta)} {_over(trend)}",
                trend.now, threshold, host=host)


# --- the data disk -------------------------------------------------------------------------------
def data_disk_space(path):
    """(free bytes, total bytes) of the filesystem holding `path`, as a non-root writer sees it."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize


def _disk_warnings(now, since, disk_space):
    """Record this host's data disk and judge its free space over the window (older samples go)."""
    host, path = settings.RETROVUE_HOST, str(settings.RETROVUE_DATA_DIR)
    try:
        free, total = disk_space(path)
    except OSError as exc:
        log.warning("cannot read the data disk %s: %s", path, exc)
        return
    DiskSample.objects.create(host=host, path=path, at=now, free_bytes=free, total_bytes=total)
    DiskSample.objects.filter(host=host, at__lt=since).delete()
    series = [(_minutes(at, now), free_bytes) for at, free_bytes in
              DiskSample.objects.filter(host=host, path=path, at__lte=now).values_list("at", "free_bytes")]
    percent = free / total * 100 if total else 100.0
    threshold = settings.RETROVUE_TREND_DISK_FREE_PERCENT
    state = f"data disk {path}: {_size(free)} free of {_size(total)} ({percent:.1f}%)"
    trend = _forecast(series, 0, rising=False)
    if trend:
        message = f"{state}, filling {_size(-trend.line.slope)}/min, full in {_eta(trend.eta)} {_over(trend)}"
    elif percent < threshold:
        message = f"{state}, below {threshold:g}% free"
    else:
        return
    yield EarlyWarning(Kind.DISK_TREND, f"host {host}", message, percent, threshold, host=host)


# --- shared --------------------------------------------------------------------------------------
def _forecast(series, threshold, rising):
    """The trend of a window's series under the settings: enough points, over half the window."""
    window = settings.RETROVUE_TREND_WINDOW_MINUTES
    return forecast(series, threshold, settings.RETROVUE_TREND_HORIZON_MINUTES, rising=rising,
                    min_points=settings.RETROVUE_TREND_MIN_SAMPLES, min_span=window / 2)


def _minutes(at, now):
    return (at - now).total_seconds() / 60


def _num(x):
    """A rate to two or three significant figures: 0.021, 1.5, 12.3, 180."""
    return f"{x:.2g}" if abs(x) < 1 else f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _eta(minutes):
    return f"~{max(1, round(minutes))} min"


def _over(trend):
    return f"(trend over {trend.line.span:.0f} min)"


def _size(n):
    return f"{n / 2**30:.1f} GB" if abs(n) >= 2**30 else f"{n / 2**20:.0f} MB"
