"""The playout engine a step at a time: fake readers, a fake clock, a timeline from the real
timeline module. What the output stage would receive, and when, is recorded per unit."""
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from channels_app import timeline
from streams_app.playout.engine import Pacer
from streams_app.playout.plan import Format

FPS = 10
ORIGIN = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, pacer_stopped=lambda: False):
        self.now = 100.0
        self.stopped = pacer_stopped

    def __call__(self):
        return self.now

    def wait(self, seconds):
        self.now += seconds
        return self.stopped()


class InlineExecutor:
    """Prepares readers at once on the calling thread: each step is deterministic."""

    def submit(self, fn, *args):
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the pacer as a future does
            future.set_exception(exc)
        return future

    def shutdown(self, wait=True):
        pass


class FakeReader:
    def __init__(self, segment, frames, short_by=0):
        self.segment, self.frames, self.short_by = segment, frames, short_by
        self.closed = False

    def ready(self):
        return True

    def first_output(self, timeout):
        return self.short_by < self.frames  # False: not a byte (the source cannot be read)

    def error_text(self):
        return "cannot be read"

    def close(self):
        self.closed = True
        self.mode.live.discard(self)


class FakeMode:
    """Units are (frame time, frame start, (segment title, channel frame)); writes are recorded
    with the fake clock's time. `short` names sources that end early (as a copy reader may),
    `missing` ones that cannot be read at all."""

    fmt = Format(64, 48, Fraction(FPS))
    lead = 0.0
    slate_piece = None
    held_frames = 0

    def ahead(self, before, unit):
        return 0

    def __init__(self, clock, stop_after, short=(), missing=()):
        self.clock, self.stop_after, self.short, self.missing = clock, stop_after, set(short), set(missing)
        self.written, self.opened, self.live = [], [], set()
        self.pacer = None

    def open(self, segment, frames):
        short_by = frames if segment.source in self.missing else frames // 2 if segment.source in self.short else 0
        reader = FakeReader(segment, frames, short_by=short_by)
        reader.mode, reader.opened_at = self, len(self.written)
        self.opened.append(reader)
        self.live.add(reader)
        return reader

    def units(self, reader, start, end, stopped):
        for k in range(start, end - reader.short_by):
            yield k / FPS, k, (reader.segment.title, k)

    def write(self, payload):
        self.written.append((round(self.clock.now - 100.0, 6), payload))
        if len(self.written) >= self.stop_after:
            self.pacer.stop()

    def flush(self):
        pass

    def close(self):
        pass


class ListFeed:
    def __init__(self, segments_at, switches=()):
        self.segments_at, self.switches = segments_at, list(switches)
        self.asked, self.unreadable_at = [], []
        self.written = lambda: 0

    def unreadable(self, segment, reason):
        self.unreadable_at.append((segment.source, self.written()))

    def upcoming(self, at):
        self.asked.append(at)
        return self.segments_at(at)

    def poll_switch(self):
        return self.switches.pop(0) if self.switches else None


def item(title, seconds):
    return timeline.Item(start=None, duration_s=seconds, source=f"/media/{title}.mp4", title=title)


def run_engine(feed, frames, short=(), missing=(), switch_asked_at=None):
    """The engine over `frames` frames; `switch_asked_at`: while that frame airs, a switch's
    wake-up arrives."""
    clock = FakeClock()
    mode = FakeMode(clock, stop_after=frames, short=short, missing=missing)
    feed.written = lambda: len(mode.written)
    pacer = Pacer(mode, feed, origin=ORIGIN, clock=clock, wait=clock.wait, executor=InlineExecutor)
    mode.pacer = pacer
    original_write = mode.write

    def write(payload):
        original_write(payload)
        if payload[1] == switch_asked_at:
            pacer.switch_asked()
    mode.write = write
    clock.stopped = pacer.stopped.is_set
    pacer.run()  # on this thread: returns once the mode has stopped it
    return pacer, mode


def playlist(*items):
    return ListFeed(lambda at: timeline.looped(list(items), ORIGIN, at, at + timedelta(hours=1)))


def test_a_playlist_loops_segment_after_segment_on_the_frame_grid():
    pacer, mode = run_engine(playlist(item("a", 1.0), item("b", 0.5)), frames=45)
    titles = [title for _, (title, _) in mode.written]
    assert titles == (["a"] * 10 + ["b"] * 5) * 3  # loops with no frame lost at the loop point
    assert [k for _, (_, k) in mode.written] == list(range(45))
    assert all(at == k / FPS for at, (_, k) in mode.written)  # each frame at origin + k/fps
    assert [frame for frame, _ in pacer.aired] == [0, 10, 15, 25, 30, 40]
    assert all(reader.closed for reader in mode.opened)  # no reader outlives the run


