"""Schedules and switches: PUT/GET with what airs, validation that writes nothing, copy-mode
formats, append, the ContentSwitcher request, and the admin, on media probed by real ffprobe."""
import io
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from channels_app import media, programming, services
from channels_app.models import Channel, MediaAsset, Program, Schedule, TransitionRule
from channels_app.schedules import copy_mode_errors

from .conftest import MEDIA, make_clip
from .factories import make_channel
from .test_admin import messages_of
from .test_cli import retrovue

SCHEDULES = "/admin/channels_app/schedule/"
REENCODE = "re-encode it or use a transcode channel"


@pytest.fixture(scope="module")
def clips():
    return {
        "a": make_clip(MEDIA / "sched" / "a.mp4", 6),
        "b": make_clip(MEDIA / "sched" / "b.mp4", 4, pattern="smptebars"),
        "wide": make_clip(MEDIA / "sched" / "wide.mp4", 2, size="640x360"),
    }


@pytest.fixture
def assets(db, clips):
    return {name: media.import_media(str(path))[0] for name, path in clips.items() if name != "b"}


@pytest.fixture
def channel(db):
    return make_channel(1)


@pytest.fixture
def copy_channel(db):
    return make_channel(2, quality="copy", stream_settings={"resolution": "320x240", "frame_rate": 25})


def current_schedule(number):
    return Channel.objects.get(number=number).current_schedule


def test_put_then_get_round_trip_with_what_airs(api, channel, assets, clips):
    later = (timezone.now() + timedelta(minutes=10)).replace(microsecond=0)
    body = {"timezone": "UTC", "loop": False,
            "transition": {"fill": "FILLER", "filler": assets["wide"].pk},
            "programs": [{"asset": assets["a"].pk, "title": "A", "description": "first", "in_point": 1},
                         {"asset": str(clips["b"]), "start": later.isoformat(), "out_point": 3}]}
    response = api.put("/api/channels/1/schedule", body, format="json")
    assert response.status_code == 200, response.data

    schedule = current_schedule(1)
    assert Schedule.objects.count() == 1 and schedule.pk == response.data["id"]
    b = MediaAsset.objects.get(source=str(clips["b"].resolve()))  # imported on the fly
    assert b.title == "b" and b.duration_s == pytest.approx(4, abs=0.1)
    data = api.get("/api/channels/1/schedule?hours=1").json()
    assert (data["timezone"], data["loop"]) == ("UTC", False)
    assert data["transition"] == {"fill": "FILLER",
                                  "filler": {"id": assets["wide"].pk, "source": assets["wide"].source}}
    assert [(p["position"], p["asset"]["id"], p["start"], p["in_point"], p["out_point"], p["title"])
            for p in data["programs"]] == [
        (0, assets["a"].pk, None, 1.0, None, "A"),
        (1, b.pk, later.isoformat().replace("+00:00", "Z"), None, 3.0, "")]
    assert data["programs"][0]["description"] == "first"
    assert [p["duration_s"] for p in data["programs"]] == pytest.approx([5, 3], abs=0.1)
    assert data["programs"][0]["asset"]["source"] == assets["a"].source

    # Now: A (5 s from its in point), the filler looped until B, B, the filler to the window's end.
    airs = [data["current"], *data["upcoming"]]
    assert [(s["kind"], s["title"], s["source"]) for s in airs] == [
        ("program", "A", assets["a"].source), ("filler", "wide", assets["wide"].source),
        ("program", "b", b.source), ("filler", "wide", assets["wide"].source)]
    assert airs[2]["start"] == data["programs"][1]["start"] and airs[2]["program_id"] == data["programs"][1]["id"]
    assert all(x["end"] == y["start"] for x, y in zip(airs, airs[1:]))

    # What GET shows can be sent back as it is: a new version with the same programs.
    again = api.put("/api/channels/1/schedule", data, format="json")
    assert again.status_code == 200, again.data
    assert Schedule.objects.count() == 2 and current_schedule(1).pk == again.data["id"] != schedule.pk
    assert [p["asset"] for p in again.data["programs"]] == [p["asset"] for p in data["programs"]]


def test_naive_starts_are_read_in_the_schedule_time_zone(api, channel, assets):
    body = {"timezone": "Europe/Amsterdam", "loop": True,
            "programs": [{"asset": assets["a"].pk, "start": "2030-01-01T20:00:00"}]}
    response = api.put("/api/channels/1/schedule", body, format="json")
    assert response.status_code == 200, response.data
    assert Program.objects.get().start.isoformat() == "2030-01-01T19:00:00+00:00"
    assert response.data["programs"][0]["start"].isoformat() == "2030-01-01T20:00:00+01:00"
    assert TransitionRule.objects.get().fill == "SLATE"


