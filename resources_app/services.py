"""Resource services under the API, the admin, the CLI and the pages: status, allocate,
release, drain and the migration of a draining host's channels."""
import logging

from django.db import transaction
from django.db.models import F

from channels_app.models import Channel
from channels_app.services import get_channel
from retrovue.errors import ConfigError, Conflict, DoesNotFit, NotFound
from streams_app.models import Stream

from . import allocations
from .models import EncodeHost, ResourceAllocation
from .placement import capacity_of, reserved_by_host, shortfall
from .requirements import Need, channel_need, parse_cores, parse_mbps, parse_memory_mb

log = logging.getLogger("retrovue.resources")
ALLOCATE_FIELDS = ("channel", "cpu", "memory_mb", "bandwidth_mbps")  # what an allocate request may hold


def measured_use(host, runs):
    """What the host's running channels use, from their supervisors' last reports; host CPU
    and memory as psutil saw them at the host's heartbeat."""
    cpu = round((host.cpu_percent or 0) / 100 * host.cpu_capacity, 1) if host.cpu_percent is not None else None
    memory = round((host.memory_percent or 0) / 100 * host.memory_mb) if host.memory_percent is not None else None
    bandwidth = sum((run.health_metrics or {}).get("bitrate_kbps") or 0 for run in runs) / 1000
    return {"cpu_percent": cpu, "memory_mb": memory, "bandwidth_mbps": round(bandwidth, 2)}


def resource_status():
    """Every host with capacity, reserved and used per dimension, its channels, and totals."""
    reserved = reserved_by_host()
    live = set(EncodeHost.objects.live().values_list("pk", flat=True))
    runs = Stream.objects.filter(status=Stream.Status.RUNNING, generation=F("channel__generation")) \
        .select_related("channel")
    runs_by_host = {}
    for run in runs:
        runs_by_host.setdefault(run.host, []).append(run)
    channels_by_host = {}
    for host_id, number in ResourceAllocation.objects.values_list("host_id", "channel__number"):
        channels_by_host.setdefault(host_id, []).append(number)
    hosts, totals = [], {"channels": 0, "max_channels": 0}
    names = {"cpu_percent": "cpu", "memory_mb": "memory_mb", "bandwidth_mbps": "bandwidth_mbps"}
    for host in EncodeHost.objects.all():
        capacity = capacity_of(host)
        used = measured_use(host, runs_by_host.get(host.name, []))
        held = reserved.get(host.pk, {})
        row = {"name": host.name, "state": host.state, "live": host.pk in live,
               "labels": host.labels or [], "max_channels": host.capacity,
               "channels": sorted(channels_by_host.get(host.pk, [])),
               "last_heartbeat": host.last_heartbeat,
               "limits_enforced": host.limits_enforced, "limits_note": host.limits_note}
        for field, key in names.items():
            row[key] = {"capacity": capacity[field], "reserved": round(held.get(field) or 0, 2),
                        "used": used[field]}
            if host.pk in live:
                total = totals.setdefault(key, {"capacity": 0, "reserved": 0, "used": 0})
                for part in ("capacity", "reserved", "used"):
                    total[part] = round(total[part] + (row[key][part] or 0), 2)
        if host.pk in live:
            totals["channels"] += len(row["channels"])
            totals["max_channels"] += host.capacity
        hosts.append(row)
    return {"hosts": hosts, "totals": totals}


def _need_from(data, channel):
    """The amounts in an allocate request (cores, MB, Mbit/s); missing ones keep the channel's."""
    current = channel_need(channel)
    errors, parsed = {}, {}
    for key, field, parse in (("cpu", "cpu_percent", parse_cores), ("memory_mb", "memory_mb", parse_memory_mb),
                              ("bandwidth_mbps", "bandwidth_mbps", parse_mbps)):
        if data.get(key) in (None, ""):
            continue
        try:
            parsed[field] = parse(data[key], key)
        except ConfigError as exc:
            errors.update(exc.errors)
    if errors:
        raise ConfigError(errors)
    if not parsed:
        raise ConfigError({"cpu": ["give at least one of cpu (cores), memory_mb, bandwidth_mbps"]})
    return Need(**{**current.as_dict(), **parsed})


