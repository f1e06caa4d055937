"""Choosing an encode host for a channel: any live host with a free slot, least loaded first."""
from django.db.models import Count

from retrovue.errors import NoCapacity
from streams_app.models import Stream

from .models import EncodeHost


def host_loads():
    """Active stream runs per host name, in one query."""
    rows = Stream.objects.filter(status__in=Stream.ACTIVE).values("host").annotate(n=Count("id"))
    return {row["host"]: row["n"] for row in rows}


def choose_host(exclude=()):
    hosts = [h for h in EncodeHost.objects.live() if h.name not in exclude]
    if not hosts:
        raise NoCapacity("no encode host is online (start one with: retrovue worker --host NAME)")
    loads = host_loads()
    free = [h for h in hosts if loads.get(h.name, 0) < h.capacity]
    if not free:
        raise NoCapacity("every online encode host is full: "
                         + ", ".join(f"{h.name} {loads.get(h.name, 0)}/{h.capacity}" for h in hosts))
    return min(free, key=lambda h: (loads.get(h.name, 0) / h.capacity, h.name))
