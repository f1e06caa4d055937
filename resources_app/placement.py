"""Admission control and host choice: a channel goes only where its reservation fits.

Fit is judged against reservations (ResourceAllocation rows), never against a guess: each
dimension (CPU, memory, bandwidth, channel slots) must have room beside what is reserved.
Among the hosts that fit, `spread` (the default) takes the least loaded one after placing,
`pack` the most loaded, so whole hosts stay free (the system defaults'
resource_allocation.strategy). Only live hosts qualify: ONLINE and with a
heartbeat within the lease TTL, so a host whose lease is stale never gets a channel.
"""
from django.db.models import Count, Sum
from django.utils import timezone

from channels_app.system_config import system_config
from retrovue.errors import DoesNotFit, NoCapacity
from streams_app.models import Stream

from .models import EncodeHost, ResourceAllocation
from .requirements import DIMENSIONS, channel_need

STRATEGIES = ("spread", "pack")


def host_loads():
    """Active stream runs per host name, in one query."""
    rows = Stream.objects.filter(status__in=Stream.ACTIVE).values("host").annotate(n=Count("id"))
    return {row["host"]: row["n"] for row in rows}


def reserved_by_host(exclude_channel=None):
    """{host id: {cpu_percent, memory_mb, bandwidth_mbps, channels}} summed over allocations."""
    rows = ResourceAllocation.objects.all()
    if exclude_channel is not None:
        rows = rows.exclude(channel=exclude_channel)
    sums = rows.values("host_id").annotate(
        cpu_percent=Sum("cpu_percent"), memory_mb=Sum("memory_mb"),
        bandwidth_mbps=Sum("bandwidth_mbps"), channels=Count("id"))
    return {row.pop("host_id"): row for row in sums}


def capacity_of(host):
    return {"cpu_percent": host.cpu_capacity, "memory_mb": host.memory_mb,
            "bandwidth_mbps": host.bandwidth_mbps, "channels": host.capacity}


def shortfall(host, reserved, need):
    """What the host lacks for `need` beside what is reserved: [] when it fits."""
    capacity = capacity_of(host)
    used = reserved or {}
    missing = []
    for field, label, unit in DIMENSIONS:
        free = capacity[field] - (used.get(field) or 0)
        wanted = getattr(need, field)
        if wanted > free + 1e-9:
            missing.append(f"{label} needs {wanted:g}{unit}, {max(free, 0):g}{unit} free "
                           f"of {capacity[field]:g}{unit}")
    if (used.get("channels") or 0) >= host.capacity:
        missing.append(f"channels {used['channels']}/{host.capacity} (max_channels)")
    return missing


def utilisation(host, reserved, need):
    """The host's fullest dimension, as a fraction, once `need` is placed there."""
    capacity = capacity_of(host)
    used = reserved or {}
    fractions = [((used.get(field) or 0) + getattr(need, field)) / capacity[field]
                 for field, _, _ in DIMENSIONS if capacity[field]]
    fractions.append(((used.get("channels") or 0) + 1) / host.capacity)
    return max(fractions)


def describe_hosts(exclude=()):
    """Why each known host is not taking channels: its state and heartbeat age."""
    now = timezone.now()
    for host in EncodeHost.objects.all():
        age = f"{(now - host.last_heartbeat).total_seconds():.1f}s ago" if host.last_heartbeat else "never"
        why = "excluded: just lost" if host.name in exclude else f"{host.state}, heartbeat {age}"
        yield f"{host.name}: {why}"


def eligible_hosts(channel, exclude=()):
    """Live hosts the channel may run on: its pinned host or label, none that was excluded."""
    pin = (channel.config.placement_settings or {}) if channel is not None else {}
    hosts = [h for h in EncodeHost.objects.live() if h.name not in exclude]
    if not hosts:
        raise NoCapacity("no encode host is online (start one with: retrovue worker --host NAME)"
                         + "".join(f"; {known}" for known in describe_hosts(exclude)))
    if pin.get("host"):
        hosts = [h for h in hosts if h.name == pin["host"]]
        if not hosts:
            raise NoCapacity(f"channel {channel.number} is pinned to host {pin['host']}, "
                             "which is not online")
    if pin.get("label"):
        hosts = [h for h in hosts if pin["label"] in (h.labels or [])]
        if not hosts:
            raise NoCapacity(f"channel {channel.number} needs a host labelled {pin['label']}; "
                             "none is online")
    return hosts


def choose_host(channel, need=None, exclude=(), strategy=None):
    """The host to reserve `need` (default: the channel's need) on, or DoesNotFit naming the
    shortfall on every eligible host."""
    need = need or channel_need(channel)
    strategy = strategy or system_config()["resource_allocation"]["strategy"]
    hosts = eligible_hosts(channel, exclude)
    reserved = reserved_by_host(exclude_channel=channel)
    missing = {h.name: shortfall(h, reserved.get(h.pk), need) for h in hosts}
    fits = [h for h in hosts if not missing[h.name]]
    if not fits:
        who = f"channel {channel.number}" if channel is not None else "the request"
        raise DoesNotFit(f"{who} does not fit (needs {need.describe()}): "
                         + "; ".join(f"{name}: {', '.join(lacks)}" for name, lacks in missing.items()),
                         shortfall=missing, need=need.as_dict())
    sign = 1 if strategy == "spread" else -1
    return min(fits, key=lambda h: (sign * utilisation(h, reserved.get(h.pk), need), h.name))
