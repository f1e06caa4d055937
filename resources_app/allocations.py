"""Reservations follow runs: made with the run that admission placed, gone when the run ends.

`admit` is the only way onto a host: inside the caller's transaction it checks the system-wide
max_channels, chooses a host, locks its row (so two starts cannot both take its last room) and
checks the fit again. `reserve`
ties the reservation to the run; `release_run` and `release_channel` drop it; `reconcile` is
beat's safety net that finds and fixes any drift, and says what it fixed.
"""
import logging

from django.db import transaction
from django.utils import timezone

from channels_app import system_config
from channels_app.models import Channel
from retrovue.errors import DoesNotFit
from streams_app.models import Stream

from .models import EncodeHost, ResourceAllocation
from .placement import choose_host, reserved_by_host, shortfall
from .requirements import channel_need

log = logging.getLogger("retrovue.resources")
ADMIT_ATTEMPTS = 3


def held_host(channel):
    """The host an operator's allocate holds room on for this (not yet running) channel."""
    return EncodeHost.objects.filter(allocations__channel=channel, allocations__stream=None).first()


def check_max_channels(channel, need):
    """Refuse a channel past the system defaults' max_channels (0: no limit), counting the
    reservations of the others; the lock makes concurrent starts count one after another."""
    limit = system_config.system_config()["max_channels"]
    if not limit:
        return
    system_config.lock()
    others = ResourceAllocation.objects.exclude(channel=channel).count()
    if others >= limit:
        raise DoesNotFit(f"channel {channel.number}: {others} channels already run or hold room, "
                         f"the system's max_channels is {limit}",
                         shortfall={"system": [f"channels {others}/{limit} (max_channels)"]}, need=need.as_dict())


def admit(channel, exclude=(), need=None):
    """Choose a host where the channel fits and lock it; call inside a transaction."""
    need = need or channel_need(channel)
    check_max_channels(channel, need)
    held = held_host(channel)
    for _ in range(ADMIT_ATTEMPTS):
        if held is not None and held.name not in exclude and EncodeHost.objects.live().filter(pk=held.pk).exists():
            host = held
        else:
            host = choose_host(channel, need, exclude=exclude)
        host = EncodeHost.objects.select_for_update().get(pk=host.pk)
        if not shortfall(host, reserved_by_host(exclude_channel=channel).get(host.pk), need):
            return host
        held = None  # someone took the room meanwhile: choose again
    raise DoesNotFit(f"channel {channel.number}: hosts filled up while placing it; try again",
                     shortfall={}, need=need.as_dict())


def reserve(channel, host, stream, need=None, manual=None):
    """Reserve the channel's need on `host` for `stream`. An operator's allocate passes
    manual=True; a run leaves the flag (and so an operator's amounts) as it was."""
    need = need or channel_need(channel)
    fields = {"host": host, "stream": stream, "reserved_at": timezone.now(), **need.as_dict()}
    if manual is not None:
        fields["manual"] = manual
    allocation, _ = ResourceAllocation.objects.update_or_create(channel=channel, defaults=fields)
    return allocation


def release_run(stream_id):
    """The run ended (stopped, failed, fenced, lost): its reservation goes. Returns rows deleted."""
    deleted, _ = ResourceAllocation.objects.filter(stream_id=stream_id).delete()
    return deleted


def release_channel(channel):
    deleted, _ = ResourceAllocation.objects.filter(channel=channel).delete()
    return deleted


def reconcile(now=None):
    """Fix drift between reservations and runs; returns {"released": [...], "reserved": [...]}.

    Released: reservations whose run is no longer active, and operator holds on a host that is
    no longer live. Reserved: active current runs without a reservation (reserved where they
    run, even past capacity, because they are already running there)."""
    done = {"released": [], "reserved": []}
    stale = ResourceAllocation.objects.exclude(stream=None).exclude(
        stream__status__in=Stream.ACTIVE).select_related("channel", "host")
    lost_holds = ResourceAllocation.objects.filter(stream=None).exclude(
        host__in=EncodeHost.objects.live()).select_related("channel", "host")
    for allocation in [*stale, *lost_holds]:
        if ResourceAllocation.objects.filter(pk=allocation.pk, stream=allocation.stream).delete()[0]:
            done["released"].append(f"channel {allocation.channel.number} on {allocation.host.name}")
    runs = Stream.objects.filter(status__in=Stream.ACTIVE, channel__allocation__isnull=True) \
        .select_related("channel__config")
    hosts = {h.name: h for h in EncodeHost.objects.all()}
    for run in runs:
        if run.generation != run.channel.generation or run.host not in hosts:
            continue
        with transaction.atomic():
            if not Channel.objects.select_for_update().filter(pk=run.channel_id, generation=run.generation).exists():
                continue
            reserve(run.channel, hosts[run.host], run)
        done["reserved"].append(f"channel {run.channel.number} on {run.host}")
    if done["released"] or done["reserved"]:
        log.warning("reservations drifted and were fixed: %s", done)
    return done
