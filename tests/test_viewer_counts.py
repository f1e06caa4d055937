"""Viewer counts from viewer sessions written straight to the database (no FFmpeg, no worker):
the figures of GET /api/viewers over a window, its bad filters, the Prometheus series, and
`retrovue viewers`."""
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.models import ViewerSession
from streams_app import tuning

from .factories import make_channel
from .test_cli import retrovue
from .test_monitoring import scrape, value

HOUR = timedelta(hours=1)


def watched(channel, kind, began, seen, ended=False):
    """A session of `channel` from `began` to `seen` (ended there, or still open)."""
    return ViewerSession.objects.create(channel=channel, kind=kind, client=f"192.0.2.1 {kind}", started_at=began,
                                        last_seen_at=seen, ended_at=seen if ended else None)


def audience(now):
    """Channel 1: a TS viewer for 2 h and an HLS one for 30 min (both watching), a TS session that
    ended 20 h ago after 10 h (4 h of it in the last day), an HLS hour two days ago. Channel 2: an
    HLS hour that ended 2 h ago. Channel 3: nobody."""
    first, second = make_channel(1), make_channel(2)
    make_channel(3)
    watched(first, "ts", now - 2 * HOUR, now)
    watched(first, "hls", now - HOUR / 2, now - timedelta(seconds=10))
    watched(first, "ts", now - 30 * HOUR, now - 20 * HOUR, ended=True)
    watched(first, "hls", now - 50 * HOUR, now - 49 * HOUR, ended=True)
    watched(second, "hls", now - 3 * HOUR, now - 2 * HOUR, ended=True)
    return first


def figures(report):
    return {entry["number"]: (entry["viewers_now"], entry["viewers_by_kind"], entry["tune_ins"],
                              entry["watch_time_s"]) for entry in report}


@pytest.fixture
def now(monkeypatch):
    """The clock stands still, so a window cuts sessions at an exact second."""
    frozen = timezone.now().replace(microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: frozen)
    return frozen


@pytest.mark.django_db
def test_viewers_now_by_kind_and_tune_ins_and_watch_time_within_the_window(api, now):
    audience(now)
    day = api.get("/api/viewers")
    assert day.status_code == 200, day.content
    assert [(entry["number"], entry["name"]) for entry in day.data] == [(1, "Channel 1"), (2, "Channel 2"),
                                                                       (3, "Channel 3")]
    assert day.data[0]["since"] == now - 24 * HOUR
    assert figures(day.data) == {1: (2, {"ts": 1, "hls": 1}, 2, 7200 + 1790 + 4 * 3600),
                                 2: (0, {"ts": 0, "hls": 0}, 1, 3600),
                                 3: (0, {"ts": 0, "hls": 0}, 0, 0)}
    last_hour = api.get("/api/viewers", {"hours": "1"}).data
    assert figures(last_hour)[1] == (2, {"ts": 1, "hls": 1}, 1, 3600 + 1790)
    assert figures(last_hour)[2] == (0, {"ts": 0, "hls": 0}, 0, 0)
    three_days = api.get("/api/viewers", {"hours": "72", "channel": "1"}).data
    assert figures(three_days) == {1: (2, {"ts": 1, "hls": 1}, 4, 7200 + 1790 + 10 * 3600 + 3600)}


@pytest.mark.django_db
@pytest.mark.parametrize("params,field", [({"hours": "0"}, "hours"), ({"hours": "721"}, "hours"),
                                          ({"hours": "a day"}, "hours"), ({"channel": "99"}, "channel")])
def test_a_bad_channel_or_window_is_a_field_error(api, params, field):
    make_channel(1)
    response = api.get("/api/viewers", params)
    assert response.status_code == 400 and list(response.json()) == [field], response.content


@pytest.mark.django_db
def test_figures_of_every_channel_take_one_query(now, django_assert_num_queries):
    first = audience(now)
    with django_assert_num_queries(1):
        day = tuning.viewer_figures(now - 24 * HOUR)
    figures = day[first.pk]
    assert (figures.viewers_now, figures.tune_ins, figures.watch_time_s) == (2, 2, 7200 + 1790 + 4 * 3600)


@pytest.mark.django_db
def test_metrics_count_viewers_now_and_all_time_tune_ins_and_watch_time(client):
    audience(timezone.now())
    samples = scrape(client)
    for number, ts, hls, tune_ins, seconds in ((1, 1, 1, 4, 7200 + 1790 + 10 * 3600 + 3600), (2, 0, 0, 1, 3600),
                                               (3, 0, 0, 0, 0)):
        labels = {"channel": str(number), "name": f"Channel {number}"}
        assert value(samples, "retrovue_viewers", **labels, kind="ts") == ts
        assert value(samples, "retrovue_viewers", **labels, kind="hls") == hls
        assert value(samples, "retrovue_tune_ins_total", **labels) == tune_ins
        assert value(samples, "retrovue_watch_seconds_total", **labels) == seconds


@pytest.mark.django_db(transaction=True)
def test_the_cli_lists_the_figures_and_refuses_bad_input_in_one_line():
    audience(timezone.now())
    listed = retrovue("viewers", "--channel", "1", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)
    assert (entry["number"], entry["viewers_now"], entry["viewers_by_kind"], entry["tune_ins"]) == (
        1, 2, {"ts": 1, "hls": 1}, 2)
    assert entry["watch_time_s"] == pytest.approx(7200 + 1790 + 4 * 3600, abs=60)  # the window moved on a little
    table = retrovue("viewers", "--hours", "72").stdout.splitlines()
    assert table[0].startswith("viewers since ") and table[1].split() == [
        "number", "name", "now", "ts", "hls", "tune-ins", "watched", "h"]
    assert [line.split() for line in table[2:]] == [["1", "Channel", "1", "2", "1", "1", "4", "13.5"],
                                                    ["2", "Channel", "2", "0", "0", "0", "1", "1.0"],
                                                    ["3", "Channel", "3", "0", "0", "0", "0", "0.0"]]
    refused = retrovue("viewers", "--hours", "0")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "hours" in refused.stderr


@pytest.mark.django_db
def test_the_channels_page_shows_each_channels_viewers(admin_client, now):
    audience(now)
    rows = {row["channel"].number: row["viewers"] for row in admin_client.get("/channels/live").context["rows"]}
    assert (rows[1].viewers_now, rows[1].tune_ins, rows[3].viewers_now) == (2, 2, 0)
    assert "2 tune-ins" in admin_client.get("/channels/live").content.decode()


@pytest.mark.django_db
def test_sessions_past_their_retention_go(now, settings):
    from streams_app.tuning import prune_viewer_sessions

    audience(now)
    settings.RETROVUE_VIEWER_RETENTION_DAYS = 1
    assert prune_viewer_sessions(now) == 1  # the HLS hour that ended 49 h ago
    assert ViewerSession.objects.count() == 4
