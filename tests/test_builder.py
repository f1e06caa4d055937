"""Schedules built from rules: blocks by local weekday and time across a DST change, padding to
the half hour from filler with a cooldown, shows keeping their place across extensions, rebuilds
and pruning, hand-placed programs built around, determinism, chapters split by mid-rolls, and the
rules' validation. Assets are rows made directly (the builder reads no file)."""
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest

from channels_app.models import Channel, MediaAsset, Program
from channels_app.schedules import replace_schedule
from library_app import builder, collections
from library_app.models import ChannelProgramming
from library_app.planning import FILLER_ROLES
from retrovue.errors import ConfigError

from .conftest import MEDIA
from .factories import make_channel

PARIS = ZoneInfo("Europe/Paris")
UTC = dt_timezone.utc
# Friday 27 March 2026, 13:00 in Paris; clocks go forward on Sunday the 29th at 02:00.
NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
EPISODE_S, TRAILER_S = 22 * 60, 90


def make_asset(path, seconds, **fields):
    return MediaAsset.objects.create(source=str(MEDIA / "builder" / path), title=path.rsplit("/", 1)[-1],
                                     duration_s=seconds, **fields)


def make_library(shows=("Sitcom",), episodes=12, movies=10, trailers=50):
    """Episodes of 22 min, movies of 80-125 min, trailers of 90 s, and collections of each."""
    for show in shows:
        for number in range(episodes, 0, -1):  # made out of order: collections sort them
            make_asset(f"{show}/S01E{number:02}.mp4", EPISODE_S, kind="show", show=show, season=1, episode=number)
    for number in range(movies):
        make_asset(f"movies/m{number}.mp4", (80 + 5 * number) * 60, kind="movie", year=1980 + number)
    for number in range(trailers):
        make_asset(f"trailers/t{number}.mp4", TRAILER_S, tags=["trailer"])
    return {
        "shows": [collections.create_collection({"name": show, "query": {"show": show}}) for show in shows],
        "movies": collections.create_collection({"name": "Movies", "query": {"kind": "movie"}}),
        "trailers": collections.create_collection({"name": "Trailers", "query": {"tags": ["trailer"]}}),
    }


def rules_for(found, **changes):
    return {"timezone": "Europe/Paris",
            "blocks": [{"days": WEEKDAYS, "start": "20:00", "end": "22:00", "collection": found["shows"][0].name,
                        "order": "chronological"}],
            "default": {"collection": found["movies"].name, "order": "shuffle"},
            "filler": {"collection": found["trailers"].name, "pad_to_minutes": 30, "cooldown_minutes": 60},
            **changes}


@pytest.fixture
def found(db):
    return make_library()


def on_air(number):
    """A channel on air (its status only): what airs within LOCK of it is kept."""
    channel = make_channel(number)
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.RUNNING)
    channel.status = Channel.Status.RUNNING
    return channel


@pytest.fixture
def channel(db):
    return on_air(1)


def airing(channel):
    """[(start, end, program)] of the channel's current schedule, in order."""
    channel = Channel.objects.get(pk=channel.pk)
    programs = Program.objects.filter(schedule=channel.current_schedule).select_related("asset").order_by("position")
    return [(p.start, p.start + timedelta(seconds=p.duration_s), p) for p in programs]


def plan(channel):
    return [(s, p.asset_id, p.in_point, p.out_point, p.origin) for s, _, p in airing(channel)]


def episodes(channel):
    return [p.asset.episode for _, _, p in airing(channel) if p.asset.show]


def test_a_weeknight_block_and_a_default_padded_to_the_half_hour_across_dst(found, channel):
    builder.set_programming(channel, rules_for(found), now=NOW)
    builder.build(channel, now=NOW, hours=96)  # to Tuesday: Friday's block, then Monday's (summer time)
    slots = airing(channel)
    assert slots[0][0] == NOW + timedelta(minutes=5) and slots[-1][1] >= NOW + timedelta(hours=96)
    for (_, end, _), (start, _, program) in zip(slots, slots[1:]):
        assert start == end, f"gap or overlap before {program.asset.title} at {start}"
    block_key = f"c{found['shows'][0].pk}:chronological"
    in_blocks = {}
    for start, end, program in slots:
        local, local_end = start.astimezone(PARIS), end.astimezone(PARIS)
        if program.origin not in FILLER_ROLES:
            assert (local.minute, local.second, local.microsecond) in {(0, 0, 0), (30, 0, 0)}, local
        inside = local.strftime("%a").lower() in WEEKDAYS and 20 <= local.hour < 22
        assert (program.origin == block_key) == inside or program.origin == "filler", (local, program.origin)
        if program.origin == block_key:
            assert local_end <= local.replace(hour=22, minute=0), local_end
            in_blocks.setdefault(local.date(), []).append(start)
    utc_starts = {day: [s.astimezone(UTC).strftime("%H:%M") for s in starts] for day, starts in in_blocks.items()}
    assert utc_starts == {datetime(2026, 3, 27).date(): ["19:00", "19:30", "20:00", "20:30"],  # CET
                          datetime(2026, 3, 30).date(): ["18:00", "18:30", "19:00", "19:30"]}  # CEST
    assert episodes(channel) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert ChannelProgramming.objects.get(channel=channel).build_error == ""


