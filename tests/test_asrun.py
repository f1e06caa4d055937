"""The as-run log as the engine's recorder writes it and operators read it (API JSON and CSV, CLI,
page, admin), and its retention. What it records against a real capture is checked where the
engine airs for real (test_playout.py, test_failover.py)."""
import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.timeline import Segment
from streams_app.asrun import prune_as_run
from streams_app.models import AsRunEntry, Stream
from streams_app.playout.asrun import AsRunLog

from .factories import make_channel
from .test_cli import retrovue

T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def segment(title, start, end, kind="program", description=""):
    return Segment(at(start), at(end), kind, f"/media/{title}.mp4", 0.0, title=title, description=description)


def run(channel, host="test-a", **fields):
    generation = Stream.objects.filter(channel=channel).count() + 1
    return Stream.objects.create(channel=channel, host=host, generation=generation, **fields)


def rows(channel):
    return list(AsRunEntry.objects.filter(channel=channel).values_list("kind", "title", "actual_start", "actual_end",
                                                                      "frames", "note"))


@pytest.fixture
def aired(transactional_db):
    """Channel 7 aired news then a film on host a, whose worker was killed mid-film; host b
    took over 3 s after its last heartbeat and aired the rest of the film."""
    channel = make_channel(7, port=5007)
    lost = run(channel, status=Stream.Status.ERROR, status_reason="host test-a lost (lease expired)",
               heartbeat_at=at(40), ended_at=at(43))
    log = AsRunLog(channel.pk, lost.pk, "test-a")
    log.on_air(segment("news", 0, 30), at(0))
    log.on_air(segment("film", 30, 90), at(30), previous_frames=750)
    taken_over = run(channel, host="test-b")
    AsRunLog(channel.pk, taken_over.pk, "test-b").on_air(segment("film", 30, 90), at(43))
    return channel


def test_the_recorder_closes_a_lost_run_at_its_last_sign_of_life_and_logs_the_interruption(aired):
    assert rows(aired) == [
        ("program", "news", at(0), at(30), 750, ""),
        ("program", "film", at(30), at(40), None, "end not recorded: its run was lost"),
        ("interruption", "", at(40), at(43), None, "host test-a lost (lease expired)"),
        ("program", "film", at(43), None, None, ""),
    ]


@pytest.mark.django_db(transaction=True)
def test_an_operator_stop_is_no_interruption_an_output_restart_is():
    channel = make_channel(8, port=5008)
    stopped = run(channel, status=Stream.Status.STOPPED, status_reason="stopped")
    log = AsRunLog(channel.pk, stopped.pk, "test-a")
    log.on_air(segment("slate", 0, 10, kind="slate", description="film.mp4 cannot be read: No such file"), at(0))
    log.off_air(at(10), 250, "output stopped")
    again = run(channel)
    first = AsRunLog(channel.pk, again.pk, "test-a")
    first.on_air(segment("film", 20, 80), at(20))
    first.off_air(at(25), 125, "output stage ended: [Errno 32] Broken pipe")
    AsRunLog(channel.pk, again.pk, "test-a").on_air(segment("film", 20, 80), at(25.2))
    assert rows(channel) == [
        ("slate", "slate", at(0), at(10), 250, "film.mp4 cannot be read: No such file; output stopped"),
        ("program", "film", at(20), at(25), 125, "output stage ended: [Errno 32] Broken pipe"),
        ("interruption", "", at(25), at(25.2), None, "the output stage restarted"),
        ("program", "film", at(25.2), None, None, ""),
    ]


