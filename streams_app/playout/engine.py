"""The one playout engine: a timeline of segments fed, segment by segment, into one output stage.

Why: restarting the output FFmpeg at each program resets PCR and continuity counters and leaves
a gap, which receivers show as a stall. So each run has one output stage, fed by the `Pacer`:
every segment (program, filler, slate, switch; a playlist is a looping timeline) is read by its
own short-lived FFmpeg started `PREROLL_SECONDS` ahead, and frame k is handed out at origin + k/fps
on the monotonic clock, so boundaries land on their wall-clock time to the frame.

The `mode` (transcode.py, copy.py) says how a segment is read and written: `open(segment,
frames)` gives a reader (`ready()`, `first_output()`, `close()`); `units(reader, start, end,
stopped)` yields `(due, frame, payload)` (`due` in seconds from the origin, None: goes with
the previous unit; `frame` the index of the frame it begins, shown then, or None) or None while it waits; `write` and `flush` send. The `feed` is the timeline
(`upcoming(at)`, `poll_switch()`, `unreadable(segment, why)`). Tests drive it with fakes of both.
"""
import collections
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

from django.utils import timezone

from .lease import Lease

log = logging.getLogger("retrovue.playout")

PREROLL_SECONDS = 2.0
# A reader's start is a burst of CPU: never on the frame a segment begins, where the output
# stage has most to do (a short segment would otherwise start the next reader at its boundary);
# at most a quarter of the segment in, so a short one still leaves its successor time to start.
SETTLE_SECONDS = 0.5
RECENT = 256


# A segment placed on the frame grid: frames [start, end) from its reader.
Entry = collections.namedtuple("Entry", "segment start end reader")


