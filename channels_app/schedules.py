"""Schedules and switches: what a channel airs, changed only through here.

A schedule is replaced as a whole: the new version is validated completely (assets, times,
in/out points, copy-mode formats) before one transaction writes it and puts it on air; old
versions stay as history. A switch records a request the running playout engine picks up.
"""
import subprocess
from dataclasses import replace as replaced
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from retrovue.errors import ConfigError

from . import media, programming, timeline
from .models import Channel, Program, Schedule, TransitionRule
from .profiles import AUDIO_SAMPLE_RATE
from .signals import switch_requested
from .validation import text_problem

SCHEDULE_FIELDS = {"timezone", "loop", "transition", "programs"}
PROGRAM_FIELDS = {"asset", "start", "title", "description", "in_point", "out_point"}
TRANSITION_FIELDS = {"fill", "filler"}
# Shown by GET and ignored by PUT, so what GET returns can be edited and sent back.
SCHEDULE_READ_ONLY = {"id", "channel", "created_at", "current", "upcoming"}
PROGRAM_READ_ONLY = {"id", "position", "duration_s"}
DEFAULT_HOURS = 6
MAX_HOURS = 168
LOOP_LIMIT = timedelta(hours=24)
FRAME_RATE_TOLERANCE = 0.01
MAX_SECONDS = 10_000_000
# Program starts a guide can show: this century, and not more than ten years ahead.
EARLIEST_START = datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))
LATEST_START_AHEAD = timedelta(days=3653)
KEYFRAME_SPAN_SECONDS = 12  # how far past an in-point keyframes are looked for, to name the next


def _unknown(data, allowed, prefix, errors):
    for key in sorted(set(data) - allowed):
        errors[f"{prefix}{key}"] = ["unknown field"]


def validate_timezone(value):
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"'{value}' is not a time zone like UTC or Europe/Amsterdam") from None
    return value


def _start(value, zone):
    """An aware datetime; ISO-8601 without an offset is read in the schedule's time zone."""
    if value in (None, ""):
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError(f"'{value}' is not an ISO-8601 date and time like "
                         "2026-11-24T20:00:00+01:00") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)
    if not EARLIEST_START <= moment <= timezone.now() + LATEST_START_AHEAD:
        raise ValueError(f"'{value}' is not between 2000-01-01 and ten years from now")
    return moment


def _seconds(value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"'{value}' is not a number of seconds (0 or more)")
    return float(value)


def _text(limit):
    def check(value):
        if value is None:
            return ""
        problem = text_problem(value, limit)
        if problem:
            raise ValueError(problem)
        return value
    return check


def _program(raw, prefix, zone, errors):
    """An unsaved Program from one entry of `programs`, or None (its errors recorded)."""
    if not isinstance(raw, dict):
        errors[prefix] = ["must be an object with an asset"]
        return None
    problems, clean = {}, {}
    _unknown(raw, PROGRAM_FIELDS | PROGRAM_READ_ONLY, f"{prefix}.", problems)
    try:
        clean["asset"] = media.resolve_asset(raw.get("asset"), f"{prefix}.asset")
    except ConfigError as exc:
        problems.update(exc.errors)
    checks = {"start": lambda v: _start(v, zone), "in_point": _seconds, "out_point": _seconds,
              "title": _text(200), "description": _text(2000)}
    for name, check in checks.items():
        try:
            clean[name] = check(raw.get(name))
        except ValueError as exc:
            problems[f"{prefix}.{name}"] = [str(exc)]
    if not problems:
        duration, first = clean["asset"].duration_s, clean["in_point"] or 0.0
        last = duration if clean["out_point"] is None else clean["out_point"]
        if first >= duration:
            problems[f"{prefix}.in_point"] = [f"{first:g}s is not within the asset's {duration:g}s"]
        elif last > duration:
            problems[f"{prefix}.out_point"] = [f"{last:g}s is past the end of the asset ({duration:g}s)"]
        elif last <= first:
            problems[f"{prefix}.out_point"] = [f"must be after in_point ({first:g}s)"]
    errors.update(problems)
    return None if problems else Program(**clean)


