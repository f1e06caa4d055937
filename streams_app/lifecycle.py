"""Running channels: start, stop and restart, one or many. Every path (API, admin, CLI, pages,
beat) goes through here.

Starting a channel places it on a host (admission control) and queues its supervisor only once
the transaction that records the run has committed; stopping changes the desired state, which
the supervisor obeys at its next heartbeat.
"""
import ipaddress
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels_app.models import Channel
from channels_app.services import get_channel
from channels_app.validation import output_refusal
from resources_app.allocations import admit, release_channel
from retrovue.errors import Conflict, ServiceError

from .launch import launch_run
from .models import Stream

# How the status_reason of a channel whose supervisor used up max_restart_attempts begins.
GAVE_UP = "gave up after"


def check_output_allowed(channel):
    """Refuse an output this site does not send to (its allow-list may have narrowed since the
    channel was configured) and, with RETROVUE_LOOPBACK_ONLY (tests, demos), anything but loopback."""
    network = channel.config.network_settings
    refusal = output_refusal(network)
    if refusal:
        raise Conflict(f"output refused: {refusal}")
    address = ipaddress.ip_address(network["multicast_address"])
    if settings.RETROVUE_LOOPBACK_ONLY and not address.is_loopback:
        raise Conflict(f"output {address} is not loopback and RETROVUE_LOOPBACK_ONLY is set")


def start_channel(channel):
    """Desire RUNNING, admit the channel on a host where its reservation fits (409 with the
    shortfall when none does) and queue its supervisor there.

    Idempotent: a channel already starting or running is left as it is.
    """
    check_output_allowed(channel)
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        if locked.desired_state == Channel.Desired.RUNNING and locked.status in (
                Channel.Status.STARTING, Channel.Status.RUNNING):
            return get_channel(channel.pk)
        host = admit(locked)
        launch_run(locked, host)
    return get_channel(channel.pk)


def stop_channel(channel):
    """Desire STOPPED; the supervisor sees it at its next heartbeat and stops FFmpeg."""
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        active = Stream.objects.filter(channel=locked, generation=locked.generation,
                                       status__in=Stream.ACTIVE).exists()
        locked.desired_state = Channel.Desired.STOPPED
        locked.status = Channel.Status.STOPPING if active else Channel.Status.STOPPED
        locked.save(update_fields=["desired_state", "status", "updated_at"])
        if not active:
            release_channel(locked)  # nothing runs to release it at its end
    return get_channel(channel.pk)


def restart_channel(channel):
    """Restart FFmpeg in place when running; otherwise start the channel."""
    updated = Stream.objects.filter(channel=channel, generation=channel.generation,
                                    status=Stream.Status.RUNNING).update(restart_requested=True)
    return get_channel(channel.pk) if updated else start_channel(channel)


def _each(channels, action):
    """Apply one service action to many channels; a refusal is reported, never raised."""
    results = {}
    for channel in channels:
        try:
            results[channel.number] = action(channel).status
        except ServiceError as exc:
            results[channel.number] = f"refused: {exc}"
    return results


def start_all_channels(channels=None):
    """Start every channel (or those given) that is not already starting or running."""
    rows = channels if channels is not None else Channel.objects.all()
    return _each(rows.select_related("config").exclude(
        status__in=[Channel.Status.STARTING, Channel.Status.RUNNING]), start_channel)


def stop_all_channels(channels=None):
    rows = channels if channels is not None else Channel.objects.all()
    return _each(rows.exclude(status=Channel.Status.STOPPED, desired_state=Channel.Desired.STOPPED),
                 stop_channel)


def restart_failed_channels(channels=None, only_due=False):
    """Start again channels in ERROR that still want to run and allow auto restart.

    Beat calls it with only_due: a channel is retried once its last run ended at least
    RETROVUE_FAILED_RETRY_SECONDS ago, so a broken channel is retried, not hammered, and a
    channel that gave up after max_restart_attempts is not retried at all: that is left to an
    operator (this without only_due, or a start)."""
    rows = channels if channels is not None else Channel.objects.all()
    rows = rows.select_related("config").filter(status=Channel.Status.ERROR,
                                                desired_state=Channel.Desired.RUNNING)
    if only_due:
        recent = timezone.now() - timedelta(seconds=settings.RETROVUE_FAILED_RETRY_SECONDS)
        rows = rows.exclude(streams__ended_at__gt=recent).exclude(
            streams__status__in=Stream.ACTIVE).exclude(status_reason__startswith=GAVE_UP)
    return _each([c for c in rows if c.config.failover()["auto_restart"]], start_channel)