class Pacer(threading.Thread):
    """Feeds the output stage segment after segment, each unit when its time comes."""

    def __init__(self, mode, feed, origin=None, clock=time.monotonic, wait=None, executor=None, lease=None,
                 asrun=None, burst=0.0):
        super().__init__(name="pacer", daemon=True)
        self.mode, self.feed = mode, feed
        self.fmt = mode.fmt
        self.origin = origin  # wall-clock time of frame 0 (aware datetime)
        self.burst = burst  # seconds of the timeline before now aired at once (an on-demand tune)
        # The clock, how to wait on it (True: stopped meanwhile), where readers are prepared.
        self.clock = clock
        self.stopped = threading.Event()
        self.wait = wait or self.nap
        self.executor = executor or (lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="playout-prepare"))
        self.preroll = int(PREROLL_SECONDS * self.fmt.fps)
        self.settle = int(SETTLE_SECONDS * self.fmt.fps)
        self.current = self.following = self.switching = None  # an Entry, then two futures
        self.switch_hint = threading.Event()
        # The recent cuts (frame, segment) and segments that ran short (segment, aired, scheduled):
        # bounded, a channel runs for months.
        self.aired = collections.deque(maxlen=RECENT)
        self.short = collections.deque(maxlen=RECENT)
        self.prepare = None
        self.last_frame_unit = None  # the unit of the last frame written (see Mode.ahead)
        self.lease = lease or Lease()  # the window this run may publish in (lease.py)
        self.asrun = asrun  # where what airs is logged (asrun.py); None: not logged (calibration)
        self.reached = 0  # the first frame not yet shown
        self.output_ended_at = None

    # --- control --------------------------------------------------------------------------------
    def stop(self, output_ended_at=None):
        """Stop feeding; `output_ended_at`: when the output stage exited, if it did first (what
        was fed after that never aired)."""
        self.output_ended_at = output_ended_at
        self.stopped.set()

    def output_began(self, at):
        """The output stage's first output came at `at` (its start-up): nothing aired before."""
        if self.asrun and self.prepare and not self.stopped.is_set():
            try:
                self.prepare.submit(self.asrun.output_began, at)
            except RuntimeError:  # the pacer has just ended
                pass

    def hold_for_lease(self, now):
        """The lease lapsed (this host was frozen, or starved, or its database calls hung): write
        nothing until the supervisor has it renewed (the run is still ours: the output resumes
        after a pause) or stops the run (another host has the channel). True if stopped."""
        log.warning("pacer holds its output: its lease lapsed %.2fs ago", now - self.lease.until)
        while not self.lease.admits(self.clock()):
            if self.wait(0.02):
                return True
        return False

    def switch_asked(self):
        """A switch was stored for this channel: look for it at the next frame. Told by the
        switch's wake-up task, or by the supervisor's heartbeat that finds one pending (its
        wake-up was lost): the timeline is never polled for one."""
        self.switch_hint.set()

    def close(self):
        """After the output stage is gone: let the thread end, then release the mode's pipes."""
        self.join(timeout=5)
        self.mode.close()

    def nap(self, seconds):
        """Wait on the clock; True if the pacer was stopped meanwhile. A frame's wait (25 a second
        per channel) is a plain sleep, a third cheaper in CPU than waiting on an Event; a longer
        one stays interruptible."""
        if seconds > 0.1:
            return self.stopped.wait(seconds)
        time.sleep(seconds)
        return self.stopped.is_set()

    # --- the frame grid -------------------------------------------------------------------------
    def time_at(self, frame):
        return self.origin + timedelta(seconds=float(frame / self.fmt.fps))

    def frame_at(self, moment):
        return round((moment - self.origin).total_seconds() * self.fmt.fps)

    def entry(self, segment, start, end=None):
        end = max(start + 1, self.frame_at(segment.end) if end is None else end)
        if segment.source is None and self.mode.slate_piece:  # the slate, in pieces its reader airs whole
            end = min(end, start + round(self.mode.slate_piece.total_seconds() * self.fmt.fps))
        return Entry(segment, start, end, self.mode.open(segment, end - start))

    def next_entry(self, frame):
        """The segment airing from frame `frame` on. The timeline is asked from half a frame
        earlier and a segment that ends on this frame skipped: boundaries are rounded to the
        frame grid, and asking at the frame's exact time could return the last sliver of the
        segment that just ended (aired as a one-frame segment, the next one then not pre-rolled)."""
        segments = self.feed.upcoming(self.time_at(frame) - timedelta(seconds=float(1 / (2 * self.fmt.fps))))
        segment = next((s for s in segments if self.frame_at(s.end) > frame), segments[-1])
        return self.entry(segment, frame)

    def prepare_switch(self):
        segment = self.feed.poll_switch()
        if segment is None:
            return None
        return self.entry(segment, 0, max(1, round(segment.duration_s * self.fmt.fps)))

    # --- the loop -------------------------------------------------------------------------------
    def run(self):
        try:
            self.play()
            why = "output stopped"
        except OSError as exc:
            why = "output stopped" if self.stopped.is_set() else f"output stage ended: {exc}"
            if not self.stopped.is_set():
                log.warning("pacer stopped: %s", exc)
        except Exception as exc:  # the output stage starves and the supervisor restarts the run
            why = f"playout failed: {exc}"
            log.exception("pacer failed")
        finally:
            for reader in list(self.mode.live):  # whatever it started and did not close yet
                reader.close()
        if self.asrun and self.current:
            ended = min(filter(None, [self.time_at(self.reached), self.output_ended_at]))
            self.asrun.off_air(ended, self.reached - self.current.start, why)

    def play(self):
        """The unit loop. Only writes and waits happen here: readers are started and the
        database is read on the helper thread (`prepare`), so a fork or a query never delays
        a frame."""
        # With a burst the origin is that far back: the frames due since then go out at once.
        self.origin = self.origin or timezone.now() - timedelta(seconds=self.burst)
        start = self.clock() - self.burst
        self.prepare = self.executor()
        try:
            self.begin(self.next_entry(0))
            while not self.stopped.is_set():
                self.air_current(start)
        finally:
            # Whatever ended the loop (a stop, a dead output stage), nothing is left preparing:
            # the readers it started are closed in run().
            self.prepare.shutdown(wait=True)

    def begin(self, entry):
        """`entry` airs from its first frame on; the one before ends there."""
        previous, self.current, self.reached = self.current, entry, entry.start
        self.aired.append((entry.start, entry.segment))
        if self.asrun:
            self.prepare.submit(self.asrun.on_air, entry.segment, self.time_at(entry.start),
                                previous and entry.start - previous.start)

    def air_current(self, start):
        """Air the current entry until it ends, a switch cuts it, or the pacer stops. Frames may
        come in another order than shown (B-frames): `reached` is the first frame not yet
        shown by any that aired, where the next segment or a switch may begin."""
        entry = self.current
        reached = entry.start
        for unit in self.mode.units(entry.reader, entry.start, entry.end, self.stopped):
            if unit is None:  # waiting on the reader: never hold what is ready to go
                self.mode.flush()
                continue
            due, frame, payload = unit
            if frame is not None:
                if self.at_frame(reached):
                    return  # cut to a switch: this frame does not air
                reached = self.reached = max(reached, frame + 1)
                before, self.last_frame_unit = self.last_frame_unit, payload
            if frame is not None and due is not None:  # what follows a frame goes out with it
                now = self.clock()
                delay = start + due - self.mode.lead - now
                if delay > 0:
                    head = self.mode.ahead(before, payload)  # so it has the frame before whole
                    if head:
                        self.mode.write(payload[:head])
                        payload = payload[head:]
                    self.mode.flush()
                    if self.wait(delay):
                        return
                    now = self.clock()
                if not self.lease.admits(now) and self.hold_for_lease(now):
                    return
            self.mode.write(payload)
        if self.stopped.is_set():
            return
        if reached < entry.end - self.mode.held_frames and entry.segment.source:
            self.fill_short(entry, reached - entry.start)
            return
        self.prepare.submit(entry.reader.close)
        following = self.following.result() if self.following else None
        if following is None or following.start != entry.end:
            if following:
                self.prepare.submit(following.reader.close)
            following = self.next_entry(entry.end)
        self.following = None
        self.begin(following)

    def fill_short(self, entry, aired):
        """A source that ended early or could not be read at all: the slate airs for the rest
        of its slot (never silence), then the timeline goes on."""
        reason = entry.reader.error_text() if aired == 0 else "ended early"
        self.prepare.submit(entry.reader.close)
        if aired == 0:
            self.prepare.submit(self.feed.unreadable, entry.segment, reason)
        self.begin(self.stand_in(entry, aired, reason))

    def stand_in(self, entry, aired, reason):
        """The slate for the rest of `entry`'s slot, keeping the program's title and saying why
        in its description (what the views show as on air)."""
        scheduled = entry.end - entry.start
        self.short.append((entry.segment, aired, scheduled))
        log.warning("playout: %s aired %d of %d frames (%s); the slate fills the rest",
                    entry.segment.source, aired, scheduled, reason)
        start = entry.start + aired
        why = f"{entry.segment.source} {'cannot be read' if aired == 0 else 'ran short'}: {reason}"
        slate = replace(entry.segment, kind="slate", source=None, in_point=0.0, start=self.time_at(start),
                        description=why)
        return self.entry(slate, start, entry.end)

    def prepared_entry(self, frame):
        """The next entry, prepared on the helper thread ahead of its boundary. A source that
        ends without a byte (deleted, unreadable) is known now, and the slate is prepared for
        its slot instead: the boundary airs on time either way."""
        entry = self.next_entry(frame)
        if entry.segment.source and entry.reader.first_output(PREROLL_SECONDS / 2) is False:
            reason = entry.reader.error_text()
            entry.reader.close()
            self.feed.unreadable(entry.segment, reason)
            return self.stand_in(entry, 0, reason)
        return entry

    def on_air(self):
        """What airs now, for the views: kind, title, why (a slate standing in) and since when."""
        entry = self.current
        if entry is None:
            return None
        segment = entry.segment
        return {"kind": segment.kind, "title": segment.title, "description": segment.description,
                "program_id": segment.program_id, "since": self.time_at(entry.start).isoformat()}

    def at_frame(self, k):
        """At the start of frame k: pre-roll the next segment, take a switch asked for, and cut
        to a switch whose reader has output. True if the cut was made."""
        if (self.following is None and self.current.end - k <= self.preroll
                and k - self.current.start >= min(self.settle, (self.current.end - self.current.start) // 4)):
            self.following = self.prepare.submit(self.prepared_entry, self.current.end)
        if self.switching is None and self.switch_hint.is_set():
            self.switch_hint.clear()
            self.switching = self.prepare.submit(self.prepare_switch)
        if self.switching is None or not self.switching.done():
            return False
        if self.switching.exception():
            log.warning("switch not taken: %s", self.switching.exception())
            self.switching = None
            return False
        entry = self.switching.result()
        if entry is None:
            self.switching = None
            return False
        if not entry.reader.ready():
            return False
        self.prepare.submit(self.current.reader.close)
        if self.following:
            self.prepare.submit(self.following.result().reader.close)
        self.following = self.switching = None
        self.begin(Entry(entry.segment, k, k + entry.end - entry.start, entry.reader))
        return True
