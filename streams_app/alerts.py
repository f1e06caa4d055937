"""Alerts, raised and cleared like a broadcast system's alarms.

raise_alert / clear_alert are the idempotent core: at most one open alert per (kind, subject),
where the subject is a channel (by id) or, for host alerts, a host name. Raising an alert that is
already open refreshes it; clearing one that is not open does nothing. Both are safe from many
processes at once: a raise is one statement, a clear finds the open alert and clears it by id
only while it is still open. Once a raise or a clear is committed, `alert_changed` tells the
apps above this one (notifications) without this one knowing them; a refresh is not an event.

The supervisor raises and clears STALL and RESTART_LOOP itself; evaluate_alerts (beat) raises
and clears the threshold alerts from what supervisors and hosts last reported; find_alerts is
the listing the API and the CLI share.
"""
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from channels_app.models import Channel
from channels_app.services import get_channel
from channels_app.system_config import system_config
from resources_app.models import EncodeHost
from retrovue.errors import ConfigError, NotFound

from .control_loops import in_grace
from .models import Alert, Stream

ERROR_WINDOW = timedelta(seconds=60)
LIST_LIMIT = 200
log = logging.getLogger("retrovue.alerts")
# Sent after the commit of a raise or a clear with `alert` (the Alert) and `event` (RAISED or CLEARED).
alert_changed = Signal()
RAISED, CLEARED = "raised", "cleared"


def _subject(channel_id, host):
    return {"channel_id": channel_id} if channel_id else {"channel_id": None, "host": host}


def _announce(alert, event):
    """Send alert_changed once committed; a receiver that fails is logged, never the raiser's failure."""
    def send():
        for receiver, outcome in alert_changed.send_robust(sender=Alert, alert=alert, event=event):
            if isinstance(outcome, Exception):
                log.error("alert %s %s: receiver %s failed: %r", alert.pk, event, receiver, outcome)

    transaction.on_commit(send)


def raise_alert(kind, message, *, channel_id=None, host="", severity=Alert.Severity.WARNING,
                value=None, threshold=None):
    """Open (or refresh) an alert; returns True when it was newly raised."""
    subject = _subject(channel_id, host)
    fields = {"message": message, "severity": severity, "value": value, "threshold": threshold}
    if Alert.objects.filter(kind=kind, cleared_at=None, **subject).update(
            last_seen_at=timezone.now(), **fields):
        return False
    try:
        with transaction.atomic():
            alert = Alert.objects.create(kind=kind, **{"host": host, **subject, **fields})
    except IntegrityError:  # raised by someone else a moment ago
        return False
    _announce(alert, RAISED)
    return True


def clear_alert(kind, *, channel_id=None, host=""):
    """Clear the open alert of this kind for the subject; returns True if one was open."""
    alert = Alert.objects.filter(kind=kind, cleared_at=None, **_subject(channel_id, host)).first()
    if alert is None:
        return False
    alert.cleared_at = timezone.now()
    if not Alert.objects.filter(pk=alert.pk, cleared_at=None).update(cleared_at=alert.cleared_at):
        return False  # cleared by someone else a moment ago
    _announce(alert, CLEARED)
    return True


# --- threshold rules ---------------------------------------------------------------------------
def _usage_of_limit(metric, limit_key, what, unit, stream, now):
    """FFmpeg's use as a percent of the channel's own limit (CPU in psutil's percent of a core)."""
    used = (stream.health_metrics or {}).get(metric)
    limit = (stream.channel.config.resource_limits or {}).get(limit_key)
    if used is None or not limit:
        return None
    share = used / limit * 100
    return share, f"ffmpeg uses {used:.0f}{unit} {what}, {share:.0f}% of its {limit:.7g}{unit} limit"


def _over_reservation(stream, now):
    """FFmpeg's measured CPU or memory as a percent of what the channel reserved (the larger)."""
    try:
        allocation = stream.channel.allocation  # selected with the stream
    except ObjectDoesNotExist:
        return None
    metrics = stream.health_metrics or {}
    shares = [(metrics[metric] / reserved * 100, f"{what} {metrics[metric]:.0f}{unit} of {reserved:g}{unit} reserved")
              for metric, reserved, what, unit in (("cpu_percent", allocation.cpu_percent, "CPU", "%"),
                                                   ("memory_mb", allocation.memory_mb, "memory", " MB"))
              if metrics.get(metric) is not None and reserved]
    if not shares:
        return None
    share, detail = max(shares)
    return share, f"ffmpeg uses more than its reservation on {allocation.host.name}: {detail}"


