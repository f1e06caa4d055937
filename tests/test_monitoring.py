"""Monitoring: metric history, the health verdict, performance analysis, GET /api/health and the
Prometheus exporter (read back with prometheus_client's own parser), then one real channel."""
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from channels_app.models import Channel
from channels_app.services import get_channel
from resources_app.models import EncodeHost
from streams_app.lifecycle import start_channel
from streams_app.models import Alert, MetricSample, Stream
from streams_app.monitoring import (
    analyze_channel_performance,
    channel_verdict,
    drop_baselines,
    health_verdict,
    metric_series,
    monitor_channel_health,
    prune_metric_samples,
)
from streams_app.tasks import prune_metrics

from .conftest import wait_status
from .factories import make_channel
from .helpers import wait_for

PROGRESS = {"frame": 100, "fps": 25.0, "bitrate_kbps": 3000.0, "speed": 1.0, "drop_frames": 0,
            "dup_frames": 0, "out_time_s": 4.0, "cpu_percent": 10.0, "memory_mb": 50.0, "pid": 4321}
LIMITS = {"max_cpu_percent": 25, "max_memory_mb": 2048, "max_bandwidth_mbps": 10}


def place(channel, status="RUNNING", host="test-a", metrics=None, reason="", **fields):
    """Give `channel` a current run in `status` (channel and run statuses share their values)."""
    channel.generation += 1
    Channel.objects.filter(pk=channel.pk).update(generation=channel.generation, status=status,
                                                 status_reason=reason, desired_state="RUNNING")
    now = timezone.now()
    return Stream.objects.create(channel=channel, host=host, generation=channel.generation,
                                 status=status, started_at=now, heartbeat_at=now,
                                 health_metrics={**PROGRESS, **(metrics or {})}, **fields)


def sample(stream, seconds_ago, restart_count=None, **values):
    at = timezone.now() - timedelta(seconds=seconds_ago)
    fields = {key: PROGRESS[key] for key in MetricSample.FIELDS}
    return MetricSample.objects.create(
        stream=stream, channel_id=stream.channel_id, at=at,
        restart_count=stream.restart_count if restart_count is None else restart_count,
        **{**fields, **values})


def host_row(name="test-a", **fields):
    return EncodeHost.objects.create(name=name, capacity=4, last_heartbeat=timezone.now(),
                                     cpu_percent=12.5, memory_percent=40.0, **fields)


def scrape(client, **headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode())
            for s in family.samples}


def value(samples, metric, /, **labels):
    return samples.get((metric, tuple(sorted(labels.items()))))


# --- history -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_metric_series_is_the_last_hour_oldest_first_in_one_query(django_assert_num_queries):
    channel, other = make_channel(1, port=5001), make_channel(2, port=5002)
    stream, other_stream = place(channel), place(other)
    for seconds_ago, fps in ((7200, 1.0), (60, 3.0), (1800, 2.0)):
        sample(stream, seconds_ago, fps=fps)
    sample(other_stream, 60, fps=9.0)
    with django_assert_num_queries(1):
        series = metric_series(channel)
    assert [row["fps"] for row in series] == [2.0, 3.0]
    assert set(series[0]) == {"at", "bitrate_kbps", "fps", "speed", "drop_frames", "dup_frames",
                              "cpu_percent", "memory_mb", "restart_count"}
    now = timezone.now()
    everything = metric_series(channel, since=now - timedelta(hours=3))
    assert [row["fps"] for row in everything] == [1.0, 2.0, 3.0]
    assert [row["fps"] for row in metric_series(channel, since=now - timedelta(hours=3),
                                                until=now - timedelta(minutes=10))] == [1.0, 2.0]


@pytest.mark.django_db
def test_prune_deletes_only_samples_older_than_the_retention(settings):
    settings.RETROVUE_METRICS_RETENTION_HOURS = 2
    stream = place(make_channel(1, port=5001))
    old, kept = sample(stream, 3 * 3600), sample(stream, 3600)
    assert prune_metric_samples() == 1
    assert list(MetricSample.objects.values_list("pk", flat=True)) == [kept.pk]
    assert prune_metric_samples(now=timezone.now() + timedelta(hours=2)) == 1
    assert prune_metrics() == 0 and not MetricSample.objects.filter(pk=old.pk).exists()