def test_episodes_continue_across_an_extension_and_a_rebuild_with_new_rules(found, channel):
    builder.set_programming(channel, rules_for(found), now=NOW)
    first = plan(channel)
    built_until = ChannelProgramming.objects.get(channel=channel).built_until
    assert built_until >= NOW + timedelta(hours=48)
    later = NOW + timedelta(hours=40)  # Sunday 6:00 in Paris
    summary = builder.extend(channel, now=later, hours=48)
    assert summary["from"] == built_until and summary["kept"] == len(first)
    assert plan(channel)[:len(first)] == first  # only appended
    assert episodes(channel) == list(range(1, 9))  # Friday's block, then Monday's
    changed = later + timedelta(hours=1)
    before = [row for row in plan(channel) if row[0] < changed + builder.LOCK]
    builder.set_programming(channel, rules_for(found, default={"collection": found["movies"].pk, "order": "random"},
                                               filler={"collection": found["trailers"].pk, "pad_to_minutes": 15}),
                            now=changed)
    after = plan(channel)
    assert after[:len(before)] == before  # nothing that airs within five minutes changed
    assert episodes(channel) == list(range(1, 9))  # Monday's block is the same episodes again
    random_key = f"c{found['movies'].pk}:random"
    rebuilt = [(s, origin) for s, _, _, _, origin in after[len(before):]]
    assert {origin for _, origin in rebuilt} >= {random_key, "filler"}
    assert all(s.astimezone(PARIS).minute % 15 == 0 for s, origin in rebuilt if origin not in FILLER_ROLES)


def test_a_rebuild_from_the_same_state_is_the_same_and_the_seed_decides(found, channel):
    builder.set_programming(channel, rules_for(found), now=NOW)
    first = plan(channel)
    builder.build(channel, now=NOW)
    assert plan(channel) == first
    other = on_air(2)
    builder.set_programming(other, rules_for(found), now=NOW)
    ChannelProgramming.objects.filter(channel=other).update(
        seed=ChannelProgramming.objects.get(channel=channel).seed)
    builder.build(other, now=NOW)
    assert plan(other) == first


def test_filler_cooldown_is_respected(found, channel):
    builder.set_programming(channel, rules_for(found), now=NOW)
    last = {}
    for start, _, program in airing(channel):
        if program.origin == "filler":
            assert program.asset_id not in last or start - last[program.asset_id] >= timedelta(minutes=60)
            last[program.asset_id] = start


def test_filler_that_runs_out_leaves_a_gap_it_reports(found, channel):
    few = collections.create_collection({"name": "Few", "items": [a.pk for a in collections.collection_assets(
        found["trailers"])[:3]]})
    builder.set_programming(channel, rules_for(found, filler={"collection": few.name, "pad_to_minutes": 30,
                                                              "cooldown_minutes": 120}), now=NOW)
    summary = builder.build(channel, now=NOW)
    slots = airing(channel)
    gaps = sum((start - end).total_seconds() for (_, end, _), (start, _, _) in zip(slots, slots[1:]))
    gaps += (slots[0][0] - summary["from"]).total_seconds() + (summary["until"] - slots[-1][1]).total_seconds()
    assert summary["gap_seconds"] == pytest.approx(gaps, abs=0.01)
    assert summary["gap_seconds"] > 3600


