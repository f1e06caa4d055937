"""The channel service layer: what a channel is (create, configure, delete). Every write path
(API, admin, CLI, beat) goes through here; running a channel is streams_app.lifecycle's.

Validation happens before anything is written.
"""
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from retrovue.errors import ConfigError, Conflict, NotFound

from . import logos, media, programming, validation
from .models import Channel, ChannelConfig
from .profiles import QUALITY_PROFILES, merged_sections
from .system_config import default_resource_limits
from .schedules import copy_mode_errors

CONFIG_KEYS = set(ChannelConfig.SECTIONS)
# Changes a running channel airs without a restart: the playlist from its next segment (as
# schedules and switches); the description is not on air. Everything else is in the output
# stage's argv or the slate and is applied by a restart (which rebuilds the run from the config).
LIVE_FIELDS = {"playlist", "description", "on_demand", "group"}


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
    if not isinstance(value, str) or value not in QUALITY_PROFILES:
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
    _check_unknown(data, {"name", "number", "description", "quality", "playlist", "on_demand", "group"} | CONFIG_KEYS)
    errors = {}
    clean = {}
    for field, check in (("name", validation.validate_name), ("number", validation.validate_number),
                         ("quality", _quality), ("description", validation.validate_description),
                         ("on_demand", validation.validate_on_demand), ("group", validation.validate_group)):
        try:
            clean[field] = check(data.get(field))
        except ConfigError as exc:
            errors.update(exc.errors)
    given = {k: data[k] for k in CONFIG_KEYS if k in data}
    sections = None
    try:
        number = clean.get("number") or 0
        sections = validation.validate_config(merged_sections(number, clean.get("quality"), given,
                                                              default_limits=default_resource_limits()))
    except ConfigError as exc:
        errors.update(exc.errors)
    try:
        stream = sections and sections["stream_settings"]
        # A copy channel passes its files through: unless told otherwise, it airs in their format.
        stated = set(given.get("stream_settings") or {}) if isinstance(given.get("stream_settings"), dict) else set()
        clean["playlist"] = playlist_sources(data.get("playlist"), stream,
                                             adopt_format=not {"resolution", "frame_rate"} & stated)
    except ConfigError as exc:
        errors.update(exc.errors)
    if "number" in clean and Channel.objects.filter(number=clean["number"]).exists():
        errors["number"] = [f"channel number {clean['number']} is already taken"]
    if errors:
        raise ConfigError(errors)
    try:
        with transaction.atomic():
            channel = Channel.objects.create(name=clean["name"], number=clean["number"],
                                             description=clean["description"], playlist=clean["playlist"],
                                             on_demand=clean["on_demand"], group=clean["group"])
            ChannelConfig.objects.create(channel=channel, **sections)
    except IntegrityError:
        raise ConfigError({"number": [f"channel number {clean['number']} is already taken"]}) from None
    return get_channel(channel.pk)


def update_config(channel, data):
    """Change config sections key by key (a null value removes a key), the playlist, name or
    description; the stream picks the changes up at its next start or restart."""
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object"]})
    _check_unknown(data, CONFIG_KEYS | {"quality", "playlist", "name", "description", "on_demand", "group"})
    quality = _quality(data.get("quality"))
    fields = {}
    if "name" in data:
        fields["name"] = validation.validate_name(data["name"])
    if "description" in data:
        fields["description"] = validation.validate_description(data["description"])
    if "on_demand" in data:
        fields["on_demand"] = validation.validate_on_demand(data["on_demand"])
    if "group" in data:
        fields["group"] = validation.validate_group(data["group"])
    given = {k: data[k] for k in CONFIG_KEYS if k in data}
    sections = validation.validate_config(
        merged_sections(channel.number, quality, given, base=channel.config.sections()))
    if "playlist" in data:
        fields["playlist"] = playlist_sources(data["playlist"], sections["stream_settings"])
        # A running channel airs the new playlist from its next segment, from the first item.
        fields["playlist_started_at"] = (programming.next_boundary(channel) if channel.status in (
            Channel.Status.STARTING, Channel.Status.RUNNING) else timezone.now())
    with transaction.atomic():
        ChannelConfig.objects.filter(channel=channel).update(updated_at=timezone.now(), **sections)
        # Only the named fields: status and generation belong to the supervisor.
        Channel.objects.filter(pk=channel.pk).update(updated_at=timezone.now(), **fields)
    return get_channel(channel.pk)


def change_outcome(channel, changed):
    """What a change of the fields `changed` does on air: the fields a running channel applies
    only at a restart (none when stopped), and those it airs without one."""
    running = channel.status in (Channel.Status.STARTING, Channel.Status.RUNNING)
    needs = sorted(set(changed) - LIVE_FIELDS) if running else []
    return {"restart_required": bool(needs), "restart_for": needs,
            "applied_live": sorted(set(changed) & LIVE_FIELDS)}


def playlist_sources(paths, stream=None, adopt_format=False):
    """Checked playlist paths, each in the media library (probed now if new or changed), so
    the engine knows every item's length; a copy channel (its `stream` settings) can pass each
    one through as it is. With `adopt_format`, a copy channel's `stream` takes the first file's
    resolution and frame rate (its frame grid must be the files' own)."""
    clean = validation.validate_playlist(paths, settings.RETROVUE_MEDIA_ROOTS)
    errors, assets = {}, {}
    for index, path in enumerate(clean):
        try:
            assets[f"playlist[{index}]"] = media.resolve_asset(path, f"playlist[{index}]")
        except ConfigError as exc:
            errors.update(exc.errors)
    if stream and not errors:
        first = next(iter(assets.values()), None)
        if adopt_format and stream.get("video_codec") == "copy" and first and first.resolution and first.frame_rate:
            stream.update(resolution=first.resolution, frame_rate=first.frame_rate)
        errors.update(copy_mode_errors(stream, assets))
    if errors:
        raise ConfigError(errors)
    return clean


def delete_channel(channel):
    if channel.desired_state == Channel.Desired.RUNNING or channel.status in (
            Channel.Status.STARTING, Channel.Status.RUNNING, Channel.Status.STOPPING):
        raise Conflict(f"channel {channel.number} is {channel.status.lower()}; stop it first")
    deleted, _ = Channel.objects.filter(pk=channel.pk, desired_state=Channel.Desired.STOPPED).delete()
    if not deleted:
        raise Conflict(f"channel {channel.number} changed while deleting; try again")
    logos.remove_files(channel.pk)


def lease_in_doubt(age_s):
    """A run that missed two heartbeats: its host may be lost or frozen, not judged yet (the
    sweep does that at the lease TTL)."""
    return age_s is not None and age_s > 2 * settings.RETROVUE_HEARTBEAT_SECONDS


def reported_status(channel, now=None):
    """The channel's status as far as it is known: UNKNOWN while its run's lease is in doubt."""
    heartbeat_at = getattr(channel, "current_heartbeat_at", None)
    if channel.status in (Channel.Status.STARTING, Channel.Status.RUNNING) and heartbeat_at and \
            lease_in_doubt(((now or timezone.now()) - heartbeat_at).total_seconds()):
        return "UNKNOWN"
    return channel.status


def uptime_seconds(channel):
    started = getattr(channel, "current_started_at", None)
    if channel.status != Channel.Status.RUNNING or not started:
        return None
    return round((timezone.now() - started).total_seconds(), 1)