# --- the verdict ---------------------------------------------------------------------------------
VERDICTS = [
    ("healthy", "RUNNING", {}, 0.5, LIMITS, 0, "HEALTHY", []),
    ("failed", "ERROR", {}, None, LIMITS, 0, "FAILED", []),
    ("stopped", "STOPPED", {}, None, LIMITS, 0, "STOPPED", []),
    ("lease expired", "RUNNING", {}, 10.0, LIMITS, 0, "FAILED", ["no heartbeat for 10s"]),
    ("lease in doubt", "RUNNING", {}, 2.5, LIMITS, 0, "UNKNOWN",
     ["no heartbeat for 2.5s: its host may be lost or frozen"]),
    ("starting", "STARTING", {}, 0.5, LIMITS, 0, "DEGRADED", ["starting"]),
    ("slow", "RUNNING", {"speed": 0.9}, 0.5, LIMITS, 0, "DEGRADED", ["speed 0.9x below real time"]),
    ("no speed", "RUNNING", {"speed": None}, 0.5, LIMITS, 0, "DEGRADED", ["no speed reported"]),
    ("dropping", "RUNNING", {"drop_frames": 7}, 0.5, LIMITS, 2, "DEGRADED",
     ["dropping frames (5 recently)"]),
    ("dropped earlier", "RUNNING", {"drop_frames": 7}, 0.5, LIMITS, 7, "HEALTHY", []),
    ("cpu", "RUNNING", {"cpu_percent": 30.0}, 0.5, LIMITS, 0, "DEGRADED",
     ["cpu_percent 30% over its limit 25%"]),
    ("memory", "RUNNING", {"memory_mb": 3000.0}, 0.5, LIMITS, 0, "DEGRADED",
     ["memory_mb 3000 MB over its limit 2048 MB"]),
    ("output leg failing", "RUNNING", {"output_problem": "HLS output failing: segment index9.ts is empty"}, 0.5, LIMITS, 0,
     "DEGRADED", ["HLS output failing: segment index9.ts is empty"]),
    ("no limits", "RUNNING", {"cpu_percent": 300.0}, 0.5, {}, 0, "HEALTHY", []),
    ("several", "RUNNING", {"speed": 0.5, "cpu_percent": 30.0}, 0.5, LIMITS, 0, "DEGRADED",
     ["speed 0.5x below real time", "cpu_percent 30% over its limit 25%"]),
]


@pytest.mark.parametrize("status,change,age,limits,baseline,verdict,reasons",
                         [case[1:] for case in VERDICTS], ids=[case[0] for case in VERDICTS])
def test_health_verdict(settings, status, change, age, limits, baseline, verdict, reasons):
    settings.RETROVUE_LEASE_TTL_SECONDS, settings.RETROVUE_HEARTBEAT_SECONDS = 3, 1
    assert health_verdict(status, {**PROGRESS, **change}, age, limits, baseline) == (verdict, reasons)


@pytest.mark.django_db
def test_only_drops_of_the_same_ffmpeg_within_the_last_minute_degrade_a_channel():
    channel = make_channel(1, port=5001)
    stream = place(channel, metrics={"drop_frames": 10}, restart_count=1)
    sample(stream, 120, drop_frames=0)      # too old: the baseline of a young process is 0
    sample(stream, 30, restart_count=0, drop_frames=0)  # the FFmpeg before the restart
    channel = get_channel(1)
    assert channel_verdict(channel, stream, drop_baselines(channel)) == (
        "DEGRADED", ["dropping frames (10 recently)"])
    sample(stream, 20, drop_frames=10)
    assert channel_verdict(channel, stream, drop_baselines(channel)) == ("HEALTHY", [])


@pytest.mark.django_db
def test_a_failed_channel_explains_itself_with_its_reason():
    channel = make_channel(1, port=5001)
    place(channel, status="ERROR", reason="ffmpeg could not start (exit 1): no such file")
    channel = get_channel(1)
    assert channel_verdict(channel, None, {}) == (
        "FAILED", ["ffmpeg could not start (exit 1): no such file"])