def test_api_answers_json_and_csv_with_the_same_rows(aired, api):
    listed = api.get("/api/asrun", {"channel": 7, "from": at(-60).isoformat(), "to": at(120).isoformat()}).json()
    assert [(row["kind"], row["title"], row["duration_s"]) for row in listed] == [
        ("program", "news", 30.0), ("program", "film", 10.0), ("interruption", "", 3.0), ("program", "film", None)]
    assert listed[2]["host"] == "test-b" and listed[0]["scheduled_start"] == at(0).isoformat().replace("+00:00", "Z")
    response = api.get("/api/asrun", {"channel": "7", "from": at(-60).isoformat(), "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(row["kind"], row["title"], row["actual_end"]) for row in table] == [
        ("program", "news", at(30).isoformat(timespec="milliseconds")), ("program", "film", at(40).isoformat(
            timespec="milliseconds")), ("interruption", "", at(43).isoformat(timespec="milliseconds")),
        ("program", "film", "")]
    # A window ending before the film: only the news overlaps it.
    assert [row["title"] for row in api.get("/api/asrun", {"from": at(-60).isoformat(),
                                                           "to": at(20).isoformat()}).json()] == ["news"]


@pytest.mark.parametrize("params, field", [
    ({"from": "yesterday"}, "from"), ({"to": "2026-13-40"}, "to"), ({"channel": "99"}, "channel"),
    ({"from": "2026-11-27T10:00:00Z", "to": "2026-11-27T09:00:00Z"}, "from")])
@pytest.mark.parametrize("form", ["json", "csv"])
def test_bad_filters_are_400_json_with_the_field(db, api, params, field, form):
    response = api.get("/api/asrun", {**params, "format": form})
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert list(response.json()) == [field]


def test_cli_prints_a_table_csv_or_json_and_exits_2_on_bad_input(aired):
    table = retrovue("asrun", "--channel", "7", "--from", at(-60).isoformat())
    assert table.returncode == 0, table.stderr
    assert "interruption" in table.stdout and "host test-a lost" in table.stdout and "on air" in table.stdout
    exported = retrovue("asrun", "--channel", "7", "--from", at(-60).isoformat(), "--csv")
    assert [row["title"] for row in csv.DictReader(io.StringIO(exported.stdout))] == ["news", "film", "", "film"]
    bad = retrovue("asrun", "--from", "noon")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "from" in bad.stderr


def test_page_and_admin_show_the_log_and_export_it(aired, admin_client):
    page = admin_client.get("/asrun", {"channel": "7", "from": at(-60).isoformat()})
    assert page.status_code == 200
    text = page.content.decode()
    assert "host test-a lost (lease expired)" in text and "news" in text and "format=csv" in text
    assert admin_client.get("/asrun", {"from": "noon"}).status_code == 400
    listing = "/admin/streams_app/asrunentry/"
    assert admin_client.get(listing).context["cl"].result_count == 4
    assert admin_client.get(f"{listing}{AsRunEntry.objects.first().pk}/change/").status_code == 200
    exported = admin_client.post(listing, {"action": "export_csv",
                                           "_selected_action": list(AsRunEntry.objects.values_list("pk", flat=True))})
    assert exported["Content-Type"].startswith("text/csv") and exported.content.decode().count("\n") == 5


def test_retention_drops_only_what_ended_before_it(aired, settings):
    settings.RETROVUE_ASRUN_RETENTION_DAYS = 1
    assert prune_as_run(now=at(40) + timedelta(days=1, seconds=1)) == 2  # the news and the lost film
    assert [title for _, title, *_ in rows(aired)] == ["", "film"]


def test_each_entry_says_how_many_viewers_watched_during_it(aired, api):
    from channels_app.models import ViewerSession

    watch = dict(channel=aired, kind="ts", client="192.0.2.9")
    ViewerSession.objects.create(started_at=at(10), last_seen_at=at(35), ended_at=at(35), **watch)  # news, film
    ViewerSession.objects.create(started_at=at(50), last_seen_at=at(60), **{**watch, "kind": "hls"})  # the film after
    listed = api.get("/api/asrun", {"channel": 7, "from": at(-60).isoformat(), "to": at(120).isoformat()}).json()
    assert [(row["title"], row["viewers"]) for row in listed] == [("news", 1), ("film", 1), ("", 0), ("film", 1)]
    table = list(csv.DictReader(io.StringIO(api.get("/api/asrun", {"channel": 7, "from": at(-60).isoformat(),
                                                                  "format": "csv"}).content.decode())))
    assert [row["viewers"] for row in table] == ["1", "1", "0", "1"]
