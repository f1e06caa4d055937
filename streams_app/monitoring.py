"""Monitoring read models: metric history, the fleet health summary behind GET /api/health,
performance analysis, and the one health verdict every view of a stream uses.

Everything here reads the database in a fixed number of queries whatever the number of
channels: the API, the Prometheus exporter and beat call it every few seconds.
"""
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Exists, F, Max, Min, OuterRef, Q
from django.utils import timezone

from channels_app.models import Channel
from channels_app.services import lease_in_doubt, uptime_seconds
from resources_app.models import EncodeHost
from resources_app.placement import host_loads

from .analytics import performance_analytics
from .availability import channel_availability
from .models import Alert, MetricSample, Stream

REAL_TIME = 0.98  # speed below this is an encoder falling behind real time
RECENT = timedelta(minutes=1)  # the window of "recent" drops and error lines
VERDICTS = ("HEALTHY", "DEGRADED", "UNKNOWN", "FAILED")
STATS_FIELDS = ("bitrate_kbps", "fps", "speed", "cpu_percent", "memory_mb")
# (measure, its key in ChannelConfig.resource_limits, unit): over the limit is DEGRADED.
LIMITS = (("cpu_percent", "max_cpu_percent", "%"), ("memory_mb", "max_memory_mb", " MB"))


# --- the verdict ---------------------------------------------------------------------------------
def health_verdict(stream_status, metrics, lease_age_s, resource_limits, drop_baseline=0):
    """(verdict, reasons) of one run from its latest progress: pure, so every view agrees.

    `stream_status` is the run's status (ERROR when the channel failed); `drop_baseline` is the
    dropped-frame counter of the same FFmpeg process a minute ago (0 when it is younger), so
    only drops that are still happening degrade the stream."""
    if stream_status == Stream.Status.ERROR:
        return "FAILED", []
    if stream_status not in (Stream.Status.RUNNING, Stream.Status.STARTING):
        return "STOPPED", []
    if lease_age_s is not None and lease_age_s > settings.RETROVUE_LEASE_TTL_SECONDS:
        return "FAILED", [f"no heartbeat for {lease_age_s:.0f}s"]
    if lease_in_doubt(lease_age_s):
        return "UNKNOWN", [f"no heartbeat for {lease_age_s:.1f}s: its host may be lost or frozen"]
    if stream_status == Stream.Status.STARTING:
        return "DEGRADED", ["starting"]
    reasons = [_slow(metrics.get("speed"), metrics.get("throttled_ms"), metrics.get("cpu_limit_percent")),
               _dropping(metrics.get("drop_frames"), drop_baseline),
               metrics.get("output_problem")]
    reasons += [f"{key} {metrics[key]:g}{unit} over its limit {limit:g}{unit}"
                for key, limit_key, unit in LIMITS
                if (limit := exceeded(metrics.get(key), resource_limits, limit_key)) is not None]
    reasons = [reason for reason in reasons if reason]
    return ("DEGRADED" if reasons else "HEALTHY"), reasons


def _slow(speed, throttled_ms=None, cpu_limit=None):
    """Below real time, and why when its own CPU cap held it back in the last beat."""
    if speed is None:
        return "no speed reported"
    if speed >= REAL_TIME:
        return None
    if throttled_ms:
        return (f"speed {speed}x below real time: held back by its own CPU cap of {cpu_limit:g}% "
                f"({throttled_ms} ms throttled in the last beat)")
    return f"speed {speed}x below real time"


def _dropping(drop_frames, drop_baseline):
    dropped = (drop_frames or 0) - drop_baseline
    return f"dropping frames ({dropped} recently)" if dropped > 0 else None


def exceeded(value, resource_limits, limit_key):
    """The channel's limit that `value` is over, or None (no value, no limit, or within it)."""
    limit = (resource_limits or {}).get(limit_key)
    return limit if value is not None and limit is not None and value > limit else None


def channel_verdict(channel, stream, drop_baselines, now=None):
    """health_verdict for a channel (with its config) and its current run (or None).

    `drop_baselines` comes from drop_baselines(); a failed or stopped channel explains itself
    with its status reason."""
    now = now or timezone.now()
    status = Stream.Status.ERROR if channel.status == Channel.Status.ERROR else (
        stream.status if stream else channel.status)
    if stream is None:
        verdict, reasons = health_verdict(status, {}, None, {})
    else:
        verdict, reasons = health_verdict(
            status, stream.health_metrics or {}, lease_age(stream, now),
            channel.config.resource_limits, drop_baselines.get((stream.pk, stream.restart_count), 0))
    if verdict in ("FAILED", "STOPPED") and not reasons and channel.status_reason:
        reasons = [channel.status_reason]
    return verdict, reasons