# --- performance analysis ------------------------------------------------------------------------
@pytest.mark.django_db
def test_analyze_aggregates_the_window_per_channel(django_assert_max_num_queries):
    stream = place(make_channel(1, port=5001))
    sample(stream, 7200, drop_frames=0, fps=1.0)  # outside the window
    process_a = [(3000, 1.0, 0, 10.0), (2400, 0.9, 0, 20.0), (1800, 1.0, 3, 30.0)]
    process_b = [(1200, 0.8, 0, 20.0), (600, 1.0, 2, 20.0)]
    for restarts, samples in ((0, process_a), (1, process_b)):
        for seconds_ago, speed, drops, cpu in samples:
            sample(stream, seconds_ago, restart_count=restarts, speed=speed, drop_frames=drops,
                   dup_frames=drops * 2, cpu_percent=cpu, bitrate_kbps=1000.0 * (1 + drops))
    quiet = place(make_channel(2, port=5002))
    sample(quiet, 60)
    make_channel(3, port=5003)  # no samples: left out of the overview
    with django_assert_max_num_queries(4):  # samples, counters, channels, as-run rows
        report = analyze_channel_performance(window_minutes=60)
    assert report["window_minutes"] == 60
    assert [entry["number"] for entry in report["channels"]] == [1, 2]
    busy, calm = report["channels"]
    assert busy["samples"] == 5
    assert busy["speed"]["min"] == 0.8 and busy["speed"]["max"] == 1.0
    assert busy["speed"]["avg"] == pytest.approx(0.94)
    assert busy["cpu_percent"] == {"avg": 20.0, "min": 10.0, "max": 30.0}
    assert busy["bitrate_kbps"]["max"] == 4000.0 and busy["fps"]["min"] == 25.0
    assert (busy["drops"], busy["dups"], busy["restarts"]) == (5, 10, 1)
    assert busy["findings"] == ["speed below real time in 40% of samples",
                                "drops rising: 5 frames dropped", "1 FFmpeg restarts",
                                "cpu_percent peaked at 30%, over its limit 25%"]
    assert calm["findings"] == [] and (calm["drops"], calm["restarts"]) == (0, 0)
    single = analyze_channel_performance(get_channel(3), window_minutes=5)["channels"]
    assert single[0]["samples"] == 0 and single[0]["findings"] == ["no samples in the window"]


# --- GET /api/health -----------------------------------------------------------------------------
def populate(count):
    """`count` running channels on host test-a, one sample each."""
    for number in range(1, count + 1):
        sample(place(make_channel(number, port=5000 + number)), 30)


@pytest.mark.django_db
def test_health_summarises_channels_hosts_quality_errors_and_alerts(api):
    host_row("test-a")
    EncodeHost.objects.create(name="gone", capacity=8, state="OFFLINE")
    now = timezone.now()
    recent, old = now.isoformat(), (now - timedelta(minutes=5)).isoformat()
    good = place(make_channel(1, port=5001), error_log=[
        {"at": recent, "line": "[error] packet corrupt"}, {"at": recent, "line": "[error] again"},
        {"at": old, "line": "[error] long ago"}, {"at": recent, "line": "[warning] only a warning"}])
    place(make_channel(2, port=5002), metrics={"speed": 0.5})
    place(make_channel(3, port=5003), status="ERROR", reason="no such file")
    make_channel(4, port=5004)
    Alert.objects.create(kind="CPU", channel_id=good.channel_id, message="cpu")
    Alert.objects.create(kind="HOST_LOST", host="gone", message="lost")
    Alert.objects.create(kind="STALL", channel_id=good.channel_id, message="old",
                         cleared_at=timezone.now())
    health = api.get("/api/health").data
    assert health["channels"] == {"total": 4, "by_status": {
        "STOPPED": 1, "STARTING": 0, "RUNNING": 2, "STOPPING": 0, "ERROR": 1}}
    assert [(c["number"], c["host"], c["verdict"], c["speed"], c["fps"], c["bitrate_kbps"])
            for c in health["active"]] == [(1, "test-a", "HEALTHY", 1.0, 25.0, 3000.0),
                                           (2, "test-a", "DEGRADED", 0.5, 25.0, 3000.0)]
    assert health["active"][1]["reasons"] == ["speed 0.5x below real time"]
    assert health["failed"] == [{"number": 3, "name": "Channel 3", "reason": "no such file"}]
    assert health["hosts"] == [{"name": "test-a", "live": True, "capacity": 4, "active_streams": 2,
                                "cpu_percent": 12.5, "memory_percent": 40.0}]
    assert health["totals"] == {"live_hosts": 1, "capacity": 4, "active_streams": 2, "free_slots": 2}
    assert health["quality"] == {"HEALTHY": 1, "DEGRADED": 1, "UNKNOWN": 0, "FAILED": 1}
    assert health["error_rates"] == [{"number": 1, "name": "Channel 1", "errors_last_minute": 2}]
    assert health["alerts"] == {"open": 2, "by_kind": {"CPU": 1, "HOST_LOST": 1}}
    assert APIClient().get("/api/health").status_code in (401, 403)


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 10])
def test_health_and_metrics_take_a_bounded_number_of_queries(count, client, django_assert_max_num_queries):
    host_row()
    populate(count)
    with django_assert_max_num_queries(6):
        health = monitor_channel_health()
    with django_assert_max_num_queries(11):  # 4 for channels and hosts, 5 for reservations, 1 for open alerts,
        # 1 for every channel's viewer figures (one aggregate over the sessions)
        samples = scrape(client)
    assert len(health["active"]) == count
    assert sum(value(samples, "retrovue_channel_up", channel=str(n), name=f"Channel {n}", host="test-a")
               for n in range(1, count + 1)) == count


