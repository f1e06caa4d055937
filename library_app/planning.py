"""Laying a channel's rules out on the clock: the programs from a cutoff to a horizon.

Pure logic over the clean rules (library_app/rules.py), the collections' assets and the programs
kept; library_app/builder.py reads and writes the database around it. Every program placed has
an explicit start, the exact sum of what came before, so each airs at its planned time.

- Time blocks are local times of the rules' time zone, by weekday (DST-correct: 20:00 is 20:00
  local on both sides of a change). Within a block its collection airs item after item, in its
  order, while each item ends by the block's end; when the next episode of a chronological order
  does not fit, filler fills the rest of the block and the episode waits for the next occurrence
  (the other orders take the first item of their deal that fits; filler only when none does).
  The default fills the time outside blocks the same way, up to the next block's start (without
  a default that time is left to the slate).
- An item longer than its whole block airs anyway when it is the block's first (a 2 h 10 min
  movie in a 2 h block); what follows starts at the next pad boundary after it.
- After each program, filler pads to the next multiple of `pad_to_minutes` past the local hour
  (or the next block start or hand-placed program, if sooner), the last item cut to end exactly
  there. A pre-roll before and a post-roll after a program count inside its padded slot, so
  they are only placed when they fit there, and so are mid-rolls: a program whose asset has
  chapter marks is split at them (parts with in/out points) with a mid-roll between. A filler
  item is not reused within `cooldown_minutes`; time that no filler can fill (none, or all in
  cooldown) is left as a gap (the engine airs the slate) and counted in `gap_seconds`.
- Hand-placed programs are fixed points: rules fill the time around them and never overlap them.
"""
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from channels_app.models import Program

from .orders import FillerPool, Stream, stream_key
from .rules import DAY_MINUTES, DAYS, clock_minutes

# Filler roles, as stored in Program.origin, and the rules' filler field naming each one's collection.
FILLER_ROLES = {"filler": "collection", "pre_roll": "pre_roll", "post_roll": "post_roll", "mid_roll": "mid_roll"}
MIN_PART_S = 1.0  # a chapter mark this close to the start, the end or another cut is not a cut
MIN_FILLER_S = 1.0  # a whole filler item leaves either nothing or at least this much to pad
EXACT_S = 0.001  # a filler item this much longer than the time left is cut to it (never shorter: a gap)
LOOKAHEAD = timedelta(days=8)  # the default's window reaches this far for the next block start


@dataclass(frozen=True)
class Window:
    """A stretch of time one rule owns: a block occurrence, or the default between them."""

    start: datetime
    end: datetime
    stream: dict | None  # the block's or the default's {"collection", "order", ...}; None: unscheduled
    is_block: bool