def lease_age(stream, now=None):
    """Seconds since the run last renewed its lease (None before its first heartbeat)."""
    if stream.heartbeat_at is None:
        return None
    return ((now or timezone.now()) - stream.heartbeat_at).total_seconds()


def drop_baselines(channel=None, now=None):
    """{(stream id, restart count): lowest drop counter of that FFmpeg process in the last
    minute} for current runs, in one query (FFmpeg's counters restart with the process)."""
    since = (now or timezone.now()) - RECENT
    samples = MetricSample.objects.filter(at__gte=since, stream__generation=F("channel__generation"))
    if channel is not None:
        samples = samples.filter(channel=channel)
    rows = samples.values("stream_id", "restart_count").annotate(low=Min("drop_frames"))
    return {(row["stream_id"], row["restart_count"]): row["low"] or 0 for row in rows}


# --- shared reads --------------------------------------------------------------------------------
def current_streams():
    """{channel id: its current run} (the run whose generation is the channel's), one query."""
    runs = Stream.objects.filter(generation=F("channel__generation")).defer("argv")
    return {run.channel_id: run for run in runs}


def host_usage():
    """Every encode host with its slots in use and whether it is live, in two queries."""
    loads = host_loads()
    live = EncodeHost.objects.live().filter(pk=OuterRef("pk"))
    return [{"name": host.name, "live": host.is_live, "capacity": host.capacity,
             "active_streams": loads.get(host.name, 0), "cpu_percent": host.cpu_percent,
             "memory_percent": host.memory_percent}
            for host in EncodeHost.objects.annotate(is_live=Exists(live))]


def error_count(stream, since):
    """FFmpeg '[error]' lines of a run logged since `since` (its log holds the latest lines)."""
    return sum(1 for entry in stream.error_log or ()
               if entry.get("line", "").startswith("[error]")
               and datetime.fromisoformat(entry["at"]) >= since)


# --- history -------------------------------------------------------------------------------------
def metric_series(channel, since=None, until=None):
    """A channel's samples for charts, oldest first (the last hour by default), one query."""
    samples = MetricSample.objects.filter(
        channel=channel, at__gte=since or timezone.now() - timedelta(hours=1))
    if until is not None:
        samples = samples.filter(at__lte=until)
    return list(samples.order_by("at").values("at", *MetricSample.FIELDS, "restart_count"))


def metric_series_by_channel(since):
    """Every channel's samples since `since`, oldest first, in one query: {channel id: [rows]}."""
    series = {}
    rows = MetricSample.objects.filter(at__gte=since).order_by("at").values(
        "channel_id", "at", *MetricSample.FIELDS, "restart_count")
    for row in rows:
        series.setdefault(row.pop("channel_id"), []).append(row)
    return series