def _error_rate(stream, now):
    """'[error]' lines (FFmpeg runs with -loglevel level+warning) logged in the last minute."""
    since = now - ERROR_WINDOW
    count = sum(1 for entry in stream.error_log or ()
                if entry["line"].startswith("[error]") and parse_datetime(entry["at"]) >= since)
    return count, f"{count} FFmpeg errors in the last minute"


def _host_silence(host, now):
    """Seconds since the host's last heartbeat; None once it is OFFLINE (a clean shutdown)."""
    if host.state == EncodeHost.State.OFFLINE:
        return None
    return (now - (host.last_heartbeat or host.registered_at)).total_seconds()


def _host_lost(host, now):
    silence = _host_silence(host, now)
    if silence is None:
        return None
    seen = host.last_heartbeat or host.registered_at
    return silence, f"no heartbeat since {seen.isoformat(timespec='seconds')}"


def _host_usage(field, what, host, now):
    """The load the host reported, judged only while its heartbeat is fresh (else it is stale)."""
    silence = _host_silence(host, now)
    value = getattr(host, field)
    if value is None or silence is None or silence > settings.RETROVUE_LEASE_TTL_SECONDS:
        return None
    return value, f"host {what} at {value:.0f}%"


@dataclass(frozen=True)
class Rule:
    """`measure(subject, now)` gives (value, message), or None when it does not apply."""

    kind: str
    threshold: str  # its name in thresholds(), read at each evaluation
    measure: Callable
    over: Callable = operator.gt
    severity: str = Alert.Severity.WARNING

    def check(self, subject, now, limits):
        """(value, threshold, message) when the subject is over its threshold in `limits`, else None."""
        reading = self.measure(subject, now)
        threshold = limits[self.threshold]
        if reading is not None and self.over(reading[0], threshold):
            return round(reading[0], 1), threshold, reading[1]
        return None


CHANNEL_RULES = (
    Rule(Alert.Kind.CPU, "cpu_usage",
         partial(_usage_of_limit, "cpu_percent", "max_cpu_percent", "CPU", "%")),
    Rule(Alert.Kind.MEMORY, "memory_usage",
         partial(_usage_of_limit, "memory_mb", "max_memory_mb", "memory", " MB")),
    Rule(Alert.Kind.ERROR_RATE, "error_rate", _error_rate, over=operator.ge),
    Rule(Alert.Kind.OVER_RESERVATION, "reservation_percent", _over_reservation),
)
HOST_RULES = (
    Rule(Alert.Kind.CPU, "cpu_usage", partial(_host_usage, "cpu_percent", "CPU")),
    Rule(Alert.Kind.MEMORY, "memory_usage",
         partial(_host_usage, "memory_percent", "memory")),
    Rule(Alert.Kind.HOST_LOST, "lease_ttl_seconds", _host_lost,
         severity=Alert.Severity.CRITICAL),
)
EVALUATED_KINDS = {rule.kind for rule in CHANNEL_RULES + HOST_RULES}


@dataclass(frozen=True)
class Reading:
    """A rule over its threshold for one subject: an alert that should be open."""

    rule: Rule
    channel: Channel | None
    host: str
    value: float
    threshold: float
    message: str

    @property
    def key(self):
        return _key(self.rule.kind, self.channel and self.channel.pk, self.host)

    @property
    def label(self):
        return _label(self.rule.kind, self.channel, self.host)


def _key(kind, channel_id, host):
    """What identifies an open alert: (kind, channel) or, for host alerts, (kind, host)."""
    return kind, channel_id, "" if channel_id else host


def _label(kind, channel, host):
    return f"{kind} channel {channel.number}" if channel else f"{kind} host {host}"


def thresholds(monitoring):
    """Each rule's threshold: the system defaults' alert_thresholds, and two settings."""
    return {**monitoring["alert_thresholds"],
            "reservation_percent": settings.RETROVUE_ALERT_RESERVATION_PERCENT,
            "lease_ttl_seconds": settings.RETROVUE_LEASE_TTL_SECONDS}


