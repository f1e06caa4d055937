"""Early warnings from trends: the line-fitting maths, and beat's evaluate_trends over metric
history rows written as a supervisor would have (no worker, no FFmpeg), at a fixed `now`."""
import math
import random
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from resources_app.models import EncodeHost
from streams_app.alerts import evaluate_alerts
from streams_app.forecasts import data_disk_space, evaluate_trends
from streams_app.models import Alert, DiskSample, MetricSample, Stream
from streams_app.trends import bucket_totals, fit_line, forecast, time_to_cross

from .factories import make_channel

NOW = timezone.now().replace(microsecond=0)
GB = 2**30


# --- the maths -----------------------------------------------------------------------------------
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)


@given(slope=finite, intercept=finite, count=st.integers(3, 60))
def test_a_line_through_exact_points_is_recovered(slope, intercept, count):
    line = fit_line([(t - count, intercept + slope * (t - count)) for t in range(count)])
    assert line.slope == pytest.approx(slope, abs=1e-6)
    assert line.at(0) == pytest.approx(intercept, abs=1e-6)
    assert line.span == count - 1


@given(slope=finite.filter(lambda s: abs(s) > 1e-3), intercept=finite, threshold=finite)
def test_the_crossing_time_lands_on_the_threshold(slope, intercept, threshold):
    line = fit_line([(t, intercept + slope * t) for t in (-3, -2, -1, 0)])
    eta = time_to_cross(line, threshold)
    if eta is None:  # already there or past it, or moving away
        assert (threshold - line.at(0)) / line.slope <= 0
    else:
        assert eta > 0 and line.at(eta) == pytest.approx(threshold, rel=1e-6, abs=1e-6)


def test_too_few_points_or_one_instant_fit_nothing():
    assert fit_line([(0, 1), (1, 2)]) is None
    assert fit_line([(5, 1), (5, 2), (5, 3)]) is None


@given(noise=st.lists(st.floats(-0.2, 0.2), min_size=2, max_size=40), level=st.floats(1.0, 1.3))
def test_noise_without_drift_forecasts_nothing(noise, level):
    """Noise that reads the same backwards has no slope, however wild it is."""
    values = [level + e for e in noise + noise[::-1]]
    series = [(t - len(values), value) for t, value in enumerate(values)]
    assert fit_line(series).slope == pytest.approx(0, abs=1e-9)
    assert forecast(series, 0.98, horizon=30, rising=False) is None


def test_a_drift_toward_the_threshold_is_forecast_with_its_eta():
    series = [(t / 2 - 10, 1.28 - 0.02 * (t / 2 - 10)) for t in range(21)]  # 1.28x now, -0.02x/min
    trend = forecast(series, 1.0, horizon=30, rising=False)
    assert trend.now == pytest.approx(1.28) and trend.eta == pytest.approx(14)
    assert forecast(series, 1.0, horizon=10, rising=False) is None  # beyond the horizon
    assert forecast(series, 1.0, horizon=30, rising=True) is None  # not the way asked
    assert forecast(series, 1.0, horizon=30, rising=False, min_points=30) is None
    assert forecast(series, 1.0, horizon=30, rising=False, min_span=20) is None


def test_bucket_totals_sum_each_sources_mean():
    samples = [(-1.9, "a", 10), (-1.1, "a", 20), (-1.5, "b", 40), (-0.6, "a", 30), (-0.2, "b", 50)]
    assert bucket_totals(samples, 1.0) == [(pytest.approx(-1.5), 55.0), (pytest.approx(-0.4), 80.0)]


# --- evaluate_trends over history rows -----------------------------------------------------------
def running(number, host="enc-1", **limits):
    channel = make_channel(number, port=5000 + number, **({"resource_limits": limits} if limits else {}))
    return Stream.objects.create(channel=channel, host=host, generation=channel.generation,
                                 status=Stream.Status.RUNNING, started_at=NOW - timedelta(hours=1))