def prune_metric_samples(now=None):
    """Delete samples older than RETROVUE_METRICS_RETENTION_HOURS; returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.RETROVUE_METRICS_RETENTION_HOURS)
    deleted, _ = MetricSample.objects.filter(at__lt=cutoff).delete()
    return deleted


# --- GET /api/health -----------------------------------------------------------------------------
def monitor_channel_health():
    """The whole system at a glance: channels, hosts, stream quality, error rates and alerts."""
    now = timezone.now()
    channels = list(Channel.objects.with_runtime().select_related("config"))
    streams = current_streams()
    baselines = drop_baselines(now=now)
    hosts = [host for host in host_usage() if host["live"]]
    active, failed, errors = [], [], []
    quality = dict.fromkeys(VERDICTS, 0)
    for channel in channels:
        stream = streams.get(channel.pk)
        verdict, reasons = channel_verdict(channel, stream, baselines, now)
        if verdict in quality:
            quality[verdict] += 1
        if channel.status == Channel.Status.ERROR:
            failed.append({"number": channel.number, "name": channel.name,
                           "reason": channel.status_reason})
        elif channel.status != Channel.Status.STOPPED:
            active.append(_active_entry(channel, stream, verdict, reasons))
        if stream is not None and (count := error_count(stream, now - RECENT)):
            errors.append({"number": channel.number, "name": channel.name, "errors_last_minute": count})
    return {
        "at": now,
        "channels": {"total": len(channels), "by_status": _status_counts(channels)},
        "active": active,
        "failed": failed,
        "hosts": hosts,
        "totals": _host_totals(hosts),
        "quality": quality,
        "error_rates": sorted(errors, key=lambda e: -e["errors_last_minute"]),
        "alerts": _open_alerts(),
    }


def _active_entry(channel, stream, verdict, reasons):
    metrics = (stream.health_metrics or {}) if stream else {}
    return {"number": channel.number, "name": channel.name, "status": channel.status,
            "host": channel.current_host, "uptime_s": uptime_seconds(channel),
            "verdict": verdict, "reasons": reasons, "speed": metrics.get("speed"),
            "fps": metrics.get("fps"), "bitrate_kbps": metrics.get("bitrate_kbps")}


def _status_counts(channels):
    counts = dict.fromkeys(Channel.Status.values, 0)
    for channel in channels:
        counts[channel.status] += 1
    return counts


def _host_totals(hosts):
    capacity = sum(host["capacity"] for host in hosts)
    used = sum(host["active_streams"] for host in hosts)
    return {"live_hosts": len(hosts), "capacity": capacity, "active_streams": used,
            "free_slots": max(capacity - used, 0)}


def _open_alerts():
    rows = Alert.objects.filter(cleared_at=None).values("kind").annotate(n=Count("id"))
    by_kind = {row["kind"]: row["n"] for row in rows}
    return {"open": sum(by_kind.values()), "by_kind": by_kind}


# --- performance analysis ------------------------------------------------------------------------
def analyze_channel_performance(channel=None, window_minutes=60):
    """Per channel over the window: sample statistics, drops, dups and restarts added, findings
    in words, availability and the seed's analytics (analytics.py); for every channel with
    samples or as-run time in the window (or the one asked for), in four queries."""
    until = timezone.now()
    since = until - timedelta(minutes=window_minutes)
    samples = MetricSample.objects.filter(at__gte=since, at__lte=until)
    if channel is not None:
        samples = samples.filter(channel=channel)
    stats = {row.pop("channel_id"): row for row in samples.values("channel_id").annotate(**_AGGREGATES)}
    counters = _counter_deltas(samples)
    channels = Channel.objects.select_related("config")
    if channel is not None:
        channels = channels.filter(pk=channel.pk)
    judged = [(ch, windows["window"]) for ch, windows in channel_availability(channels, {"window": until - since}, until)
              if channel is not None or ch.pk in stats or windows["window"]["availability_percent"] is not None]
    return {"window_minutes": window_minutes, "since": since, "until": until,
            "channels": [_performance(ch, stats.get(ch.pk), counters.get(ch.pk), availability, window_minutes)
                         for ch, availability in judged]}


_AGGREGATES = {
    "samples": Count("id"),
    "slow_samples": Count("id", filter=Q(speed__lt=REAL_TIME)),
    **{f"{field}_{name}": fn(field) for field in STATS_FIELDS
       for name, fn in (("avg", Avg), ("min", Min), ("max", Max))},
    "throughput_kbps_avg": Avg(F("bitrate_kbps") * F("speed")),  # bits out per second of wall time
}


def _counter_deltas(samples):
    """{channel id: drops, dups and restarts added in the window}: counters are per FFmpeg
    process (run, restart count), so each process adds its max - min."""
    rows = samples.values("channel_id", "stream_id", "restart_count").annotate(
        drops=Max("drop_frames") - Min("drop_frames"), dups=Max("dup_frames") - Min("dup_frames"))
    totals, restarts = {}, {}
    for row in rows:
        total = totals.setdefault(row["channel_id"], {"drops": 0, "dups": 0, "restarts": 0})
        total["drops"] += row["drops"] or 0
        total["dups"] += row["dups"] or 0
        restarts.setdefault((row["channel_id"], row["stream_id"]), []).append(row["restart_count"])
    for (channel_id, _stream), counts in restarts.items():
        totals[channel_id]["restarts"] += max(counts) - min(counts)
    return totals


def _performance(channel, stats, counters, availability, window_minutes):
    stats = stats or {"samples": 0, "slow_samples": 0}
    counters = counters or {"drops": 0, "dups": 0, "restarts": 0}
    entry = {"number": channel.number, "name": channel.name, "samples": stats["samples"],
             **{field: {name: stats.get(f"{field}_{name}") for name in ("avg", "min", "max")}
                for field in STATS_FIELDS},
             **counters}
    entry["findings"] = _findings(entry, stats["slow_samples"], channel.config.resource_limits)
    entry.update(performance_analytics(entry, stats, availability, window_minutes, channel.config.stream_settings))
    return entry


def _findings(entry, slow_samples, limits):
    if not entry["samples"]:
        return ["no samples in the window"]
    findings = []
    if slow_samples:
        findings.append(f"speed below real time in {100 * slow_samples / entry['samples']:.0f}% of samples")
    if entry["drops"]:
        findings.append(f"drops rising: {entry['drops']} frames dropped")
    if entry["restarts"]:
        findings.append(f"{entry['restarts']} FFmpeg restarts")
    for field, limit_key, unit in LIMITS:
        peak = entry[field]["max"]
        if (limit := exceeded(peak, limits, limit_key)) is not None:
            findings.append(f"{field} peaked at {peak:g}{unit}, over its limit {limit:g}{unit}")
    return findings