def test_a_hand_placed_program_is_kept_and_built_around(found, channel):
    movie = collections.collection_assets(found["movies"])[0]
    at = datetime(2026, 3, 28, 16, 10, tzinfo=PARIS)  # Saturday 16:10, off the half-hour grid
    builder.set_programming(channel, rules_for(found, programs=[{"start": at.isoformat(), "asset": movie.pk,
                                                                 "title": "Premiere"}]), now=NOW)
    slots = airing(channel)
    [index] = [i for i, (_, _, p) in enumerate(slots) if p.origin == ""]
    start, end, program = slots[index]
    assert (start, program.asset_id, program.title) == (at, movie.pk, "Premiere")
    assert slots[index - 1][1] == start and slots[index + 1][0] == end
    assert builder.programming_data(channel)["rules"]["programs"] == [
        {"start": at.isoformat(), "asset": movie.pk, "title": "Premiere"}]
    builder.build(channel, now=NOW + timedelta(hours=2))  # a rebuild keeps it where it is
    assert [(s, p.asset_id) for s, _, p in airing(channel) if p.origin == ""] == [(at, movie.pk)]
    builder.set_programming(channel, rules_for(found), now=NOW + timedelta(hours=2))  # rules without it
    assert not [p for _, _, p in airing(channel) if p.origin == ""]


def test_mid_rolls_split_a_program_at_its_chapters_and_rolls_stay_inside_its_slot(channel):
    feature = make_asset("features/f.mp4", 3000, kind="movie", chapters=[0.0, 600.0, 1500.5, 2999.5])
    for number in range(6):
        make_asset(f"bumpers/b{number}.mp4", 30, tags=["bumper"])
    make_asset("trailers/long.mp4", 600, tags=["pad"])
    features = collections.create_collection({"name": "Features", "items": [feature.pk]})
    bumpers = collections.create_collection({"name": "Bumpers", "query": {"tags": ["bumper"]}})
    pad = collections.create_collection({"name": "Pad", "query": {"tags": ["pad"]}})
    builder.set_programming(channel, {"timezone": "UTC", "default": {"collection": features.pk},
                                      "filler": {"collection": pad.pk, "pad_to_minutes": 60, "mid_roll": bumpers.pk,
                                                 "pre_roll": bumpers.pk, "post_roll": bumpers.pk}}, now=NOW)
    slots = [(s, p) for s, _, p in airing(channel) if s >= datetime(2026, 3, 27, 13, tzinfo=UTC)][:7]
    assert [(p.origin, p.in_point, p.out_point) for _, p in slots] == [
        ("pre_roll", None, None), (f"c{features.pk}:chronological", None, 600.0), ("mid_roll", None, None),
        (f"c{features.pk}:chronological", 600.0, 1500.5), ("mid_roll", None, None),
        (f"c{features.pk}:chronological", 1500.5, None), ("post_roll", None, None)]
    assert [s.strftime("%H:%M:%S.%f") for s, _ in slots] == [
        "13:00:00.000000", "13:00:30.000000", "13:10:30.000000", "13:11:00.000000", "13:26:00.500000",
        "13:26:30.500000", "13:51:30.000000"]
    ends = [s + timedelta(seconds=p.duration_s) for s, p in slots]
    assert all(end == start for end, (start, _) in zip(ends, slots[1:]))
    assert ends[-1] <= datetime(2026, 3, 27, 14, tzinfo=UTC)  # the rolls fit in the padded hour
    before = plan(channel)
    summary = builder.build(channel, now=datetime(2026, 3, 27, 12, 55, 1, tzinfo=UTC))  # the lock in the pre-roll
    assert summary["from"] == ends[-1]  # a rebuild never starts inside the split program or its rolls
    assert plan(channel)[:len(before)] == before


def test_a_program_longer_than_its_block_airs_when_the_block_is_empty(channel):
    long_movie = make_asset("long/epic.mp4", 130 * 60, kind="movie")
    for number in range(40):
        make_asset(f"long/t{number}.mp4", 60, tags=["short"])
    epics = collections.create_collection({"name": "Epics", "items": [long_movie.pk]})
    shorts = collections.create_collection({"name": "Shorts", "query": {"tags": ["short"]}})
    builder.set_programming(channel, {"timezone": "Europe/Paris", "blocks": [
        {"days": ["fri"], "start": "20:00", "end": "22:00", "collection": epics.name}],
        "filler": {"collection": shorts.name, "pad_to_minutes": 30}}, now=NOW)
    slots = airing(channel)
    [(start, end, _)] = [slot for slot in slots if slot[2].asset_id == long_movie.pk]
    assert (start.astimezone(PARIS).strftime("%H:%M"), end.astimezone(PARIS).strftime("%H:%M")) == ("20:00", "22:10")
    following = next(slot for slot in slots if slot[0] >= end)
    assert following[2].origin == "filler" and following[0] == end
    assert not [s for s, _, p in slots if end < s < end + timedelta(minutes=20) and p.origin not in FILLER_ROLES]