def samples(stream, value_at, minutes=10, every_s=30, now=NOW, **fixed):
    """A sample every `every_s` over the last `minutes`, each field from value_at(minutes ago)."""
    count = minutes * 60 // every_s
    MetricSample.objects.bulk_create(
        MetricSample(stream=stream, channel_id=stream.channel_id, at=now - timedelta(seconds=i * every_s),
                     restart_count=stream.restart_count, **fixed, **value_at(i * every_s / 60))
        for i in range(count + 1))


def open_alerts():
    return {(a.kind, a.channel.number if a.channel else a.host): a.message
            for a in Alert.objects.filter(cleared_at=None).select_related("channel")}


def roomy_disk(path):
    return 500 * GB, 1000 * GB


def evaluate(now=NOW, disk=roomy_disk):
    return evaluate_trends(now=now, disk_space=disk)


@pytest.mark.django_db
def test_speed_drifting_toward_real_time_warns_before_and_clears_when_it_levels():
    stream = running(1)
    samples(stream, lambda ago: {"speed": 1.08 + 0.02 * ago})  # 1.08x now, falling 0.02x a minute

    assert evaluate() == {"raised": ["SPEED_TREND channel 1"], "cleared": []}
    assert open_alerts() == {("SPEED_TREND", 1): "speed falling 0.02x/min: 1.08x now, below real time "
                                                  "(0.98x) in ~5 min (trend over 10 min)"}
    alert = Alert.objects.get()
    assert (alert.value, alert.threshold, alert.severity) == (1.08, 0.98, "WARNING")
    assert evaluate_alerts() == {"raised": [], "cleared": []} and open_alerts()  # not the threshold rules'

    later = NOW + timedelta(minutes=10)
    samples(stream, lambda ago: {"speed": 1.08}, now=later)  # it levels off
    assert evaluate(later) == {"raised": [], "cleared": ["SPEED_TREND channel 1"]}
    assert open_alerts() == {}


@pytest.mark.django_db
def test_speed_already_below_real_time_or_noisy_and_flat_raises_nothing():
    noise = random.Random(7)
    samples(running(1), lambda ago: {"speed": 0.95 + 0.01 * ago})  # below already: the verdict's business
    samples(running(2), lambda ago: {"speed": 1.02 + noise.gauss(0, 0.02)})
    assert evaluate() == {"raised": [], "cleared": []}


@pytest.mark.django_db
def test_memory_growing_toward_its_limit_warns_and_a_restart_starts_afresh():
    stream = running(1, max_memory_mb=2048)
    samples(stream, lambda ago: {"memory_mb": 1600 - 30 * ago})  # +30 MB a minute

    assert evaluate()["raised"] == ["MEMORY_TREND channel 1"]
    assert open_alerts() == {("MEMORY_TREND", 1): "memory growing 30 MB/min: 1600 MB now, its 2048 MB limit "
                                                   "in ~15 min (trend over 10 min)"}

    later = NOW + timedelta(minutes=10)
    Stream.objects.filter(pk=stream.pk).update(restart_count=1)
    stream.restart_count = 1
    samples(stream, lambda ago: {"memory_mb": 300}, now=later)  # the new process holds steady
    assert evaluate(later) == {"raised": [], "cleared": ["MEMORY_TREND channel 1"]}


@pytest.mark.django_db
def test_memory_peaks_growing_run_over_run_warn_before_a_run_reaches_the_limit():
    current = running(1, max_memory_mb=2048)
    for number, peak in enumerate((1400, 1600, 1800)):
        run = Stream.objects.create(channel=current.channel, host="enc-1", generation=number + 10,
                                    status=Stream.Status.STOPPED)
        samples(run, lambda ago, peak=peak: {"memory_mb": peak - ago}, now=NOW - timedelta(hours=3 - number))
    samples(current, lambda ago: {"memory_mb": 500})

    assert evaluate()["raised"] == ["MEMORY_TREND channel 1"]
    assert open_alerts()[("MEMORY_TREND", 1)] == (
        "memory peak growing 200 MB a run over the last 3 runs (1400, 1600, 1800 MB): "
        "its 2048 MB limit within 2 more run(s)")