def _readings(now, limits, skip=()):
    """Every rule over its threshold in `limits`, for each current running stream and each host."""
    streams = Stream.objects.filter(status=Stream.Status.RUNNING, generation=F("channel__generation")) \
        .select_related("channel__config", "channel__allocation__host")
    subjects = [(s, CHANNEL_RULES, s.channel, "") for s in streams]
    subjects += [(h, HOST_RULES, None, h.name) for h in EncodeHost.objects.all()]
    for subject, rules, channel, host in subjects:
        for rule in rules:
            if rule.kind in skip:
                continue
            found = rule.check(subject, now, limits)
            if found:
                yield Reading(rule, channel, host, *found)


def alert_interval():
    """Seconds between beat's health checks (alerts, trends): the system defaults'
    monitoring.health_check_interval. Leases are swept on their own, faster, cadence."""
    return system_config()["monitoring"]["health_check_interval"]


def evaluate_alerts(now=None):
    """Raise each threshold alert that is over and clear each open one that no longer is.

    Channel CPU and memory are percents of the channel's resource_limits, the error rate is
    '[error]' lines a minute (alert_thresholds.error_rate errors within the last 60 s raise it),
    host CPU and memory are percents of the host, and HOST_LOST is an ONLINE or DRAINING host
    silent for longer than the lease TTL. A channel that no longer runs, or a host that went
    OFFLINE, is not over anything, so its alerts clear. An open alert whose message is unchanged
    only gets last_seen_at refreshed. Returns {"raised": [...], "cleared": [...]} of labels such
    as "CPU channel 3" or "HOST_LOST host enc-1". Right after a gap in these evaluations
    (an outage) host heartbeats get one lease TTL to resume before HOST_LOST is judged.
    """
    now = now or timezone.now()
    monitoring = system_config()["monitoring"]  # read once per evaluation
    skip = {Alert.Kind.HOST_LOST} if in_grace("alert-evaluation", now, monitoring["health_check_interval"]) else set()
    over = {reading.key: reading for reading in _readings(now, thresholds(monitoring), skip)}
    open_alerts = Alert.objects.filter(cleared_at=None, kind__in=EVALUATED_KINDS).select_related("channel")
    opened = {_key(alert.kind, alert.channel_id, alert.host): alert for alert in open_alerts}
    done = {"raised": [], "cleared": []}
    unchanged = []
    for key, r in over.items():
        if key in opened and opened[key].message == r.message:
            unchanged.append(opened[key].pk)
        elif raise_alert(r.rule.kind, r.message, channel_id=r.channel and r.channel.pk, host=r.host,
                         severity=r.rule.severity, value=r.value, threshold=r.threshold):
            done["raised"].append(r.label)
    for key, alert in opened.items():
        if key not in over and alert.kind not in skip and clear_alert(alert.kind, channel_id=alert.channel_id, host=alert.host):
            done["cleared"].append(_label(alert.kind, alert.channel, alert.host))
    if unchanged:
        Alert.objects.filter(pk__in=unchanged).update(last_seen_at=timezone.now())
    return done


# --- listing (API and CLI) ---------------------------------------------------------------------
def find_alerts(channel=None, kind=None, host=None, include_cleared=False, limit=LIST_LIMIT):
    """Alerts newest first, open ones unless include_cleared; a bad filter raises ConfigError."""
    alerts = Alert.objects.select_related("channel").order_by("-raised_at", "-pk")
    if not include_cleared:
        alerts = alerts.filter(cleared_at=None)
    if channel is not None:
        alerts = alerts.filter(channel=channel_filter(channel))
    if kind is not None:
        if kind.upper() not in Alert.Kind.values:
            raise ConfigError({"kind": [f"'{kind}' is not one of {', '.join(Alert.Kind.values)}"]})
        alerts = alerts.filter(kind=kind.upper())
    if host is not None:
        if not host.strip():
            raise ConfigError({"host": ["must not be blank"]})
        alerts = alerts.filter(host=host.strip())
    return list(alerts[:limit])


def channel_filter(ref):
    """The channel, by number or UUID; an unknown one is a bad filter value, not a missing page."""
    try:
        return get_channel(ref)
    except NotFound as exc:
        raise ConfigError({"channel": [str(exc)]}) from None