def test_no_schedule_reads_as_empty_with_the_slate_on_air(api, channel):
    data = api.get("/api/channels/1/schedule").json()
    assert (data["id"], data["programs"], data["upcoming"]) == (None, [], [])
    assert data["current"]["kind"] == "slate"
    assert api.get("/api/channels/9/schedule").status_code == 404
    assert api.get("/api/channels/1/schedule?hours=-1").data == {
        "hours": ["'-1' is not a number of hours within 0..168"]}


OK = {"asset": "A"}
BAD_SCHEDULES = [
    ({"timezone": "Mars/Base"}, "timezone", "'Mars/Base' is not a time zone"),
    ({"loop": "yes"}, "loop", "not true or false"),
    ({"colour": 1}, "colour", "unknown field"),
    ({"programs": None}, "programs", "required"),
    ({"transition": {"fill": "FADE"}}, "transition.fill", "'FADE' is not one of CUT, FILLER, SLATE"),
    ({"transition": {"fill": "FILLER"}}, "transition.filler", "required when fill is FILLER"),
    ({"transition": {"fill": "SLATE", "filler": "A"}}, "transition.filler", "only used when fill is FILLER"),
    ({"programs": [{"asset": 999999}]}, "programs[0].asset", "no media asset 999999"),
    ({"programs": [{}]}, "programs[0].asset", "required"),
    ({"programs": [OK, {"asset": "/etc/passwd"}]}, "programs[1].asset", "outside the media roots"),
    ({"programs": [OK, {"asset": "JUNK"}]}, "programs[1].asset", "Invalid data found"),
    ({"programs": [OK, {**OK, "start": "tonight"}]}, "programs[1].start", "not an ISO-8601"),
    ({"programs": [{**OK, "out_point": 7}]}, "programs[0].out_point", "past the end of the asset (6"),
    ({"programs": [{**OK, "in_point": 3, "out_point": 2}]}, "programs[0].out_point", "after in_point"),
    ({"programs": [{**OK, "in_point": -1}]}, "programs[0].in_point", "not a number of seconds"),
    ({"programs": [{**OK, "title": "x" * 201}]}, "programs[0].title", "at most 200"),
    ({"programs": [{**OK, "start": "2030-01-01T12:00:00Z"}, {**OK, "start": "2030-01-01T11:00:00Z"}]},
     "programs[1].start", "is before programs[0].start"),
    ({"loop": True, "programs": [{**OK, "start": "2030-01-01T12:00:00Z"},
                                 {**OK, "start": "2030-01-02T12:00:00Z"}]},
     "programs", "a looping schedule must fit in 24 h"),
]


