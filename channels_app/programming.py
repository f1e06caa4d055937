"""A channel's programming from the database: its schedule resolved through the timeline.

One place turns Schedule/Program/TransitionRule rows into timeline values, so the playout
engine, the schedule API and the XMLTV guide always agree on what airs when.
"""
import logging
from datetime import timedelta

from django.db.models import Q, Subquery
from django.utils import timezone

from . import timeline
from .models import MediaAsset, Program, TransitionRule

log = logging.getLogger("retrovue.programming")
# The engine prepares a segment this long before it airs (its pre-roll, with a margin).
CHANGE_MARGIN = timedelta(seconds=3)
WINDOWS = (timedelta(hours=1), timedelta(days=1))


def schedule_items(schedule, since=None, until=None):
    """The schedule's programs as timeline items; one whose file a library scan found gone is
    skipped (and logged): its slot is a gap, filled per the transition rule. Of a schedule whose
    programs all have a start and that does not loop (one built by rules holds days of them),
    only those that can air over [since, until): from the last one starting before `since` (a
    program is cut at its successor's start) to `until`."""
    programs = Program.objects.filter(schedule=schedule)
    if since is not None and not schedule.loop and not programs.filter(start=None).exists():
        airing = programs.filter(start__lte=since).order_by("-start").values("start")[:1]
        programs = programs.filter(start__lt=until).filter(
            Q(start__gte=Subquery(airing)) | Q(start__gt=since))
    rows = programs.order_by("position").values_list(  # plain rows: a guide reads thousands
        "pk", "start", "in_point", "out_point", "title", "description", "asset_id", "asset__source",
        "asset__title", "asset__duration_s", "asset__missing_since", named=True)
    gone = sorted({row.asset__source for row in rows if row.asset__missing_since})
    if gone:
        log.warning("scheduled files no longer found, skipped: %s", ", ".join(gone))
    return [timeline.Item(start=row.start, duration_s=Program.span(row.in_point, row.out_point, row.asset__duration_s),
                          source=row.asset__source, in_point=row.in_point or 0.0,
                          title=row.title or row.asset__title, description=row.description, program_id=row.pk,
                          asset_id=row.asset_id)
            for row in rows if not row.asset__missing_since]


def schedule_transition(schedule):
    """(what fills gaps, whether gaps are closed instead) from the schedule's transition rule;
    a filler whose file is gone gives way to the slate."""
    rule = TransitionRule.objects.filter(schedule=schedule).select_related("filler").first()
    if rule and rule.fill == TransitionRule.Fill.FILLER and rule.filler and not rule.filler.missing_since:
        return timeline.Filler(rule.filler.source, rule.filler.duration_s, rule.filler_id, rule.filler.title), False
    return timeline.Filler(), bool(rule and rule.fill == TransitionRule.Fill.CUT)


def playlist_items(paths):
    """The playlist's files as timeline items, in order; a file no longer in the library (or
    that a library scan found gone) is skipped (and logged), never aired."""
    assets = {a.source: a for a in MediaAsset.objects.filter(source__in=list(paths), missing_since=None)}
    missing = [p for p in paths if p not in assets]
    if missing:
        log.warning("playlist entries not in the media library or gone, skipped: %s", ", ".join(missing))
    return [timeline.Item(start=None, duration_s=assets[p].duration_s, source=p, title=assets[p].title,
                          asset_id=assets[p].pk) for p in paths if p in assets]


def playlist_anchor(channel):
    """When the playlist's first loop began: set when the playlist changes."""
    return channel.playlist_started_at or channel.created_at


def channel_segments(channel, since=None, until=None, hours=6):
    """Segments the channel airs over [since, until) (default: now and the next `hours`).

    A channel without a schedule loops its playlist from its anchor (so a restart resumes where
    the clock is), or airs the slate."""
    since = since or timezone.now()
    until = until or since + timedelta(hours=hours)
    schedule = channel.current_schedule
    if schedule is None:
        return timeline.looped(playlist_items(channel.playlist), playlist_anchor(channel), since, until)
    filler, close_gaps = schedule_transition(schedule)
    return timeline.segments(schedule_items(schedule, since, until), since, until, anchor=schedule.created_at,
                             loop=schedule.loop, tz=schedule.timezone, filler=filler, close_gaps=close_gaps)


def upcoming(channel, at):
    """Segments from `at` on, the first two whole: an hour is asked first (a playlist of short
    clips makes many segments), then a day when that window cuts them (a long movie)."""
    for window in WINDOWS:
        segments = channel_segments(channel, since=at, until=at + window)
        if len(segments) > 2:
            break
    return segments


def next_boundary(channel, now=None):
    """Where a change of what a running channel airs takes effect: the first segment boundary
    the engine has not prepared yet (it prepares the next segment a couple of seconds ahead)."""
    now = now or timezone.now()
    for segment in upcoming(channel, now):
        if segment.end >= now + CHANGE_MARGIN:
            return segment.end
    return now