@pytest.mark.django_db
def test_performance_endpoint(api):
    sample(place(make_channel(1, port=5001)), 30)
    report = api.get("/api/performance?channel=1&window=5").data
    assert [entry["number"] for entry in report["channels"]] == [1] and report["window_minutes"] == 5
    assert api.get("/api/performance").data["channels"][0]["samples"] == 1
    assert "window" in api.get("/api/performance?window=soon").data
    assert api.get("/api/performance?channel=9").status_code == 404


# --- GET /metrics --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_metrics_expose_channels_and_hosts_in_prometheus_format(client):
    host_row("test-a")
    EncodeHost.objects.create(name="gone", capacity=8, state="OFFLINE")
    place(make_channel(1, port=5001), metrics={"drop_frames": 3, "dup_frames": 4}, restart_count=2)
    make_channel(2, port=5002)
    samples = scrape(client)
    one = {"channel": "1", "name": "Channel 1", "host": "test-a"}
    two = {"channel": "2", "name": "Channel 2", "host": ""}
    expected = {
        "retrovue_channel_up": 1, "retrovue_channel_bitrate_kbps": 3000, "retrovue_channel_fps": 25,
        "retrovue_channel_speed": 1, "retrovue_channel_dropped_frames_total": 3,
        "retrovue_channel_duplicated_frames_total": 4, "retrovue_channel_restarts_total": 2,
        "retrovue_channel_cpu_percent": 10, "retrovue_channel_memory_bytes": 50 * 2**20,
    }
    assert {name: value(samples, name, **one) for name in expected} == expected
    assert value(samples, "retrovue_channel_status", status="RUNNING", **one) == 1
    assert value(samples, "retrovue_channel_up", **two) == 0
    assert value(samples, "retrovue_channel_status", status="STOPPED", **two) == 1
    assert value(samples, "retrovue_channel_fps", **two) is None
    hosts = {name: (value(samples, name, host="test-a"), value(samples, name, host="gone"))
             for name in ("retrovue_host_capacity", "retrovue_host_active_streams",
                          "retrovue_host_cpu_percent", "retrovue_host_live")}
    assert hosts == {"retrovue_host_capacity": (4, 8), "retrovue_host_active_streams": (1, 0),
                     "retrovue_host_cpu_percent": (12.5, None), "retrovue_host_live": (1, 0)}
    assert value(samples, "retrovue_host_resource_capacity", host="test-a", resource="cpu") == \
        EncodeHost.objects.get(name="test-a").cpu_capacity
    assert value(samples, "retrovue_host_resource_reserved", host="test-a", resource="memory_mb") == 0


@pytest.mark.django_db
def test_metrics_token_gate(client, settings):
    assert client.get("/metrics").status_code == 200
    settings.RETROVUE_METRICS_TOKEN = "s3cret"
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Token s3cret").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    assert client.post("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 405


# --- end to end ----------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_end_to_end_a_real_channel_shows_up_in_metrics_and_health(api, client, live_host, media, free_port):
    make_channel(21, name="Live", port=free_port, quality="copy", playlist=[str(media["clip"])])
    start_channel(get_channel(21))
    wait_status(21, "RUNNING")
    labels = {"channel": "21", "name": "Live", "host": live_host.host}

    def streaming():
        samples = scrape(client)
        return value(samples, "retrovue_channel_up", **labels) == 1 and \
            (value(samples, "retrovue_channel_fps", **labels) or 0) > 0

    wait_for(streaming, timeout=15, what="channel 21 up with fps > 0 in /metrics")
    active = api.get("/api/health").data["active"]
    assert [(c["number"], c["host"], c["status"]) for c in active] == [(21, live_host.host, "RUNNING")]
    assert active[0]["verdict"] in ("HEALTHY", "DEGRADED")