def _channel_of(data, allowed=("channel",)):
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object"]})
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError({key: ["unknown field"] for key in unknown})
    if data.get("channel") in (None, ""):
        raise ConfigError({"channel": ["required: a channel id or number"]})
    try:
        return get_channel(data["channel"])
    except NotFound as exc:
        raise ConfigError({"channel": [str(exc)]}) from None


def allocation_data(allocation):
    return {"channel": allocation.channel.number, "host": allocation.host.name,
            "cpu": round(allocation.cpu_percent / 100, 3), "cpu_percent": allocation.cpu_percent,
            "memory_mb": allocation.memory_mb, "bandwidth_mbps": allocation.bandwidth_mbps,
            "manual": allocation.manual, "running": allocation.stream_id is not None}


def allocation_summary(data):
    """What an allocate did, in the one line the CLI and the pages tell the operator."""
    return (f"channel {data['channel']}: reserved {data['cpu']:g} cores, {data['memory_mb']} MB, "
            f"{data['bandwidth_mbps']:g} Mbit/s on {data['host']}")


def release_summary(data):
    return f"channel {data['channel']}: " + ("reservation released" if data["released"] else "held no reservation")


def allocate(data):
    """Reserve the given amounts for a channel. A running channel must fit them on its own host
    (else 409 with the shortfall); a stopped one gets them held on the host it will start on."""
    channel = _channel_of(data, ALLOCATE_FIELDS)
    need = _need_from(data, channel)
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        run = Stream.objects.filter(channel=locked, generation=locked.generation,
                                    status__in=Stream.ACTIVE).first()
        if run is not None:
            host = EncodeHost.objects.select_for_update().get(name=run.host)
            missing = shortfall(host, reserved_by_host(exclude_channel=locked).get(host.pk), need)
            if missing:
                raise DoesNotFit(f"channel {locked.number} runs on {host.name}, where {need.describe()} "
                                 f"does not fit: {', '.join(missing)}",
                                 shortfall={host.name: missing}, need=need.as_dict())
        else:
            allocations.release_channel(locked)  # a hold moves with the new amounts
            host = allocations.admit(locked, need=need)
        allocation = allocations.reserve(locked, host, run, need, manual=True)
    return allocation_data(allocation)


def release(data):
    """Drop a stopped channel's reservation; a running channel keeps its own (stop it first)."""
    channel = _channel_of(data)
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        run = Stream.objects.filter(channel=locked, generation=locked.generation,
                                    status__in=Stream.ACTIVE).first()
        if run is not None:
            raise Conflict(f"channel {locked.number} is running on {run.host}; "
                           "stop it to release its reservation")
        released = allocations.release_channel(locked)
    return {"channel": channel.number, "released": bool(released)}


def get_host(name):
    try:
        return EncodeHost.objects.get(name=str(name).strip())
    except EncodeHost.DoesNotExist:
        raise NotFound(f"no encode host '{name}'") from None


def drain_host(name, migrate=False):
    """No new channels on the host; with migrate, beat moves its channels away one by one."""
    host = get_host(name)
    if host.state == EncodeHost.State.OFFLINE:
        raise Conflict(f"host {host.name} is offline; there is nothing to drain")
    EncodeHost.objects.filter(pk=host.pk).update(state=EncodeHost.State.DRAINING, migrate=migrate)
    return host_summary(get_host(name))


def undrain_host(name):
    host = get_host(name)
    if host.state != EncodeHost.State.DRAINING:
        raise Conflict(f"host {host.name} is {host.state.lower()}, not draining")
    EncodeHost.objects.filter(pk=host.pk, state=EncodeHost.State.DRAINING).update(
        state=EncodeHost.State.ONLINE, migrate=False)
    return host_summary(get_host(name))


def host_summary(host):
    return {"name": host.name, "state": host.state, "migrate": host.migrate,
            "channels": Stream.objects.filter(host=host.name, status__in=Stream.ACTIVE).count()}