@pytest.mark.parametrize("change, field", [
    ({"blocks": [{"days": ["mon"], "start": "20:00", "end": "22:00", "collection": "Sitcom", "order": "alpha"}]},
     "blocks[0].order"),
    ({"blocks": [{"days": ["mon"], "start": "25:00", "end": "22:00", "collection": "Sitcom"}]}, "blocks[0].start"),
    ({"blocks": [{"days": ["mon"], "start": "20:00", "end": "20:00", "collection": "Sitcom"}]}, "blocks[0].end"),
    ({"blocks": [{"days": ["monday"], "start": "20:00", "end": "22:00", "collection": "Sitcom"}]}, "blocks[0].days"),
    ({"blocks": [{"days": ["mon"], "start": "20:00", "end": "22:00", "collection": "Sitcom"},
                 {"days": ["sun", "mon"], "start": "21:30", "end": "23:00", "collection": "Sitcom"}]},
     "blocks[1].start"),
    ({"blocks": [{"days": ["sun"], "start": "23:00", "end": "01:00", "collection": "Sitcom"},  # past midnight
                 {"days": ["mon"], "start": "00:30", "end": "02:00", "collection": "Sitcom"}]}, "blocks[1].start"),
    ({"blocks": [{"days": ["mon"], "start": "20:00", "end": "22:00", "collection": "Nothing"}]},
     "blocks[0].collection"),
    ({"blocks": [{"days": ["mon"], "start": "20:00", "end": "22:00", "collection": "Sitcom", "colour": 1}]},
     "blocks[0].colour"),
    ({"blocks": [{"days": ["mon"], "start": "20:00", "end": "22:00", "collection": "Sitcom", "no_repeat": 2}]},
     "blocks[0].no_repeat"),
    ({"default": {"collection": "Movies", "order": "random", "no_repeat": 10}}, "default.no_repeat"),
    ({"filler": {"collection": "Trailers", "pad_to_minutes": 7}}, "filler.pad_to_minutes"),
    ({"filler": {"pad_to_minutes": 30}}, "filler.collection"),
    ({"filler": {"collection": "Trailers", "cooldown_minutes": -1}}, "filler.cooldown_minutes"),
    ({"filler": {"collection": "Empty"}}, "filler.collection"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"programs": [{"asset": 1}]}, "programs[0].start"),
    ({"blocks": [], "default": None}, "default"),
    ({"colour": "red"}, "colour"),
])
def test_bad_rules_are_refused_per_field_and_write_nothing(found, channel, change, field):
    collections.create_collection({"name": "Empty", "query": {"show": "Nobody"}})
    with pytest.raises(ConfigError) as refused:
        builder.set_programming(channel, rules_for(found, **change), now=NOW)
    assert field in refused.value.errors, refused.value.errors
    assert not ChannelProgramming.objects.exists()
    assert Channel.objects.get(pk=channel.pk).current_schedule is None


def test_blocks_may_run_past_midnight_and_to_24_00(found, channel):
    builder.set_programming(channel, rules_for(found, blocks=[
        {"days": ["fri"], "start": "23:00", "end": "01:00", "collection": "Sitcom"},
        {"days": ["sat"], "start": "22:00", "end": "24:00", "collection": "Sitcom"}]), now=NOW)
    local = [(s.astimezone(PARIS), e.astimezone(PARIS)) for s, e, p in airing(channel) if p.asset.show]
    assert [s.strftime("%a %H:%M") for s, _ in local] == [
        "Fri 23:00", "Fri 23:30", "Sat 00:00", "Sat 00:30", "Sat 22:00", "Sat 22:30", "Sat 23:00", "Sat 23:30"]
    assert all(e.strftime("%H:%M") <= "01:00" or e.strftime("%H:%M") >= "22:00" for _, e in local)


def test_a_stream_keeps_its_place_from_progress_once_its_programs_are_pruned(found, channel):
    builder.set_programming(channel, rules_for(found), now=NOW)
    builder.build(channel, now=NOW, hours=12)  # Friday's block: episodes 1-4
    assert episodes(channel) == [1, 2, 3, 4]
    monday = NOW + timedelta(days=3)  # everything built ended more than two days before
    builder.extend(channel, now=monday, hours=24)
    row = ChannelProgramming.objects.get(channel=channel)
    assert row.progress[f"c{found['shows'][0].pk}:chronological"] == collections.collection_assets(
        found["shows"][0])[3].pk
    assert min(s for s, _, _ in airing(channel)) >= monday  # pruned
    assert episodes(channel) == [5, 6, 7, 8]


