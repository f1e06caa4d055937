"""Availability (uptime, downtime, failures, MTBF, MTTR over 24 h, 7 d, 30 d) from the as-run log,
and the seed's performance analytics (bitrate, drops, latency, throughput, quality score): the
pure figures, then real rows through the database, the API, the CLI and /streams."""
import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from channels_app.models import Channel
from streams_app.availability import LogRow, channel_availability, figures, periods
from streams_app.models import AsRunEntry, MetricSample, Stream

from .factories import make_channel
from .test_cli import retrovue

NOW = timezone.now().replace(microsecond=0)
HOUR, DAY = 3600, 86400


def ago(seconds):
    return NOW - timedelta(seconds=seconds)


def run(channel, status, reason="", heartbeat_at=None):
    generation = Stream.objects.filter(channel=channel).count() + 1
    Channel.objects.filter(pk=channel.pk).update(generation=generation)
    return Stream.objects.create(channel=channel, host="test-a", generation=generation, status=status,
                                 status_reason=reason, heartbeat_at=heartbeat_at)


def aired(stream, start, end=None, kind="program"):
    return AsRunEntry.objects.create(channel_id=stream.channel_id, stream=stream, host=stream.host, kind=kind,
                                     title=kind, actual_start=start, actual_end=end)


def wants(channel, state):
    Channel.objects.filter(pk=channel.pk).update(desired_state=state)


def by_number(report):
    return {channel.number: windows for channel, windows in report}


# --- the pure figures ------------------------------------------------------------------------------
def test_figures_clip_to_the_window_and_let_aired_time_win_over_an_overlapping_outage():
    window = (ago(100), NOW)
    assert figures([(ago(150), ago(60)), (ago(30), NOW)], [(ago(60), ago(30))], *window) == {
        "uptime_s": 70.0, "downtime_s": 30.0, "availability_percent": 70.0, "failures": 1,
        "mtbf_s": 70.0, "mttr_s": 30.0}
    # an outage begun before the window costs time in it but is no failure of it
    assert figures([(ago(90), ago(50)), (ago(40), NOW)], [(ago(200), ago(90)), (ago(50), ago(40))], *window) == {
        "uptime_s": 80.0, "downtime_s": 20.0, "availability_percent": 80.0, "failures": 1,
        "mtbf_s": 80.0, "mttr_s": 20.0}
    assert figures([], [], *window)["availability_percent"] is None


def test_periods_close_a_lost_run_at_its_heartbeat_and_skip_start_up_after_an_operator_stop():
    live = [LogRow("program", ago(60), None)]
    assert periods(live, True, NOW) == ([(ago(60), NOW)], [])
    lost = [LogRow("program", ago(60), None, run_live=False, run_seen_at=ago(20))]
    assert periods(lost, True, NOW) == ([(ago(60), ago(20))], [(ago(20), NOW)])
    assert periods(lost, False, NOW) == ([(ago(60), ago(20))], [])  # stopped since: not down
    stopped = [LogRow("program", ago(60), ago(30), run_live=False, operator_stopped=True)]
    assert periods(stopped, True, NOW) == ([(ago(60), ago(30))], [])  # started again, not yet on air
    assert periods([], True, NOW) == ([], [])


seconds = st.integers(min_value=0, max_value=10_000)
rows = st.lists(st.tuples(st.sampled_from(["program", "slate", "interruption"]), seconds,
                          st.one_of(st.none(), seconds), st.booleans(), st.one_of(st.none(), seconds),
                          st.booleans()), max_size=12)


@given(rows=rows, wants_air=st.booleans(), since=seconds, length=st.integers(min_value=1, max_value=10_000))
def test_up_and_down_never_exceed_the_window_and_availability_is_a_percent(rows, wants_air, since, length):
    def at(offset):
        return NOW - timedelta(seconds=20_000 - offset)

    log = sorted((LogRow(kind, at(begin), None if span is None else at(begin + span), live,
                         None if seen is None else at(seen), stopped)
                  for kind, begin, span, live, seen, stopped in rows), key=lambda row: row.start)
    result = figures(*periods(log, wants_air, NOW), at(since), at(since + length))
    assert result["uptime_s"] >= 0 and result["downtime_s"] >= 0
    assert result["uptime_s"] + result["downtime_s"] <= length + 0.001
    assert result["availability_percent"] is None or 0 <= result["availability_percent"] <= 100