def fill_in(value, refs):
    """BAD_SCHEDULES name their assets: A (clip a) and JUNK (a file ffprobe rejects)."""
    if isinstance(value, dict):
        return {key: fill_in(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_in(item, refs) for item in value]
    return refs.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize("change,field,fragment", BAD_SCHEDULES, ids=[f for _, f, _ in BAD_SCHEDULES])
def test_bad_schedule_is_400_and_writes_nothing(api, channel, assets, change, field, fragment):
    first = api.put("/api/channels/1/schedule", {"programs": [{"asset": assets["a"].pk}]}, format="json").data["id"]
    junk = MEDIA / "sched" / "junk.mp4"
    junk.write_text("not a video\n")
    body = fill_in({"timezone": "UTC", "programs": [OK], **change}, {"A": assets["a"].pk, "JUNK": str(junk)})

    response = api.put("/api/channels/1/schedule", body, format="json")
    assert response.status_code == 400
    assert fragment in " ".join(response.data.get(field, [])), response.data
    assert Schedule.objects.count() == 1 and current_schedule(1).pk == first
    assert Program.objects.count() == 1 and TransitionRule.objects.count() == 1


def test_copy_channel_refuses_assets_of_another_format(api, channel, copy_channel, assets):
    body = {"programs": [{"asset": assets["a"].pk}, {"asset": assets["a"].pk}, {"asset": assets["wide"].pk}],
            "transition": {"fill": "FILLER", "filler": assets["wide"].pk}}
    response = api.put("/api/channels/2/schedule", body, format="json")
    assert response.status_code == 400
    reason = f"'wide.mp4' is 640x360 25fps, the copy channel airs 320x240 25fps; {REENCODE}"
    assert response.data == {"programs[2].asset": [reason], "transition.filler": [reason]}
    assert not Schedule.objects.exists()

    body = {"programs": [{"asset": assets["a"].pk}], "transition": {"fill": "CUT"}}
    assert api.put("/api/channels/2/schedule", body, format="json").status_code == 200
    # A transcoding channel airs anything.
    assert api.put("/api/channels/1/schedule", {"programs": [{"asset": assets["wide"].pk}]},
                   format="json").status_code == 200


def test_copy_mode_reasons_name_codecs_and_format(copy_channel):
    def asset(**probe):
        return MediaAsset(source="/m/show.mkv", **{"video_codec": "h264", "audio_codec": "aac", "width": 320,
                                                   "height": 240, "frame_rate": 25.0, **probe})

    assert copy_mode_errors(copy_channel.config.stream_settings, {"x": asset(frame_rate=25.001)}) == {}
    assert copy_mode_errors(copy_channel.config.stream_settings, {"x": asset(video_codec="hevc", audio_codec="mp3")}) == {
        "x": [f"'show.mkv' is hevc/mp3, the copy channel airs h264/aac; {REENCODE}"]}
    assert copy_mode_errors(copy_channel.config.stream_settings, {"x": asset(audio_codec="", frame_rate=29.97)}) == {
        "x": [f"'show.mkv' is h264/no audio 320x240 29.97fps, the copy channel airs h264/aac 320x240 25fps; "
              f"{REENCODE}"]}
    # Sources airing between slate gaps must share the slate's 48 kHz audio.
    assert copy_mode_errors(copy_channel.config.stream_settings, {"x": asset(audio_sample_rate=44100)}) == {
        "x": [f"'show.mkv' is 44100 Hz audio, the copy channel airs 48000 Hz audio (as its slate); {REENCODE}"]}
    assert copy_mode_errors(copy_channel.config.stream_settings, {"x": asset(audio_sample_rate=48000)}) == {}
    # Audio encoded by the channel: only the video must match.
    copy_channel.config.stream_settings["audio_codec"] = "aac"
    assert copy_mode_errors(copy_channel.config.stream_settings, {"x": asset(audio_codec="mp3")}) == {}
    # Without a format in the config, the first asset sets it.
    copy_channel.config.stream_settings = {"video_codec": "copy"}
    assert copy_mode_errors(copy_channel.config.stream_settings, {"x": asset(width=640, height=360), "y": asset()}) == {
        "y": [f"'show.mkv' is 320x240 25fps, the copy channel airs 640x360 25fps; {REENCODE}"]}


def test_append_writes_a_new_version_keeping_what_airs(channel, assets, clips):
    call_command("schedule", "append", "1", str(assets["a"].pk), "--title", "First", stdout=StringIO())
    first = current_schedule(1)
    assert [(p.asset_id, p.start, p.title) for p in first.programs.all()] == [(assets["a"].pk, None, "First")]

    out = StringIO()
    call_command("schedule", "append", "1", str(clips["b"]), "--in", "1", "--out", "3", "--title", "B",
                 "--json", stdout=out)
    data = json.loads(out.getvalue())
    second = current_schedule(1)
    assert second.pk == data["id"] != first.pk and Schedule.objects.count() == 2
    assert [(p.title, p.in_point, p.out_point) for p in second.programs.all()] == [
        ("First", None, None), ("B", 1.0, 3.0)]
    # The first program keeps the start it had (the old version's creation), so nothing jumps.
    assert second.programs.get(position=0).start == first.created_at
    assert list(first.programs.values_list("title", flat=True)) == ["First"]  # history kept

    with pytest.raises(Exception, match=r"programs\[2\]\.out_point: 9s is past the end"):
        call_command("schedule", "append", "1", str(assets["a"].pk), "--out", "9")
    assert Schedule.objects.count() == 2


def test_set_from_a_file_or_stdin_and_show(channel, assets, tmp_path, monkeypatch):
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps({"timezone": "Europe/Amsterdam", "programs": [
        {"asset": assets["a"].pk, "title": "Morning", "start": "2030-06-01T08:00:00"}]}))
    out = StringIO()
    call_command("schedule", "set", "1", str(path), stdout=out)
    assert "Europe/Amsterdam" in out.getvalue() and "2030-06-01 08:00:00 +0200" in out.getvalue()
    assert "Morning" in out.getvalue() and "now   slate" in out.getvalue()

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"programs": [{"asset": assets["wide"].pk}]})))
    call_command("schedule", "set", "1", "-", stdout=StringIO())
    shown = StringIO()
    call_command("schedule", "show", "1", "--hours", "1", "--json", stdout=shown)
    data = json.loads(shown.getvalue())
    assert [p["asset"]["id"] for p in data["programs"]] == [assets["wide"].pk]
    assert data["current"]["title"] == "wide" and Schedule.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_cli_exit_codes_for_schedule_and_switch(assets, tmp_path):
    make_channel(1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"programs": [{"asset": assets["a"].pk, "out_point": 60}]}))
    done = retrovue("schedule", "set", "1", str(bad))
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        "CommandError: programs[0].out_point: 60s is past the end of the asset (6s)"]
    assert retrovue("schedule", "set", "1", str(tmp_path / "none.json")).returncode == 2
    assert not Schedule.objects.exists()

    done = retrovue("channel", "switch", "1", str(assets["wide"].pk), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["asset"]["id"] == assets["wide"].pk
    switched = Channel.objects.get(number=1)
    assert switched.switch_asset_id == assets["wide"].pk and switched.switch_requested_at
    done = retrovue("channel", "switch", "1", "/etc/passwd")
    assert done.returncode == 2 and "asset: '/etc/passwd' is outside the media roots" in done.stderr


def test_switch_sets_the_request_for_the_engine(api, channel, copy_channel, assets, clips):
    before = timezone.now()
    response = api.post("/api/channels/1/switch", {"asset": str(clips["b"])}, format="json")
    assert response.status_code == 202, response.data
    b = MediaAsset.objects.get(source=str(clips["b"].resolve()))
    assert response.data["channel"] == 1 and response.data["asset"]["id"] == b.pk
    switched = Channel.objects.get(number=1)
    assert switched.switch_asset_id == b.pk and switched.switch_requested_at == response.data["requested_at"]
    assert switched.switch_requested_at >= before

    refused = api.post("/api/channels/2/switch", {"asset": assets["wide"].pk}, format="json")
    assert refused.status_code == 400
    assert refused.data == {"asset": [f"'wide.mp4' is 640x360 25fps, the copy channel airs 320x240 25fps; {REENCODE}"]}
    assert Channel.objects.get(number=2).switch_asset_id is None
    assert api.post("/api/channels/1/switch", {}, format="json").data == {
        "asset": ["required: an asset id or a file path"]}
    assert api.post("/api/channels/9/switch", {"asset": 1}, format="json").status_code == 404


def schedule_form(channel, programs=(), fill="SLATE", filler="", **fields):
    """The POST of the schedule add page."""
    data = {"channel": str(channel.pk), "timezone": "UTC", **fields,
            "programs-TOTAL_FORMS": str(len(programs)), "programs-INITIAL_FORMS": "0",
            "programs-MIN_NUM_FORMS": "0", "programs-MAX_NUM_FORMS": "1000",
            "transition-TOTAL_FORMS": "1", "transition-INITIAL_FORMS": "0",
            "transition-MIN_NUM_FORMS": "0", "transition-MAX_NUM_FORMS": "1",
            "transition-0-fill": fill, "transition-0-filler": filler}
    for index, program in enumerate(programs):
        data.update({f"programs-{index}-{key}": value for key, value in {
            "position": index, "start_0": "", "start_1": "", "title": "", "description": "", **program}.items()})
    return data


def form_errors(response):
    forms = [response.context["adminform"].form] + [
        form for formset in response.context["inline_admin_formsets"] for form in formset.formset.forms]
    return [str(e) for form in forms for errors in form.errors.values() for e in errors] + [
        str(e) for formset in response.context["inline_admin_formsets"] for e in formset.formset.non_form_errors()]


def make_current(client, *ids):
    """The action's messages (the changelist it returns to shows them, so none carry over)."""
    response = client.post(SCHEDULES, {"action": "make_current", "_selected_action": list(map(str, ids))},
                           follow=True)
    return messages_of(response)


def test_admin_add_validates_like_the_api(admin_client, copy_channel, assets):
    response = admin_client.post(f"{SCHEDULES}add/", schedule_form(
        copy_channel, [{"asset": assets["a"].pk, "out_point": 9}, {"asset": assets["wide"].pk}],
        fill="FILLER", timezone="Nowhere/Land"))
    assert response.status_code == 200
    errors = form_errors(response)
    assert any("'Nowhere/Land' is not a time zone" in e for e in errors), errors
    assert not Schedule.objects.exists()

    response = admin_client.post(f"{SCHEDULES}add/", schedule_form(
        copy_channel, [{"asset": assets["a"].pk, "out_point": 9}, {"asset": assets["wide"].pk}], fill="FILLER"))
    assert response.status_code == 200
    errors = form_errors(response)
    assert "9s is past the end of the asset (6s)" in errors
    assert f"'wide.mp4' is 640x360 25fps, the copy channel airs 320x240 25fps; {REENCODE}" in errors
    assert "required when fill is FILLER" in errors
    assert not Schedule.objects.exists() and not Program.objects.exists()

    response = admin_client.post(f"{SCHEDULES}add/", schedule_form(
        copy_channel, [{"asset": assets["a"].pk, "in_point": 1}, {"asset": assets["a"].pk, "title": "again"}]))
    assert response.status_code == 302, form_errors(response)
    schedule = Schedule.objects.get()
    assert [(p.position, p.in_point, p.title) for p in schedule.programs.all()] == [(0, 1.0, ""), (1, None, "again")]
    assert current_schedule(2) is None  # a version goes on air by the action
    assert admin_client.get(f"{SCHEDULES}add/").status_code == 200

    # The action checks the version against the channel as it is now.
    services.update_config(copy_channel, {"stream_settings": {"resolution": "640x360"}})
    assert make_current(admin_client, schedule.pk) == [("error", (
        f"{schedule}: refused: programs[0].asset: 'a.mp4' is 320x240 25fps, the copy channel airs "
        f"640x360 25fps; {REENCODE}; programs[1].asset: 'a.mp4' is 320x240 25fps, the copy channel "
        f"airs 640x360 25fps; {REENCODE}"))]
    assert current_schedule(2) is None


def test_admin_pages_reorder_and_make_current(admin_client, api, channel, assets):
    body = {"programs": [{"asset": assets["a"].pk, "title": "one"}, {"asset": assets["wide"].pk, "title": "two"}]}
    old = api.put("/api/channels/1/schedule", body, format="json").data["id"]
    new = api.put("/api/channels/1/schedule", {"programs": []}, format="json").data["id"]

    page = admin_client.get(SCHEDULES).content.decode()
    assert page.count('alt="True"') == 1 and '<td class="field-programs">2</td>' in page
    url = f"{SCHEDULES}{old}/change/"
    assert admin_client.get(url).status_code == 200

    # Swapping two positions saves (the unique position constraint is not tripped halfway).
    one, two = Program.objects.filter(schedule=old).order_by("position")
    form = schedule_form(channel, [
        {"id": one.pk, "schedule": old, "asset": one.asset_id, "position": 1, "title": "one"},
        {"id": two.pk, "schedule": old, "asset": two.asset_id, "position": 0, "title": "two"}])
    form.update({"programs-INITIAL_FORMS": "2", "transition-INITIAL_FORMS": "1",
                 "transition-0-id": str(TransitionRule.objects.get(schedule=old).pk),
                 "transition-0-schedule": str(old)})
    del form["channel"]
    response = admin_client.post(url, form, follow=True)
    assert response.redirect_chain == [(SCHEDULES, 302)], form_errors(response)
    assert list(Program.objects.filter(schedule=old).order_by("position").values_list("title", flat=True)) == [
        "two", "one"]

    assert make_current(admin_client, old, new) == [("error", "Select one schedule per channel.")]
    assert current_schedule(1).pk == new
    assert make_current(admin_client, old) == [("success", f"schedule {old} of 1 Channel 1 is now on air.")]
    assert current_schedule(1).pk == old


@pytest.mark.django_db
def test_the_schedule_on_air_cannot_be_deleted_from_under_its_channel():
    from django.db.models import RestrictedError

    channel = make_channel(77)
    schedule = Schedule.objects.create(channel_id=channel.pk)
    Channel.objects.filter(pk=channel.pk).update(current_schedule=schedule)
    with pytest.raises(RestrictedError):
        schedule.delete()
    Channel.objects.filter(pk=channel.pk).delete()  # the channel takes its schedules with it
    assert not Schedule.objects.filter(pk=schedule.pk).exists()


@pytest.mark.django_db
def test_the_engine_gets_a_long_program_whole_not_cut_at_its_first_window():
    """A 3-hour movie on a playlist: what the engine asks for at its start ends at its end."""
    start = timezone.now().replace(microsecond=0)
    movie = MediaAsset.objects.create(source="/m/movie.mp4", duration_s=3 * 3600, video_codec="h264")
    channel = make_channel(95)
    channel.playlist, channel.playlist_started_at = [movie.source], start
    segments = programming.upcoming(channel, start)
    assert (segments[0].start, segments[0].end) == (start, start + timedelta(hours=3))
