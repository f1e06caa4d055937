"""Stream read models (status, health, metrics) and beat's loops that re-place runs: the lease
sweep (a lost host's channels) and the migration of draining hosts."""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channels_app.models import Channel
from resources_app.allocations import admit, release_run
from resources_app.models import EncodeHost
from retrovue.errors import BrokerUnavailable, ServiceError

from .control_loops import in_grace
from .launch import launch_run
from .models import Stream
from .playout.lease import Lease
from .monitoring import channel_verdict, drop_baselines, lease_age, metric_series

log = logging.getLogger("retrovue.sweep")


def current_stream(channel):
    return Stream.objects.filter(channel=channel, generation=channel.generation).first()


def stream_status(channel):
    stream = current_stream(channel)
    return {
        "channel": str(channel.id),
        "number": channel.number,
        "channel_status": channel.status,
        "desired_state": channel.desired_state,
        "reason": channel.status_reason,
        "stream": None if stream is None else {
            "id": stream.pk, "host": stream.host, "generation": stream.generation,
            "status": stream.status, "reason": stream.status_reason, "pid": stream.pid,
            "started_at": stream.started_at, "ended_at": stream.ended_at,
            "exit_code": stream.exit_code, "restart_count": stream.restart_count,
            "heartbeat_at": stream.heartbeat_at,
        },
    }


def stream_health(channel):
    """A verdict with its reasons, from the latest progress the supervisor reported."""
    stream = current_stream(channel)
    verdict, reasons = channel_verdict(channel, stream, drop_baselines(channel))
    return {
        "channel": str(channel.id), "number": channel.number, "verdict": verdict, "reasons": reasons,
        "restart_count": stream.restart_count if stream else 0,
        "lease_age_s": lease_age(stream) if stream else None,
        "error_log": (stream.error_log or [])[-20:] if stream else [],
    }


def stream_metrics(channel):
    stream = current_stream(channel)
    return {"channel": str(channel.id), "number": channel.number,
            "status": stream.status if stream else None,
            "host": stream.host if stream else None,
            "metrics": (stream.health_metrics or {}) if stream else {},
            "series": metric_series(channel)}


def _replace(channel_id, reason, lost_hosts=()):
    """Put a channel whose run was lost on another live host, or mark it ERROR if none.

    A host whose lease just expired may still look live for part of a heartbeat: never
    choose it again in the same sweep."""
    try:
        with transaction.atomic():
            channel = Channel.objects.select_for_update().get(pk=channel_id)
            if channel.desired_state != Channel.Desired.RUNNING:
                return "not wanted"
            if channel.streams.filter(status__in=Stream.ACTIVE).exists():
                return "already running"
            try:
                host = admit(channel, exclude=lost_hosts)
            except ServiceError as exc:
                Channel.objects.filter(pk=channel.pk).update(
                    status=Channel.Status.ERROR, status_reason=f"{reason}; {exc}", updated_at=timezone.now())
                return "no host"
            launch_run(channel, host)
            return f"re-placed on {host.name}"
    except BrokerUnavailable:
        return "broker away: the next sweep places it"  # rolled back: it still wants to run


def sweep_expired_leases(now=None):
    """Expire runs whose lease stopped renewing and re-place their channels; returns what it did.

    Also picks up channels that want to run but have no active run (their host shut down)."""
    now = now or timezone.now()
    done = {"expired": [], "replaced": [],
            "grace": in_grace("lease-sweep", now, settings.RETROVUE_LEASE_SWEEP_SECONDS)}
    if done["grace"]:
        return done
    stale_before = now - timedelta(seconds=settings.RETROVUE_LEASE_TTL_SECONDS)
    lost_hosts = set()
    for stream in Stream.objects.filter(status__in=Stream.ACTIVE, heartbeat_at__lt=stale_before):
        # Its host fenced itself (lease.py) by then at the latest, lost or frozen: the end on record
        # until a frozen host that comes back says when it really stopped.
        fenced_by = min(now, stream.heartbeat_at + timedelta(seconds=Lease.hold()))
        reason = f"lease expired: host {stream.host} lost or frozen"
        if Stream.objects.filter(pk=stream.pk, status=stream.status,
                                 heartbeat_at=stream.heartbeat_at).update(
                status=Stream.Status.ERROR, status_reason=reason, ended_at=fenced_by):
            done["expired"].append(stream.pk)
            lost_hosts.add(stream.host)
            release_run(stream.pk)
            Channel.objects.filter(pk=stream.channel_id, generation=stream.generation,
                                   desired_state=Channel.Desired.STOPPED).update(
                status=Channel.Status.STOPPED, updated_at=timezone.now())
    orphans = Channel.objects.filter(desired_state=Channel.Desired.RUNNING).exclude(
        status=Channel.Status.ERROR).exclude(
        streams__status__in=Stream.ACTIVE).values_list("pk", flat=True)
    for channel_id in orphans:
        done["replaced"].append((str(channel_id), _replace(channel_id, "host lost", lost_hosts)))
    if done["expired"] or done["replaced"]:
        log.warning("lease sweep: %s", done)
    return done


def migrate_step():
    """Move one channel off each migrating draining host, once nothing is still starting from
    the previous move; returns what it did (beat calls it every health-check interval)."""
    done = {"moved": [], "waiting": [], "stuck": []}
    for host in EncodeHost.objects.filter(state=EncodeHost.State.DRAINING, migrate=True):
        if Stream.objects.filter(status=Stream.Status.STARTING, generation=F("channel__generation")).exists():
            done["waiting"].append(host.name)  # one move at a time: the last one is still starting
            continue
        run = Stream.objects.filter(host=host.name, status=Stream.Status.RUNNING,
                                    generation=F("channel__generation")) \
            .order_by("channel__number").select_related("channel").first()
        if run is None:
            continue
        try:
            with transaction.atomic():
                channel = Channel.objects.select_for_update().get(pk=run.channel_id)
                if channel.generation != run.generation or channel.desired_state != Channel.Desired.RUNNING:
                    continue
                target = admit(channel, exclude={host.name})
                launch_run(channel, target)
        except ServiceError as exc:  # no host fits, or the broker is away: it stays where it is
            done["stuck"].append(f"channel {run.channel.number}: {exc}")
            continue
        done["moved"].append(f"channel {channel.number}: {host.name} -> {target.name}")
    if done["moved"] or done["stuck"]:
        log.warning("migration: %s", done)
    return done
