"""A channel's programming from the database: its schedule resolved through the timeline.

One place turns Schedule/Program/TransitionRule rows into timeline values, so the playout
engine, the schedule API and the XMLTV guide always agree on what airs when.
"""
from datetime import timedelta

from django.utils import timezone

from . import timeline
from .models import Program, TransitionRule


def schedule_items(schedule):
    programs = Program.objects.filter(schedule=schedule).select_related("asset").order_by("position")
    return [timeline.Item(start=p.start, duration_s=p.duration_s, source=p.asset.source,
                          in_point=p.in_point or 0.0, title=p.title or p.asset.title,
                          description=p.description, program_id=p.pk, asset_id=p.asset_id)
            for p in programs]


def schedule_filler(schedule):
    rule = TransitionRule.objects.filter(schedule=schedule).select_related("filler").first()
    if rule and rule.fill == TransitionRule.Fill.FILLER and rule.filler:
        return timeline.Filler(rule.filler.source, rule.filler.duration_s, rule.filler_id, rule.filler.title)
    return timeline.Filler()


def channel_segments(channel, since=None, until=None, hours=6):
    """Segments the channel airs over [since, until) (default: now and the next `hours`).

    A channel without a schedule airs its looped playlist, or the slate, as one segment."""
    since = since or timezone.now()
    until = until or since + timedelta(hours=hours)
    schedule = channel.current_schedule
    if schedule is None:
        kind = "playlist" if channel.playlist else "slate"
        return [timeline.Segment(since, until, kind, None, 0.0, title=channel.name)]
    return timeline.segments(schedule_items(schedule), since, until, anchor=schedule.created_at,
                             loop=schedule.loop, tz=schedule.timezone, filler=schedule_filler(schedule))