def _transition(raw, errors):
    """(fill, filler asset or None) from the `transition` object."""
    fill, filler = TransitionRule.Fill.SLATE, None
    if raw is None:
        return fill, filler
    if not isinstance(raw, dict):
        errors["transition"] = ['must be an object like {"fill": "SLATE"}']
        return fill, filler
    _unknown(raw, TRANSITION_FIELDS, "transition.", errors)
    fill = str(raw.get("fill") or fill).upper()
    if fill not in TransitionRule.Fill.values:
        errors["transition.fill"] = [f"'{raw['fill']}' is not one of {', '.join(TransitionRule.Fill.values)}"]
        return TransitionRule.Fill.SLATE, filler
    if fill == TransitionRule.Fill.FILLER:
        if raw.get("filler") in (None, ""):
            errors["transition.filler"] = ["required when fill is FILLER"]
        else:
            try:
                filler = media.resolve_asset(raw["filler"], "transition.filler")
            except ConfigError as exc:
                errors.update(exc.errors)
    elif raw.get("filler") not in (None, ""):
        errors["transition.filler"] = ["only used when fill is FILLER"]
    return fill, filler


def _check_order(programs, errors):
    """Programs are listed in airing order: a start before an earlier program's would hide it."""
    latest = None
    for index, program in programs:
        if program.start is None:
            continue
        if latest and program.start < latest[1]:
            errors[f"programs[{index}].start"] = [
                f"is before programs[{latest[0]}].start; list programs in airing order"]
        else:
            latest = (index, program.start)


def _check_loop(programs, errors):
    """A daily loop repeats its block every 24 h, so the block must fit in a day."""
    items = [timeline.Item(p.start, p.duration_s, p.asset.source) for p in programs]
    slots = timeline.block(items, anchor=timezone.now())
    length = slots[-1][1] - slots[0][0] if slots else timedelta(0)
    if length > LOOP_LIMIT:
        errors["programs"] = [f"a looping schedule must fit in 24 h; this block runs {length}"]


def _format(width, height, rate):
    return f"{width}x{height} {rate:g}fps" if rate else f"{width}x{height}"


def copy_mode_errors(stream, assets):
    """{field: [reason]} for each asset a copy-mode channel (its `stream` settings) cannot pass
    through as it is.

    Stream copy cannot convert, so every asset must already be H.264 (with AAC at the outputs'
    sample rate when the audio is copied too) at the channel's resolution and frame rate; without those in the config the
    first asset sets the format the others must share. `assets` maps field -> asset, in order."""
    if stream.get("video_codec") != "copy" or not assets:
        return {}
    copy_audio = stream.get("audio_codec", "copy") == "copy"
    first = next(iter(assets.values()))
    size = tuple(map(int, stream["resolution"].split("x"))) if stream.get("resolution") else (
        first.width, first.height)
    rate = stream.get("frame_rate") or first.frame_rate
    wanted_codecs = "h264/aac" if copy_audio else "h264"
    errors = {}
    for field, asset in assets.items():
        codecs = f"{asset.video_codec}/{asset.audio_codec or 'no audio'}" if copy_audio else asset.video_codec
        same_rate = not rate or (asset.frame_rate is not None
                                 and abs(asset.frame_rate - rate) < FRAME_RATE_TOLERANCE)
        is_, airs = [], []
        if codecs != wanted_codecs:
            is_.append(codecs)
            airs.append(wanted_codecs)
        if (asset.width, asset.height) != size or not same_rate:
            is_.append(_format(asset.width, asset.height, asset.frame_rate))
            airs.append(_format(*size, rate))
        if copy_audio and asset.audio_sample_rate not in (None, AUDIO_SAMPLE_RATE):
            is_.append(f"{asset.audio_sample_rate} Hz audio")
            airs.append(f"{AUDIO_SAMPLE_RATE} Hz audio (as its slate)")
        if is_:
            name = PurePosixPath(asset.source).name or asset.source
            errors[field] = [f"'{name}' is {' '.join(is_)}, the copy channel airs {' '.join(airs)}; "
                             "re-encode it or use a transcode channel"]
    return errors


