"""The channel service layer: every write path (API, admin, CLI, beat) goes through here.

Validation happens before anything is written or sent; starting a channel places it on a host
and queues its supervisor only once the transaction that records the run has committed.
"""
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from resources_app.allocations import admit, release_channel
from retrovue.errors import Conflict, NotFound, ServiceError

from . import media, programming, validation
from .models import Channel, ChannelConfig
from .profiles import QUALITY_PROFILES, merged_sections
from .validation import ConfigError

CONFIG_KEYS = set(ChannelConfig.SECTIONS)
# Changes a running channel airs without a restart: the playlist from its next segment (as
# schedules and switches); the description is not on air. Everything else is in the output
# stage's argv or the slate and is applied by a restart (which rebuilds the run from the config).
LIVE_FIELDS = {"playlist", "description"}


def get_channel(ref):
    """A channel by UUID or by number."""
    ref = str(ref).strip()
    query = Channel.objects.with_runtime().select_related("config")
    try:
        if ref.isdigit():
            return query.get(number=int(ref))
        return query.get(pk=uuid.UUID(ref))
    except (Channel.DoesNotExist, ValueError):
        raise NotFound(f"no channel '{ref}'") from None


def _quality(value):
    if value in (None, ""):
        return None
    if value not in QUALITY_PROFILES:
        raise ConfigError({"quality": [f"'{value}' is not one of {', '.join(QUALITY_PROFILES)}"]})
    return value


def _check_unknown(data, allowed):
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError({key: ["unknown field"] for key in unknown})


def create_channel(data):
    """Create a channel from the product template (+ optional quality and playlist)."""
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object"]})
    _check_unknown(data, {"name", "number", "description", "quality", "playlist"} | CONFIG_KEYS)
    errors = {}
    clean = {}
    for field, check in (("name", validation.validate_name), ("number", validation.validate_number),
                         ("quality", _quality)):
        try:
            clean[field] = check(data.get(field))
        except ConfigError as exc:
            errors.update(exc.errors)
    try:
        clean["playlist"] = playlist_sources(data.get("playlist"))
    except ConfigError as exc:
        errors.update(exc.errors)
    given = {k: data[k] for k in CONFIG_KEYS if k in data}
    try:
        number = clean.get("number") or 0
        sections = validation.validate_config(merged_sections(number, clean.get("quality"), given))
    except ConfigError as exc:
        errors.update(exc.errors)
    if "number" in clean and Channel.objects.filter(number=clean["number"]).exists():
        errors["number"] = [f"channel number {clean['number']} is already taken"]
    if errors:
        raise ConfigError(errors)
    description = str(data.get("description") or "")[:2000]
    try:
        with transaction.atomic():
            channel = Channel.objects.create(name=clean["name"], number=clean["number"],
                                             description=description, playlist=clean["playlist"])
            ChannelConfig.objects.create(channel=channel, **sections)
    except IntegrityError:
        raise ConfigError({"number": [f"channel number {clean['number']} is already taken"]}) from None
    return get_channel(channel.pk)


def update_config(channel, data):
    """Change config sections key by key (a null value removes a key), the playlist, name or
    description; the stream picks the changes up at its next start or restart."""
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object"]})
    _check_unknown(data, CONFIG_KEYS | {"quality", "playlist", "name", "description"})
    quality = _quality(data.get("quality"))
    fields = {}
    if "name" in data:
        fields["name"] = validation.validate_name(data["name"])
    if "description" in data:
        fields["description"] = str(data["description"] or "")[:2000]
    given = {k: data[k] for k in CONFIG_KEYS if k in data}
    sections = validation.validate_config(
        merged_sections(channel.number, quality, given, base=channel.config.sections()))
    if "playlist" in data:
        fields["playlist"] = playlist_sources(data["playlist"])
        # A running channel airs the new playlist from its next segment, from the first item.
        fields["playlist_started_at"] = (programming.next_boundary(channel) if channel.status in (
            Channel.Status.STARTING, Channel.Status.RUNNING) else timezone.now())
    with transaction.atomic():
        ChannelConfig.objects.filter(channel=channel).update(updated_at=timezone.now(), **sections)
        # Only the named fields: status and generation belong to the supervisor.
        Channel.objects.filter(pk=channel.pk).update(updated_at=timezone.now(), **fields)
    return get_channel(channel.pk)


def restart_needed(channel, changed):
    """The changed fields a running channel applies only at a restart (none when stopped)."""
    if channel.status not in (Channel.Status.STARTING, Channel.Status.RUNNING):
        return []
    return sorted(set(changed) - LIVE_FIELDS)


def playlist_sources(paths):
    """Checked playlist paths, each in the media library (probed now if new or changed), so
    the engine knows every item's length."""
    clean = validation.validate_playlist(paths, settings.RETROVUE_MEDIA_ROOTS)
    errors = {}
    for index, path in enumerate(clean):
        try:
            media.resolve_asset(path, f"playlist[{index}]")
        except ConfigError as exc:
            errors.update(exc.errors)
    if errors:
        raise ConfigError(errors)
    return clean


def check_output_allowed(channel):
    """With RETROVUE_LOOPBACK_ONLY (tests, demos), refuse to send anywhere but loopback."""
    import ipaddress

    address = ipaddress.ip_address(channel.config.network_settings["multicast_address"])
    if settings.RETROVUE_LOOPBACK_ONLY and not address.is_loopback:
        raise Conflict(f"output {address} is not loopback and RETROVUE_LOOPBACK_ONLY is set")


def start_channel(channel):
    """Desire RUNNING, admit the channel on a host where its reservation fits (409 with the
    shortfall when none does) and queue its supervisor there.

    Idempotent: a channel already starting or running is left as it is.
    """
    from streams_app.launch import launch_run

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
    from streams_app.models import Stream

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
    from streams_app.models import Stream

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
    RETROVUE_FAILED_RETRY_SECONDS ago, so a broken channel is retried, not hammered."""
    from streams_app.models import Stream

    rows = channels if channels is not None else Channel.objects.all()
    rows = rows.select_related("config").filter(status=Channel.Status.ERROR,
                                                desired_state=Channel.Desired.RUNNING)
    if only_due:
        recent = timezone.now() - timedelta(seconds=settings.RETROVUE_FAILED_RETRY_SECONDS)
        rows = rows.exclude(streams__ended_at__gt=recent).exclude(
            streams__status__in=Stream.ACTIVE)
    return _each([c for c in rows if c.config.failover()["auto_restart"]], start_channel)


def delete_channel(channel):
    if channel.desired_state == Channel.Desired.RUNNING or channel.status in (
            Channel.Status.STARTING, Channel.Status.RUNNING, Channel.Status.STOPPING):
        raise Conflict(f"channel {channel.number} is {channel.status.lower()}; stop it first")
    deleted, _ = Channel.objects.filter(pk=channel.pk, desired_state=Channel.Desired.STOPPED).delete()
    if not deleted:
        raise Conflict(f"channel {channel.number} changed while deleting; try again")


def uptime_seconds(channel):
    started = getattr(channel, "current_started_at", None)
    if channel.status != Channel.Status.RUNNING or not started:
        return None
    return round((timezone.now() - started).total_seconds(), 1)