# --- from the database -----------------------------------------------------------------------------
@pytest.fixture
def history(db):
    """Channel 1 over the last 30 days: an interruption 8 days ago, one 23 hours ago, an operator's
    stop 10 h to 8 h ago, and off air for the last 2 hours after its host was lost. Channel 2 airs
    now; 3 aired until its host was lost 30 minutes ago (its row never closed); 4 was stopped by
    its operator; 5 was started again after an operator's stop and is not on air yet; 6 never aired."""
    one = make_channel(1)
    wants(one, "RUNNING")
    old = run(one, Stream.Status.ERROR, "ffmpeg exited with 1")
    aired(old, ago(10 * DAY), ago(8 * DAY + HOUR))
    aired(old, ago(8 * DAY + HOUR), ago(8 * DAY), kind="interruption")
    failed = run(one, Stream.Status.ERROR, "output stage ended")
    aired(failed, ago(8 * DAY), ago(26 * HOUR))
    aired(failed, ago(26 * HOUR), ago(23 * HOUR))
    stopped = run(one, Stream.Status.STOPPED, "stopped")
    aired(stopped, ago(23 * HOUR), ago(23 * HOUR - 60), kind="interruption")
    aired(stopped, ago(23 * HOUR - 60), ago(10 * HOUR))
    lost = run(one, Stream.Status.ERROR, "host test-a lost (lease expired)")
    aired(lost, ago(8 * HOUR), ago(2 * HOUR))
    aired(run(make_channel(2), Stream.Status.RUNNING), ago(HOUR))
    three = make_channel(3)
    wants(three, "RUNNING")
    aired(run(three, Stream.Status.ERROR, "host test-a lost", heartbeat_at=ago(HOUR / 2)), ago(HOUR))
    aired(run(make_channel(4), Stream.Status.STOPPED, "stopped"), ago(3 * HOUR), ago(HOUR))
    five = make_channel(5)
    aired(run(five, Stream.Status.STOPPED, "stopped"), ago(3 * HOUR), ago(2 * HOUR))
    run(five, Stream.Status.STARTING)
    wants(five, "RUNNING")
    make_channel(6)


def test_channel_1_hand_computed_over_each_window(history, django_assert_num_queries):
    with django_assert_num_queries(2):
        report = by_number(channel_availability(now=NOW))
    # 24 h: up 1 h + (13 h - 60 s) + 6 h; down 60 s + the 2 h since; 10 h to 8 h ago is neither
    assert report[1]["24h"] == {"uptime_s": 71940.0, "downtime_s": 7260.0, "availability_percent": 90.833,
                                "failures": 2, "mtbf_s": 35970.0, "mttr_s": 3630.0}
    # 7 d: also the 142 h from 7 days to 26 hours ago
    assert report[1]["7d"] == {"uptime_s": 590340.0, "downtime_s": 7260.0, "availability_percent": 98.785,
                               "failures": 2, "mtbf_s": 295170.0, "mttr_s": 3630.0}
    # 30 d: also the 47 h from 10 days ago and the hour's interruption 8 days ago
    assert report[1]["30d"] == {"uptime_s": 845940.0, "downtime_s": 10860.0, "availability_percent": 98.732,
                                "failures": 3, "mtbf_s": 281980.0, "mttr_s": 3620.0}


def test_open_rows_lost_hosts_operator_stops_and_start_up(history):
    report = by_number(channel_availability(now=NOW))
    day = {number: windows["24h"] for number, windows in report.items()}
    assert (day[2]["uptime_s"], day[2]["downtime_s"], day[2]["availability_percent"]) == (3600.0, 0.0, 100.0)
    assert day[2]["mtbf_s"] is None and day[2]["mttr_s"] is None
    assert (day[3]["uptime_s"], day[3]["downtime_s"], day[3]["failures"]) == (1800.0, 1800.0, 1)
    assert (day[4]["uptime_s"], day[4]["downtime_s"], day[4]["failures"]) == (7200.0, 0.0, 0)
    assert (day[5]["uptime_s"], day[5]["downtime_s"], day[5]["failures"]) == (3600.0, 0.0, 0)
    assert day[6] == {"uptime_s": 0.0, "downtime_s": 0.0, "availability_percent": None, "failures": 0,
                      "mtbf_s": None, "mttr_s": None}


def test_api_answers_every_channel_or_one_and_400_on_a_bad_channel(history, api):
    everyone = api.get("/api/availability").json()
    assert [entry["number"] for entry in everyone["channels"]] == [1, 2, 3, 4, 5, 6]
    one = api.get("/api/availability", {"channel": "4"}).json()["channels"]
    assert [(entry["number"], entry["desired_state"], list(entry["windows"])) for entry in one] == [
        (4, "STOPPED", ["24h", "7d", "30d"])]
    assert one[0]["windows"]["30d"] == {"uptime_s": 7200.0, "downtime_s": 0.0, "availability_percent": 100.0,
                                        "failures": 0, "mtbf_s": None, "mttr_s": None}
    for bad in ("99", "not-a-channel"):
        response = api.get("/api/availability", {"channel": bad})
        assert response.status_code == 400 and list(response.json()) == ["channel"], response.content


