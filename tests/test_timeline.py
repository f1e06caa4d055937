"""The timeline: schedules resolved into back-to-back segments (pure logic)."""
from datetime import datetime, timedelta, timezone

from channels_app.timeline import Filler, Item, looped, segments

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def s(seconds):
    return T0 + timedelta(seconds=seconds)


def shape(segs):
    return [(seg.kind, (seg.start - T0).total_seconds(), (seg.end - T0).total_seconds(), seg.title)
            for seg in segs]


def test_back_to_back_programs_then_slate():
    items = [Item(None, 10, "/m/a.mp4", title="A"), Item(None, 5, "/m/b.mp4", title="B")]
    assert shape(segments(items, T0, s(20), anchor=T0)) == [
        ("program", 0, 10, "A"), ("program", 10, 15, "B"), ("slate", 15, 20, "")]


def test_gap_filled_with_looping_filler_and_hard_start_cuts_previous():
    items = [Item(s(5), 10, "/m/a.mp4", title="A"), Item(s(12), 10, "/m/b.mp4", title="B")]
    filler = Filler("/m/f.mp4", 3, title="F")
    assert shape(segments(items, T0, s(25), anchor=T0, filler=filler)) == [
        ("filler", 0, 3, "F"), ("filler", 3, 5, "F"), ("program", 5, 12, "A"),
        ("program", 12, 22, "B"), ("filler", 22, 25, "F")]


def test_tuning_in_mid_program_advances_the_in_point():
    items = [Item(T0, 60, "/m/a.mp4", in_point=5, title="A")]
    seg = segments(items, s(20), s(30), anchor=T0)[0]
    assert (seg.kind, seg.in_point, seg.duration_s) == ("program", 25, 10)


def test_daily_loop_repeats_the_block_at_local_times():
    items = [Item(T0, 3600, "/m/a.mp4", title="A")]
    day2 = T0 + timedelta(days=1)
    segs = segments(items, day2 - timedelta(minutes=30), day2 + timedelta(minutes=30), anchor=T0,
                    loop=True, tz="Europe/Amsterdam")
    assert [(seg.kind, seg.start) for seg in segs] == [("slate", day2 - timedelta(minutes=30)),
                                                       ("program", day2)]


def test_segments_always_cover_the_window_exactly():
    items = [Item(s(3), 4, "/m/a.mp4"), Item(None, 2, "/m/b.mp4"), Item(s(30), 1, "/m/c.mp4")]
    segs = segments(items, s(1), s(40), anchor=T0, filler=Filler("/m/f.mp4", 7))
    assert segs[0].start == s(1) and segs[-1].end == s(40)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))


def test_cut_closes_gaps_between_programs():
    items = [Item(s(5), 10, "/m/a.mp4", title="A"), Item(s(30), 10, "/m/b.mp4", title="B")]
    assert shape(segments(items, T0, s(30), anchor=T0, close_gaps=True)) == [
        ("slate", 0, 5, ""), ("program", 5, 15, "A"), ("program", 15, 25, "B"), ("slate", 25, 30, "")]


def test_a_playlist_loops_from_its_anchor_and_a_late_join_moves_the_in_point():
    items = [Item(None, 10, "/m/a.mp4", title="A"), Item(None, 5, "/m/b.mp4", title="B")]
    segs = looped(items, T0, s(32), s(50))
    assert shape(segs) == [("program", 32, 40, "A"), ("program", 40, 45, "B"), ("program", 45, 50, "A")]
    assert segs[0].in_point == 2.0 and segs[1].in_point == 0.0
