"""What a channel airs when: a schedule resolved into back-to-back segments.

Pure logic over plain values, shared by the playout engine, the XMLTV guide and the API. Programs
start at their own time or right after the previous one; a program whose successor starts
earlier is cut there (a hard start wins, as in broadcast). A looping schedule repeats its block
every day at the same local times. Gaps, and any time before, between or after programs, are
filled per the transition rule (filler asset or slate), so a channel never goes silent.
"""
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Item:
    """A program as the timeline sees it (resolved from the database by the caller)."""

    start: datetime | None  # aware; None = right after the previous item
    duration_s: float
    source: str
    in_point: float = 0.0
    title: str = ""
    description: str = ""
    program_id: int | None = None
    asset_id: int | None = None


@dataclass(frozen=True)
class Filler:
    """What fills gaps: an asset looped (source and duration) or, with source None, the slate."""

    source: str | None = None
    duration_s: float = 0.0
    asset_id: int | None = None
    title: str = ""


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    kind: str  # "program", "filler", "slate" or (an operator's) "switch"
    source: str | None
    in_point: float
    title: str = ""
    description: str = ""
    program_id: int | None = None
    asset_id: int | None = None

    @property
    def duration_s(self):
        return (self.end - self.start).total_seconds()


def block(items, anchor, close_gaps=False):
    """Absolute (start, end, item) for one pass over the items; a first item without a start
    begins at `anchor`. With `close_gaps` (the CUT transition) a program that would start after
    a gap starts right after the previous one instead."""
    slots, cursor = [], anchor
    for index, item in enumerate(items):
        start = item.start or cursor
        if close_gaps and index and start > cursor:
            start = cursor
        slots.append([start, start + timedelta(seconds=item.duration_s), item])
        cursor = slots[-1][1]
    for current, following in zip(slots, slots[1:]):
        current[1] = min(current[1], max(following[0], current[0]))  # a hard start cuts the previous
    return [tuple(slot) for slot in slots if slot[1] > slot[0]]


def occurrences(items, anchor, loop, tz, since, until, close_gaps=False):
    """The block's slots overlapping [since, until): once, or every day in local time."""
    base = block(items, anchor, close_gaps)
    if not loop or not base:
        return [s for s in base if s[1] > since and s[0] < until]
    zone = ZoneInfo(tz)
    first_day = base[0][0].astimezone(zone).date()
    day = max(first_day, since.astimezone(zone).date() - timedelta(days=1))
    found = []
    while True:
        shift = day - first_day
        shifted = [(_shift(s, shift, zone), _shift(e, shift, zone), item) for s, e, item in base]
        if shifted[0][0] >= until:
            return found
        found += [s for s in shifted if s[1] > since and s[0] < until]
        day += DAY


def _shift(moment, days, zone):
    """The same local wall-clock time `days` later (DST-safe)."""
    local = moment.astimezone(zone)
    return datetime.combine(local.date() + days, local.timetz().replace(tzinfo=None), zone)


def fill(start, end, filler):
    if filler.source is None or filler.duration_s <= 0:
        return [Segment(start, end, "slate", None, 0.0, title="")]
    segments, cursor = [], start
    while cursor < end:  # the filler loops from its beginning to the gap's end
        stop = min(end, cursor + timedelta(seconds=filler.duration_s))
        segments.append(Segment(cursor, stop, "filler", filler.source, 0.0, title=filler.title,
                                asset_id=filler.asset_id))
        cursor = stop
    return segments


def segments(items, since, until, *, anchor, loop=False, tz="UTC", filler=Filler(), close_gaps=False):
    """Back-to-back segments covering [since, until) exactly, gaps filled."""
    out, cursor = [], since
    for slot_start, slot_end, item in occurrences(items, anchor, loop, tz, since, until, close_gaps):
        start, end = max(slot_start, cursor), min(slot_end, until)
        if end <= start:
            continue
        if start > cursor:
            out += fill(cursor, start, filler)
        joined_late = (start - slot_start).total_seconds()  # tuning in mid-program
        out.append(Segment(start, end, "program", item.source, item.in_point + joined_late, item.title,
                           item.description, item.program_id, item.asset_id))
        cursor = end
    if cursor < until:
        out += fill(cursor, until, filler)
    return out


def looped(items, anchor, since, until):
    """A playlist: the items back to back from `anchor`, again and again, over [since, until)
    (a segment cut by `since` is joined late, its in-point moved on). No items: the slate."""
    period = sum(item.duration_s for item in items)
    if period <= 0:
        return [Segment(since, until, "slate", None, 0.0)]
    out = []
    cursor = anchor + timedelta(seconds=math.floor((since - anchor).total_seconds() / period) * period)
    while cursor < until:
        for item in items:
            start, cursor = cursor, cursor + timedelta(seconds=item.duration_s)
            if cursor > since and start < until:
                begin = max(start, since)
                out.append(Segment(begin, min(cursor, until), "program", item.source,
                                   item.in_point + (begin - start).total_seconds(), item.title,
                                   item.description, asset_id=item.asset_id))
            if cursor >= until:
                break
    return out