def local_moment(day, minutes, zone):
    """The UTC instant of a local wall-clock time `minutes` past midnight of `day` (24:00: the
    next midnight)."""
    wall = datetime.combine(day + timedelta(days=minutes // DAY_MINUTES), datetime.min.time())
    wall += timedelta(minutes=minutes % DAY_MINUTES)
    return wall.replace(tzinfo=zone).astimezone(dt_timezone.utc)


def local_midnight(moment, zone):
    return local_moment(moment.astimezone(zone).date(), 0, zone)


def windows(rules, zone, since, until):
    """Windows covering `since` (from the local midnight before) to past `until`, in time order."""
    first = since.astimezone(zone).date() - timedelta(days=1)
    days = (until.astimezone(zone).date() - first).days + LOOKAHEAD.days
    occurrences = []
    for day in (first + timedelta(days=n) for n in range(days)):
        for block in rules["blocks"]:
            if DAYS[day.weekday()] in block["days"]:
                start, end = clock_minutes(block["start"]), clock_minutes(block["end"])
                begins = local_moment(day, start, zone)
                ends = local_moment(day, end if end > start else end + DAY_MINUTES, zone)
                if ends > begins:
                    occurrences.append(Window(begins, ends, block, True))
    default, out = rules.get("default"), []
    cursor = local_midnight(since, zone)
    for occurrence in sorted(occurrences, key=lambda w: w.start):
        if occurrence.end <= cursor:
            continue
        if occurrence.start > cursor:
            out.append(Window(cursor, occurrence.start, default, False))
        out.append(occurrence)
        cursor = occurrence.end
    horizon = local_midnight(until + LOOKAHEAD, zone)
    if horizon > cursor:
        out.append(Window(cursor, horizon, default, False))
    return out


def seconds(span):
    return span.total_seconds()


def after(moment, duration_s):
    return moment + timedelta(seconds=duration_s)


class Planner:
    """Programs for one channel from its rules; `plan(cutoff, until, fixed)` once per build."""

    def __init__(self, rules, seed, assets, kept, progress):
        """`assets`: {collection id: [MediaAsset]}; `kept`: [(start, Program)] before the cutoff,
        in time order; `progress`: {progress key: MediaAsset} of pruned streams."""
        self.rules, self.seed, self.assets, self.progress = rules, seed, assets, progress
        self.zone = ZoneInfo(rules["timezone"])
        self.kept = kept
        filler = rules.get("filler") or {}
        self.pad_step = timedelta(minutes=filler["pad_to_minutes"]) if filler.get("pad_to_minutes") else None
        last_starts, last_taken = {}, {}
        for start, program in kept:
            if program.origin in FILLER_ROLES:
                last_starts[program.asset_id] = start
                last_taken[program.origin] = program.asset_id
        cooldown = timedelta(minutes=filler.get("cooldown_minutes", 0))
        self.fillers = {role: FillerPool(role, assets.get(filler[field], []), seed, cooldown, last_starts,
                                         last_taken.get(role))
                        for role, field in FILLER_ROLES.items() if filler.get(field) is not None}
        self.streams, self.out, self.gap_seconds, self.empty = {}, [], 0.0, set()

    def stream(self, spec):
        key = stream_key(spec)
        if key not in self.streams:
            placed = [(start, p.asset) for start, p in self.kept if p.origin == key and not p.in_point]
            self.streams[key] = Stream(key, spec, self.assets.get(spec["collection"], []), self.seed, placed,
                                       self.progress)
        return self.streams[key]

    def boundary(self, moment):
        """The first pad boundary at or after `moment` (itself without padding)."""
        if self.pad_step is None:
            return moment
        local = moment.astimezone(self.zone)
        into_hour = timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
        late = into_hour % self.pad_step
        return moment + (self.pad_step - late) if late else moment

    def plan(self, cutoff, until, fixed):
        """(the programs from `cutoff`, in time order, unsaved; where the plan ends). Programs
        are placed while they start before `until`; `fixed` (hand-placed, in time order) are all
        placed, those after `until` as they are."""
        fixed, spans = deque(fixed), windows(self.rules, self.zone, cutoff, until)
        index, cursor = 0, cutoff
        while cursor < until:
            if fixed and fixed[0].start <= cursor:
                program = fixed.popleft()
                self.out.append(program)
                cursor = max(cursor, after(program.start, program.duration_s))
                continue
            while spans[index].end <= cursor:
                index += 1
            window = spans[index]
            limit = min(window.end, fixed[0].start) if fixed else window.end
            boundary = self.boundary(cursor)
            if boundary > cursor:
                cursor = self.pad(cursor, min(boundary, limit))
            elif window.stream is None:
                cursor = limit
            else:
                cursor = self.place(window, cursor, limit, fixed[0].start if fixed else None)
        self.out += fixed
        return self.out, cursor

    def occurrence(self, window, cursor):
        """When the occurrence a shuffle deals for began: the block's start; for the default,
        the later of its window's start and the local midnight."""
        return window.start if window.is_block else max(window.start, local_midnight(cursor, self.zone))

    def place(self, window, cursor, limit, next_fixed):
        """The window's next item that fits with its rolls, or filler to `limit` when none does."""
        stream = self.stream(window.stream)
        occurrence = self.occurrence(window, cursor)
        asset = stream.next(occurrence, fits=lambda duration: after(cursor, duration) <= limit)
        if asset is None:
            asset = stream.next(occurrence)
            if asset is None:
                self.empty.add(window.stream["collection"])
                return self.pad(cursor, limit)
            if not self.opens_long_block(window, stream, asset, cursor, next_fixed):
                return self.pad(cursor, limit)
        ends = after(cursor, asset.duration_s)
        stream.placed(cursor, asset)
        spare = max(0.0, seconds(min(limit, self.boundary(ends)) - ends))
        return self.unit(asset, stream.key, cursor, spare)

    @staticmethod
    def opens_long_block(window, stream, asset, cursor, next_fixed):
        """An item longer than its whole block airs anyway as the block's first, unless a
        hand-placed program comes before its end."""
        ends = after(cursor, asset.duration_s)
        return (window.is_block and not stream.since(window.start)
                and seconds(window.end - window.start) < asset.duration_s
                and (next_fixed is None or ends <= next_fixed))

    def unit(self, asset, origin, start, spare):
        """Pre-roll, the program (split at its chapters with mid-rolls) and post-roll, the rolls
        only while they fit in `spare` seconds; returns where the unit ends."""
        moment, spare = self.roll("pre_roll", start, spare)
        begin = 0.0
        for mark in self.cuts(asset):
            part_end = after(moment, mark - begin)
            roll = self.take("mid_roll", part_end, spare)
            if roll is None:
                continue
            self.out.append(Program(start=moment, asset=asset, origin=origin, in_point=begin or None, out_point=mark))
            self.out.append(Program(start=part_end, asset=roll, origin="mid_roll"))
            moment, spare, begin = after(part_end, roll.duration_s), spare - roll.duration_s, mark
        self.out.append(Program(start=moment, asset=asset, origin=origin, in_point=begin or None))
        return self.roll("post_roll", after(moment, asset.duration_s - begin), spare)[0]

    def roll(self, role, moment, spare):
        """A whole pre- or post-roll at `moment` if one fits: (where it ends, spare left)."""
        asset = self.take(role, moment, spare)
        if asset is None:
            return moment, spare
        self.out.append(Program(start=moment, asset=asset, origin=role))
        return after(moment, asset.duration_s), spare - asset.duration_s

    def take(self, role, moment, spare):
        pool = self.fillers.get(role)
        return pool and pool.take(moment, fits=lambda duration: duration <= spare)

    @staticmethod
    def cuts(asset):
        """The asset's chapter marks usable as cuts, in order."""
        marks, last = [], 0.0
        for mark in sorted(m for m in asset.chapters or [] if isinstance(m, (int, float)) and not isinstance(m, bool)):
            if mark - last >= MIN_PART_S and asset.duration_s - mark >= MIN_PART_S:
                marks.append(mark)
                last = mark
        return marks

    def pad(self, start, end):
        """Filler from `start` to exactly `end` (a gap where none can be taken); returns `end`."""
        pool, moment = self.fillers.get("filler"), start
        while moment < end:
            remaining = seconds(end - moment)
            asset = pool and (pool.take(moment, fits=whole_in(remaining)) or pool.take(moment))
            if not asset:
                self.gap_seconds += remaining
                return end
            cut = after(moment, asset.duration_s) > end
            self.out.append(Program(start=moment, asset=asset, origin="filler", out_point=remaining if cut else None))
            moment = end if cut else after(moment, asset.duration_s)
        return end


def whole_in(remaining):
    """Whether a filler item is taken whole into `remaining` seconds of padding: it leaves either
    at least MIN_FILLER_S or nothing (cut by at most EXACT_S); else the last item is cut to fit."""
    return lambda duration: duration <= remaining - MIN_FILLER_S or remaining <= duration < remaining + EXACT_S


def starts_unit(program, previous):
    """Whether a rebuild may start at this program: not inside a program split by mid-rolls nor
    between a pre-roll and its program or a program and its post-roll."""
    if program.origin in ("mid_roll", "post_roll"):
        return False
    if program.origin and program.origin not in FILLER_ROLES:
        return not program.in_point and not (previous is not None and previous.origin == "pre_roll")
    return True