@pytest.mark.django_db
def test_a_hosts_cpu_headroom_shrinking_warns_from_its_streams_samples():
    EncodeHost.objects.create(name="enc-1", cpu_count=2, last_heartbeat=NOW)  # 200% of a core
    samples(running(1), lambda ago: {"cpu_percent": 60.0}, every_s=30)
    samples(running(2), lambda ago: {"cpu_percent": 60 - 4 * ago}, every_s=10)  # +4% of a core a minute
    samples(running(3, host="enc-2"), lambda ago: {"cpu_percent": 90 - 9 * ago})  # no such host row

    assert evaluate()["raised"] == ["CPU_TREND host enc-1"]
    assert open_alerts() == {("CPU_TREND", "enc-1"): "CPU headroom shrinking: its channels use 60% of the host, "
                                                      "2% more a minute, 80% in ~10 min (trend over 10 min)"}

    later = NOW + timedelta(minutes=10)
    for number in (1, 2):
        samples(Stream.objects.get(channel__number=number), lambda ago: {"cpu_percent": 60.0}, now=later)
    assert evaluate(later)["cleared"] == ["CPU_TREND host enc-1"]


@pytest.mark.django_db
def test_the_data_disk_filling_warns_and_clears_when_it_stops(settings):
    settings.RETROVUE_HOST = "enc-1"
    free = [150 * GB]

    def filling(path):
        assert path == str(settings.RETROVUE_DATA_DIR)
        return free[0], 1000 * GB

    raised = []
    for minute in range(-10, 1):  # 5 GB a minute, 100 GB (10%) left now
        raised += evaluate(NOW + timedelta(minutes=minute), filling)["raised"]
        free[0] -= 5 * GB
    assert raised == ["DISK_TREND host enc-1"]  # once half the window showed the trend
    assert open_alerts() == {("DISK_TREND", "enc-1"): (
        f"data disk {settings.RETROVUE_DATA_DIR}: 100.0 GB free of 1000.0 GB (10.0%), "
        "filling 5.0 GB/min, full in ~20 min (trend over 10 min)")}
    assert DiskSample.objects.count() == 11

    free[0] = 900 * GB  # the operator made room
    assert evaluate(NOW + timedelta(minutes=1), filling)["cleared"] == ["DISK_TREND host enc-1"]
    for minute in range(2, 13):
        assert evaluate(NOW + timedelta(minutes=minute), filling) == {"raised": [], "cleared": []}
    assert DiskSample.objects.count() == 11  # a window's worth is kept


@pytest.mark.django_db
def test_a_disk_below_the_free_threshold_warns_without_a_trend(settings):
    settings.RETROVUE_HOST = "enc-1"
    assert evaluate(disk=lambda path: (50 * GB, 1000 * GB))["raised"] == ["DISK_TREND host enc-1"]
    assert open_alerts()[("DISK_TREND", "enc-1")].endswith("(5.0%), below 10% free")
    Alert.objects.create(kind="DISK_TREND", host="enc-9", message="another host's disk")
    assert evaluate()["cleared"] == ["DISK_TREND host enc-1"]
    assert set(open_alerts()) == {("DISK_TREND", "enc-9")}  # read where it runs, cleared there only


@pytest.mark.django_db
def test_the_real_data_disk_is_sampled_and_a_roomy_one_is_quiet(settings, tmp_path):
    settings.RETROVUE_DATA_DIR = tmp_path
    free, total = data_disk_space(str(tmp_path))
    assert 0 < free <= total
    if free / total * 100 < settings.RETROVUE_TREND_DISK_FREE_PERCENT:
        pytest.skip("the test machine's disk is nearly full")
    assert evaluate_trends(now=NOW) == {"raised": [], "cleared": []}
    sample = DiskSample.objects.get()
    assert sample.path == str(tmp_path) and sample.total_bytes == total
    assert math.isclose(sample.free_bytes, free, rel_tol=0.05)
