"""Bookkeeping of beat's control loops (lease sweep, alert evaluation).

A loop that ran more than a lease TTL later than due (beat, Redis or the database was away)
enters a grace period of one TTL: leases and host heartbeats could not be renewed during the
gap, so judging them at once would read an outage as every host lost.
"""
from django.conf import settings

from .models import ControlLoopRun


def _mark(name, now):
    if not ControlLoopRun.objects.filter(name=name).update(last_run_at=now):
        ControlLoopRun.objects.get_or_create(name=name, defaults={"last_run_at": now})


def in_grace(name, now, every):
    """Record a run of loop `name` (due every `every` seconds) at `now`; True while it is within
    a TTL of a gap, i.e. of a run that came more than a TTL later than due."""
    ttl = settings.RETROVUE_LEASE_TTL_SECONDS
    grace = f"{name}:grace"
    marks = dict(ControlLoopRun.objects.filter(name__in=[name, grace]).values_list("name", "last_run_at"))
    _mark(name, now)
    if name not in marks or (now - marks[name]).total_seconds() > every + ttl:
        _mark(grace, now)
        marks[grace] = now
    return (now - marks[grace]).total_seconds() <= ttl