def test_the_next_segment_is_prepared_ahead_of_its_boundary():
    feed = playlist(item("a", 5.0), item("b", 5.0))
    run_engine(feed, frames=60)
    # Asked for frame 0, then for the boundary at frame 50 while frame 30 (2 s before it) aired.
    boundary = ORIGIN + timedelta(seconds=5)
    assert feed.asked[1] < boundary and boundary - feed.asked[1] < timedelta(seconds=0.1)


def test_a_short_segment_starts_the_next_reader_after_its_own_boundary_not_at_it():
    """A reader's start is a burst of CPU: with segments shorter than the pre-roll it comes
    SETTLE_SECONDS into the segment (at most a quarter of it), not on the frame where it began."""
    _, mode = run_engine(playlist(item("a", 2.0), item("b", 0.6)), frames=60)
    assert [(r.segment.title, r.opened_at) for r in mode.opened][:5] == [
        ("a", 0), ("b", 5), ("a", 21), ("b", 31), ("a", 47)]


def test_a_schedule_change_airs_from_the_next_segment_not_before():
    changed = {"now": False}

    def segments(at):
        items = [item("new", 1.0)] if changed["now"] else [item("old", 3.0)]
        return timeline.looped(items, ORIGIN, at, at + timedelta(hours=1))

    feed = ListFeed(segments)
    clock = FakeClock()
    mode = FakeMode(clock, stop_after=50)
    pacer = Pacer(mode, feed, origin=ORIGIN, clock=clock, wait=clock.wait, executor=InlineExecutor)
    mode.pacer, clock.stopped = pacer, pacer.stopped.is_set
    original_write = mode.write

    def write(payload):
        original_write(payload)
        if payload[1] == 5:  # the operator changes the programming while "old" airs
            changed["now"] = True
    mode.write = write
    pacer.play()
    titles = [title for _, (title, _) in mode.written]
    assert titles[:30] == ["old"] * 30 and set(titles[30:]) == {"new"}


def test_a_switch_cuts_in_at_the_next_frame_then_the_timeline_resumes_where_the_clock_is():
    blue = timeline.Segment(ORIGIN, ORIGIN + timedelta(seconds=1), "program", "/media/blue.mp4", 0.0, title="blue")
    feed = playlist(item("a", 10.0))
    feed.switches = [blue]
    pacer, mode = run_engine(feed, frames=40, switch_asked_at=4)
    titles = [title for _, (title, _) in mode.written]
    assert titles.index("blue") == 5 and titles[5:15] == ["blue"] * 10 and titles[15:] == ["a"] * 25
    # "a" resumes at its place on the clock, not where it was cut
    assert mode.written[15][1][1] == 15


def test_the_timeline_is_never_polled_for_a_switch_nobody_asked_for():
    blue = timeline.Segment(ORIGIN, ORIGIN + timedelta(seconds=1), "program", "/media/blue.mp4", 0.0, title="blue")
    feed = playlist(item("a", 10.0))
    feed.switches = [blue]
    pacer, mode = run_engine(feed, frames=40)
    assert {title for _, (title, _) in mode.written} == {"a"} and feed.switches == [blue]


def test_a_segment_that_runs_short_is_filled_by_the_slate_and_the_next_airs_on_time():
    pacer, mode = run_engine(playlist(item("a", 1.0), item("b", 1.0)), frames=15, short={"/media/a.mp4"})
    assert [(frame, segment.kind) for frame, segment in pacer.aired] == [(0, "program"), (5, "slate"), (10, "program")]
    assert [k for _, (_, k) in mode.written] == list(range(15))  # no frame missing: never silence
    assert mode.written[10] == (1.0, ("b", 10))  # b still starts at frame 10
    assert pacer.short[0][1:] == (5, 10)


def test_nothing_to_air_is_the_slate():
    assert timeline.looped([], ORIGIN, ORIGIN, ORIGIN + timedelta(hours=1))[0].kind == "slate"


def test_a_source_that_cannot_be_read_is_known_before_its_boundary_and_the_slate_airs_in_its_slot():
    feed = playlist(item("a", 3.0), item("b", 1.0), item("c", 1.0))
    pacer, mode = run_engine(feed, frames=50, missing={"/media/b.mp4"})
    assert [(frame, segment.kind) for frame, segment in pacer.aired] == [(0, "program"), (30, "slate"), (40, "program")]
    assert [k for _, (_, k) in mode.written] == list(range(50))  # every frame on time: never silence
    assert mode.written[30] == (3.0, ("b", 30)) and mode.written[40] == (4.0, ("c", 40))
    # Found when b was prepared, while a still aired (not at b's boundary), and said once.
    assert feed.unreadable_at == [("/media/b.mp4", 30 - pacer.preroll)]
    slate = pacer.aired[1][1]
    assert slate.title == "b" and slate.description == "/media/b.mp4 cannot be read: cannot be read"