# --- performance analytics -------------------------------------------------------------------------
def sample(stream, minutes_ago, restart_count=0, **values):
    MetricSample.objects.create(stream=stream, channel_id=stream.channel_id, at=timezone.now() - timedelta(minutes=minutes_ago),
                                restart_count=restart_count, **values)


@pytest.fixture
def busy(db):
    """Channel 7 over the last hour: on air but for 6 minutes off, a quarter of its samples below
    real time, 60 frames dropped, one FFmpeg restart."""
    channel = make_channel(7)
    wants(channel, "RUNNING")
    now = timezone.now()
    stream = run(channel, Stream.Status.RUNNING, heartbeat_at=now)
    Channel.objects.filter(pk=channel.pk).update(status="RUNNING")
    aired(stream, now - timedelta(minutes=90), now - timedelta(minutes=30))
    aired(stream, now - timedelta(minutes=30), now - timedelta(minutes=24), kind="interruption")
    aired(stream, now - timedelta(minutes=24))
    for minutes_ago, restarts, speed, fps, kbps, drops in ((50, 0, 1.0, 25.0, 3000.0, 0), (40, 0, 0.9, 25.0, 3000.0, 60),
                                                           (30, 1, 1.0, 24.0, 2000.0, 0), (20, 1, 1.0, 26.0, 4000.0, 0)):
        sample(stream, minutes_ago, restarts, speed=speed, fps=fps, bitrate_kbps=kbps, drop_frames=drops, dup_frames=0)
    return channel


def test_performance_has_the_seeds_keys_with_a_quality_score_from_its_formula(busy, api):
    entry = api.get("/api/performance", {"channel": "7", "window": "60"}).json()["channels"][0]
    assert (entry["average_bitrate_kbps"], entry["throughput_fps"], entry["frame_drops"], entry["restarts"]) == (
        3000.0, 25.0, 60, 1)
    assert entry["throughput_kbps"] == 2925.0  # bitrate x speed: (3000 + 2700 + 2000 + 4000) / 4
    assert entry["latency_ms"] == round(1000 * settings.RETROVUE_PLAYOUT_LEAD_SECONDS) + 100
    assert (entry["availability"]["availability_percent"], entry["availability"]["failures"]) == (90.0, 1)
    # 0.9 x (100 - 40 x 1/4 - 30 x (1 drop a minute / 10) - 30 x (1 restart / 3))
    assert entry["quality_score"] == 69.3
    assert {"samples", "speed", "drops", "dups", "findings"} <= set(entry)  # the keys it had


def test_a_channel_off_air_the_whole_window_scores_0_and_copy_has_its_own_lead(db, api):
    channel = make_channel(8, quality="copy")
    wants(channel, "RUNNING")
    aired(run(channel, Stream.Status.ERROR, "ffmpeg exited with 1"), ago(3 * HOUR), ago(2 * HOUR))
    entry = api.get("/api/performance").json()["channels"][0]
    assert (entry["number"], entry["samples"], entry["quality_score"]) == (8, 0, 0.0)
    assert entry["latency_ms"] == 60 + 100  # CopyMode.lead + the muxers' max_delay


def test_streams_page_shows_availability_and_quality(busy, admin_client):
    text = admin_client.get("/streams/table").content.decode()
    assert "Available 24 h" in text and "Quality 1 h" in text
    # 24 h: 84 minutes up (from 90 minutes ago, on air until the page's now) and 6 down
    shown = re.search(r'([\d.]+)%\s*<div class="muted small">1 failure</div>', text)
    assert shown and float(shown.group(1)) == pytest.approx(100 * 84 / 90, abs=0.002)
    assert '<td class="num">69.3</td>' in text


# --- the CLI -------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_cli_availability_and_performance_tables_json_and_exit_2():
    channel = make_channel(4)
    aired(run(channel, Stream.Status.STOPPED, "stopped"), ago(3 * HOUR), ago(HOUR))
    table = retrovue("availability", "--channel", "4")
    assert table.returncode == 0, table.stderr
    assert [line.split()[3:5] for line in table.stdout.splitlines()[1:]] == [
        ["24h", "100.000%"], ["7d", "100.000%"], ["30d", "100.000%"]]
    shown = json.loads(retrovue("availability", "--json").stdout)
    assert shown["channels"][0]["windows"]["24h"]["uptime_s"] == 7200.0
    bad = retrovue("availability", "--channel", "99")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "channel" in bad.stderr
    performance = retrovue("performance", "--window", "240", "--json")
    assert performance.returncode == 0, performance.stderr
    entry = json.loads(performance.stdout)["channels"][0]
    assert (entry["number"], entry["availability"]["uptime_s"], entry["quality_score"]) == (4, 7200.0, 100.0)
    assert "quality" in retrovue("performance", "--window", "240").stdout
    assert retrovue("performance", "--window", "soon").returncode == 2