def keyframes_near(source, at, span=KEYFRAME_SPAN_SECONDS):
    """Keyframe times of a source's video from the one at or before `at` to `at + span`
    (ffprobe seeks to `at`, which lands on the keyframe before, and lists packets from there)."""
    argv = [settings.RETROVUE_FFPROBE, "-v", "error", "-select_streams", "v:0",
            "-read_intervals", f"{at:.6f}%+{span:g}", "-show_entries", "packet=pts_time,flags",
            "-of", "csv=p=0"]
    if media.is_url(source):
        argv += ["-protocol_whitelist", media.URL_PROTOCOLS]
    else:
        argv += ["-protocol_whitelist", media.FILE_PROTOCOLS]
    try:
        done = subprocess.run([*argv, source], capture_output=True, text=True, timeout=media.PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    found = []
    for line in done.stdout.splitlines():
        time_text, _, flags = line.partition(",")
        if "K" in flags and time_text not in ("", "N/A"):
            found.append(float(time_text))
    return found


def copy_in_point_errors(channel, programs):
    """{field: [reason]} for each copy-mode program whose in-point is not on a keyframe.

    Stream copy can only start at a keyframe; the playout engine would start such a program up
    to a GOP early (keeping its slot's length), so an explicit in-point must be one of them."""
    stream = channel.config.stream_settings
    if stream.get("video_codec") != "copy":
        return {}
    errors = {}
    for index, program in programs:
        at = program.in_point or 0.0
        if at <= 0:
            continue
        rate = program.asset.frame_rate or stream.get("frame_rate") or 30
        keyframes = keyframes_near(program.asset.source, at)
        if keyframes is None:
            errors[f"programs[{index}].in_point"] = ["could not list the asset's keyframes to check it"]
            continue
        if any(abs(k - at) <= 0.5 / rate for k in keyframes):
            continue
        before = [k for k in keyframes if k < at]
        after = [k for k in keyframes if k > at]
        near = ", ".join(f"{k:g}s" for k in (before[-1:] + after[:1]))
        errors[f"programs[{index}].in_point"] = [
            f"{at:g}s is not on a keyframe of '{PurePosixPath(program.asset.source).name}'; a copy channel can "
            f"only start a program at a keyframe" + (f" (nearest: {near})" if near else "")]
    return errors


def validate_schedule(channel, data):
    """The whole schedule checked before anything is written; raises ConfigError with one entry
    per field (`programs[1].asset`). Assets named by a path not yet imported are imported."""
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object"]})
    errors = {}
    _unknown(data, SCHEDULE_FIELDS | SCHEDULE_READ_ONLY, "", errors)
    tz = data.get("timezone") or "UTC"
    try:
        zone = ZoneInfo(validate_timezone(tz))
    except ValueError as exc:
        errors["timezone"], zone = [str(exc)], ZoneInfo("UTC")
    loop = data.get("loop", False)
    if not isinstance(loop, bool):
        errors["loop"] = [f"'{loop}' is not true or false"]
    fill, filler = _transition(data.get("transition"), errors)
    raw_programs = data.get("programs")
    if not isinstance(raw_programs, list):
        errors["programs"] = ["required: a list of programs (may be empty)"]
        raw_programs = []
    programs = [(index, _program(raw, f"programs[{index}]", zone, errors))
                for index, raw in enumerate(raw_programs)]
    valid = [(index, program) for index, program in programs if program]
    _check_order(valid, errors)
    if loop is True and len(valid) == len(programs):
        _check_loop([program for _, program in valid], errors)
    assets = {f"programs[{index}].asset": program.asset for index, program in valid}
    if filler:
        assets["transition.filler"] = filler
    errors.update(copy_mode_errors(channel.config.stream_settings, assets))
    if not errors:
        errors.update(copy_in_point_errors(channel, valid))
    if errors:
        raise ConfigError(errors)
    return {"timezone": tz, "loop": loop, "fill": fill, "filler": filler,
            "programs": [program for _, program in programs]}


def replace_schedule(channel, data):
    """Validate, then write a new schedule version and make it the channel's current one."""
    clean = validate_schedule(channel, data)
    with transaction.atomic():
        schedule = Schedule.objects.create(channel=channel, timezone=clean["timezone"], loop=clean["loop"])
        for position, program in enumerate(clean["programs"]):
            program.schedule, program.position = schedule, position
        Program.objects.bulk_create(clean["programs"])
        TransitionRule.objects.create(schedule=schedule, fill=clean["fill"], filler=clean["filler"])
        Channel.objects.filter(pk=channel.pk).update(current_schedule=schedule, updated_at=timezone.now())
        channel.current_schedule = schedule
        resolve_timeline(channel)
    return schedule


def resolve_timeline(channel):
    """What the channel airs over the next day, worked out before the new schedule is committed:
    a schedule whose timeline cannot be computed is refused, never stored to break the guide."""
    try:
        now = timezone.now()
        programming.channel_segments(channel, now, now + timedelta(hours=24))
    except (OverflowError, ValueError) as exc:
        channel.refresh_from_db()
        raise ConfigError({"programs": [f"the schedule's timeline cannot be worked out: {exc}"]}) from None


def schedule_payload(schedule):
    """A stored schedule in the shape replace_schedule takes (assets by id)."""
    rule = TransitionRule.objects.filter(schedule=schedule).first()
    return {
        "timezone": schedule.timezone, "loop": schedule.loop,
        "transition": {"fill": rule.fill, "filler": rule.filler_id} if rule else None,
        "programs": [{"asset": p.asset_id, "start": p.start, "in_point": p.in_point,
                      "out_point": p.out_point, "title": p.title, "description": p.description}
                     for p in Program.objects.filter(schedule=schedule).order_by("position")],
    }


def append_program(channel, program):
    """Add a program at the end by writing a new version of the current schedule (or a first
    one). A first program that followed the old version's creation keeps that start, so what is
    on air does not jump."""
    schedule = channel.current_schedule
    data = schedule_payload(schedule) if schedule else {"programs": []}
    if data["programs"] and data["programs"][0]["start"] is None:
        data["programs"][0]["start"] = schedule.created_at
    data["programs"].append(program)
    return replace_schedule(channel, data)


def make_current(schedule):
    """Put a stored version back on air, checked against the channel as it is now (its copy-mode
    format may have changed since)."""
    validate_schedule(schedule.channel, schedule_payload(schedule))
    Channel.objects.filter(pk=schedule.channel_id).update(current_schedule=schedule,
                                                          updated_at=timezone.now())


def switch_channel(channel, asset_ref):
    """Ask the channel's playout engine to air an asset now, then rejoin its schedule."""
    asset = media.resolve_asset(asset_ref, "asset")
    errors = copy_mode_errors(channel.config.stream_settings, {"asset": asset})
    if errors:
        raise ConfigError(errors)
    now = timezone.now()
    Channel.objects.filter(pk=channel.pk).update(switch_asset=asset, switch_requested_at=now, updated_at=now)
    switch_requested.send(sender=Channel, channel=channel)
    return {"channel": channel.number, "asset": media.asset_data(asset), "requested_at": now}


def _hours(value):
    if value in (None, ""):
        return DEFAULT_HOURS
    try:
        hours = float(value)
    except (TypeError, ValueError):
        hours = 0
    if not 0 < hours <= MAX_HOURS:
        raise ConfigError({"hours": [f"'{value}' is not a number of hours within 0..{MAX_HOURS}"]})
    return hours


def _merged(segments):
    """Consecutive loops of the filler as one entry (the timeline yields one per loop)."""
    out = []
    for segment in segments:
        if out and segment.kind == out[-1].kind == "filler" and segment.source == out[-1].source:
            out[-1] = replaced(out[-1], end=segment.end)
        else:
            out.append(segment)
    return out


def airing(channel, hours=None):
    """What airs now and in the next hours, times in the schedule's time zone:
    {"current": segment, "upcoming": [segments]}."""
    schedule = channel.current_schedule
    zone = ZoneInfo(schedule.timezone if schedule else "UTC")
    segments = _merged(programming.channel_segments(channel, hours=_hours(hours)))
    airs = [{"kind": s.kind, "start": s.start.astimezone(zone), "end": s.end.astimezone(zone),
             "title": s.title, "source": s.source, "program_id": s.program_id} for s in segments]
    return {"current": _as_aired(channel, airs[0]), "upcoming": airs[1:]}


def _as_aired(channel, current):
    """The current entry as a running channel's engine reports it (at its last heartbeat, read
    by `Channel.objects.with_runtime()`): a program whose source cannot be read airs the slate,
    and the view says so and why."""
    aired = getattr(channel, "current_on_air", None) or {}
    if channel.status != "RUNNING":
        return current
    if aired.get("kind") == "slate" and aired.get("description") and current["kind"] != "slate" and \
            (aired.get("title"), aired.get("program_id")) == (current["title"], current["program_id"]):
        return {**current, "kind": "slate", "source": None, "reason": aired["description"]}
    return current


def schedule_data(channel, hours=None):
    """The current schedule (empty fields without one) and what airs now and in the next hours."""
    schedule = channel.current_schedule
    zone = ZoneInfo(schedule.timezone if schedule else "UTC")
    data = {"id": None, "channel": channel.number, "created_at": None, "timezone": None, "loop": False,
            "transition": None, "programs": []}
    if schedule:
        rule = TransitionRule.objects.filter(schedule=schedule).select_related("filler").first()
        programs = Program.objects.filter(schedule=schedule).select_related("asset").order_by("position")
        data.update({
            "id": schedule.pk, "created_at": schedule.created_at, "timezone": schedule.timezone,
            "loop": schedule.loop,
            "transition": {"fill": rule.fill, "filler": media.asset_ref(rule.filler)} if rule else None,
            "programs": [{"id": p.pk, "position": p.position, "asset": media.asset_ref(p.asset),
                          "start": p.start and p.start.astimezone(zone), "in_point": p.in_point,
                          "out_point": p.out_point, "title": p.title, "description": p.description,
                          "duration_s": p.duration_s} for p in programs],
        })
    return {**data, **airing(channel, hours)}