def test_random_keeps_items_apart_and_shuffle_in_order_keeps_each_show_in_order(db, channel):
    found = make_library(shows=("Alpha", "Beta", "Gamma"), episodes=6, movies=5)
    both = collections.create_collection({"name": "Shows", "query": {"kind": "show"}})
    builder.set_programming(channel, {"timezone": "UTC", "blocks": [
        {"days": ["fri", "sat", "sun"], "start": "00:00", "end": "12:00", "collection": both.name,
         "order": "shuffle_in_order"}],
        "default": {"collection": found["movies"].name, "order": "random", "no_repeat": 3}}, now=NOW)
    slots = airing(channel)
    shows = {}
    for _, _, p in slots:
        if p.asset.show:
            shows.setdefault(p.asset.show, []).append(p.asset.episode)
    assert set(shows) == {"Alpha", "Beta", "Gamma"}
    for numbers in shows.values():
        assert numbers == [(n % 6) + 1 for n in range(len(numbers))]
    movies = [p.asset_id for _, _, p in slots if p.asset.kind == "movie"]
    assert len(movies) > 8 and len(set(movies)) > 1
    for index in range(len(movies)):
        assert movies[index] not in movies[max(0, index - 3):index]


def test_the_first_build_keeps_what_airs_in_the_next_minutes(found, channel):
    clip = collections.collection_assets(found["movies"])[0]
    replace_schedule(channel, {"programs": [{"asset": clip.pk, "start": (NOW - timedelta(minutes=30)).isoformat()}]})
    builder.set_programming(channel, rules_for(found), now=NOW)
    first, *rest = airing(channel)
    assert (first[0], first[2].asset_id, first[2].in_point) == (NOW, clip.pk, 1800.0)
    assert first[1] == NOW + timedelta(minutes=50) == rest[0][0]  # the movie airs to its end, then the rules


def test_a_channel_off_air_takes_its_rules_at_once(found):
    stopped = make_channel(4)
    clip = collections.collection_assets(found["movies"])[0]
    replace_schedule(stopped, {"programs": [{"asset": clip.pk, "start": (NOW - timedelta(minutes=30)).isoformat()}]})
    builder.set_programming(stopped, rules_for(found), now=NOW)
    first = airing(stopped)[0]
    assert first[0] == NOW and first[2].origin, "nothing of the old schedule is kept: nothing airs it"


def test_programming_data_extend_all_and_clear(found, channel):
    assert builder.programming_data(channel)["rules"] == {}
    with pytest.raises(ConfigError):
        builder.build(channel, now=NOW)
    builder.set_programming(channel, rules_for(found), now=NOW)
    other = on_air(2)
    builder.set_programming(other, rules_for(found), now=NOW)
    data = builder.programming_data(channel, now=NOW + timedelta(minutes=10))
    assert data["rules"]["blocks"][0]["collection"] == found["shows"][0].pk  # stored by id
    assert data["built_until"] >= NOW + timedelta(hours=48) and data["build_error"] == ""
    assert len(data["next"]) == 10 and data["next"][0]["start"] <= NOW + timedelta(minutes=10) < data["next"][0]["end"]
    assert builder.extend_all(NOW + timedelta(minutes=30)) == []
    assert builder.extend_all(NOW + timedelta(hours=6)) == [1, 2]
    builder.clear_programming(other)
    assert builder.extend_all(NOW + timedelta(hours=12)) == [1]
    cleared = builder.programming_data(other, now=NOW + timedelta(hours=12))
    assert cleared["rules"] == {} and cleared["next"]  # the built schedule stays on air
    with pytest.raises(ConfigError) as refused:
        collections.delete_collection(found["movies"])
    assert "channel(s) 1" in refused.value.errors["collection"][0]


def test_a_copy_channel_refuses_collections_not_in_its_format(found):
    copy = make_channel(3, quality="copy", stream_settings={"resolution": "320x240", "frame_rate": 25})
    with pytest.raises(ConfigError) as refused:
        builder.set_programming(copy, rules_for(found), now=NOW)
    assert set(refused.value.errors) == {"blocks[0].collection", "default.collection", "filler.collection"}
    assert refused.value.errors["default.collection"][0].startswith("10 of its assets cannot air")
