"""A channel's programming rules: the document of PUT /api/channels/{id}/programming, checked.

    {"timezone": "Europe/Paris",
     "blocks": [{"days": ["mon", "tue"], "start": "20:00", "end": "22:00",
                 "collection": <id or name>, "order": "chronological"}],
     "default": {"collection": <id or name>, "order": "shuffle"},
     "filler": {"collection": <id or name>, "pad_to_minutes": 30, "cooldown_minutes": 60,
                "pre_roll": <collection>, "post_roll": <collection>, "mid_roll": <collection>},
     "programs": [{"start": "2026-11-24T21:00:00+01:00", "asset": <id or path>}]}

Blocks are local times of the rules' time zone on the days named; "24:00" ends a block at
midnight, and an end before the start runs past midnight into the next day (its `days` name the
day it starts). Blocks may not overlap. Orders: chronological, shuffle, shuffle_in_order (shows
shuffled, each show's episodes in order) and random (`no_repeat`: no item again within that many
items, default min(items - 1, 10)). `default` fills the time outside blocks; `filler` pads each
program to the next multiple of `pad_to_minutes` (a divisor of 60) past the hour and fills what
a block cannot use, never reusing an item within `cooldown_minutes`. At least one block or a
default is required. `programs` are placed by hand at their start and built around.

The clean document names collections by id, so what GET shows is what is stored.
"""
import re

from channels_app import schedules
from retrovue.errors import ConfigError

from .collections import FILLER_COLLECTION_FIELDS, cached_assets, referenced_collections, resolve_collection

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ORDERS = ("chronological", "shuffle", "shuffle_in_order", "random")
RULE_FIELDS = {"timezone", "blocks", "default", "filler", "programs"}
STREAM_FIELDS = {"collection", "order", "no_repeat"}
BLOCK_FIELDS = {"days", "start", "end"} | STREAM_FIELDS
FILLER_FIELDS = {"pad_to_minutes", "cooldown_minutes", *FILLER_COLLECTION_FIELDS}
HAND_FIELDS = ("in_point", "out_point", "title", "description")  # a hand-placed program's, besides start and asset
DEFAULT_NO_REPEAT = 10
MAX_COOLDOWN_MINUTES = 7 * 24 * 60
DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES
CLOCK = re.compile(r"(\d\d):(\d\d)")


def no_repeat(stream, items):
    """How many items a random order keeps apart: as given, or min(items - 1, 10)."""
    return stream.get("no_repeat", min(items - 1, DEFAULT_NO_REPEAT))


def clock_minutes(text):
    """'20:30' -> 1230; '24:00' -> 1440."""
    hours, minutes = CLOCK.fullmatch(text).groups()
    return int(hours) * 60 + int(minutes)


def _unknown(data, allowed, prefix, errors):
    for key in sorted(set(data) - allowed):
        errors[f"{prefix}{key}"] = ["unknown field"]


def _collection(ref, field, errors, cache):
    """(id, number of assets) of a non-empty collection, or None (the error recorded)."""
    try:
        collection = resolve_collection(ref, field)
    except ConfigError as exc:
        errors.update(exc.errors)
        return None
    items = len(cached_assets(collection, cache))
    if not items:
        errors[field] = [f"collection '{collection.name}' holds no assets (none found, or all missing)"]
        return None
    return collection.pk, items


def _stream(raw, prefix, errors, cache):
    """{"collection": id, "order": ..., ["no_repeat": n]} from a block or the default."""
    found = _collection(raw.get("collection"), f"{prefix}.collection", errors, cache)
    order = raw.get("order", "chronological")
    if order not in ORDERS:
        errors[f"{prefix}.order"] = [f"'{order}' is not one of {', '.join(ORDERS)}"]
    clean = {"collection": found and found[0], "order": order}
    if "no_repeat" in raw:
        value = raw["no_repeat"]
        if order != "random":
            errors[f"{prefix}.no_repeat"] = ["only used with the random order"]
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors[f"{prefix}.no_repeat"] = [f"'{value}' is not a whole number of items (0 or more)"]
        elif found and value >= found[1]:
            errors[f"{prefix}.no_repeat"] = [f"must be less than the collection's {found[1]} items"]
        clean["no_repeat"] = value
    return clean


def _clock(value, field, errors, allow_midnight=False):
    match = CLOCK.fullmatch(value) if isinstance(value, str) else None
    minutes = clock_minutes(value) if match else None
    if minutes is None or int(match.group(2)) > 59 or minutes > DAY_MINUTES or (
            minutes == DAY_MINUTES and not allow_midnight):
        errors[field] = [f"'{value}' is not a time of day like 20:00" + (" (or 24:00)" if allow_midnight else "")]
        return None
    return minutes


def _block(raw, prefix, errors, cache):
    if not isinstance(raw, dict):
        errors[prefix] = ["must be an object with days, start, end, collection and order"]
        return None
    _unknown(raw, BLOCK_FIELDS, f"{prefix}.", errors)
    days = raw.get("days")
    if not isinstance(days, list) or not days or any(day not in DAYS for day in days):
        errors[f"{prefix}.days"] = [f"must be a list of days: {', '.join(DAYS)}"]
    elif len(set(days)) != len(days):
        errors[f"{prefix}.days"] = ["names a day twice"]
    start = _clock(raw.get("start"), f"{prefix}.start", errors)
    end = _clock(raw.get("end"), f"{prefix}.end", errors, allow_midnight=True)
    if start is not None and start == end:
        errors[f"{prefix}.end"] = ["must differ from start (00:00 to 24:00 is the whole day)"]
    stream = _stream(raw, prefix, errors, cache)
    if f"{prefix}.days" in errors or start is None or end is None:
        return None
    return {"days": sorted(days, key=DAYS.index), "start": raw["start"], "end": raw["end"], **stream}


def week_spans(block):
    """The block's (start, end) minutes of the week, Monday 00:00 = 0; a span past Sunday
    midnight is split so each lies within the week."""
    start, end = clock_minutes(block["start"]), clock_minutes(block["end"])
    length = end - start if end > start else end + DAY_MINUTES - start
    spans = []
    for day in block["days"]:
        first = DAYS.index(day) * DAY_MINUTES + start
        spans += [(first, min(first + length, WEEK_MINUTES))]
        if first + length > WEEK_MINUTES:
            spans.append((0, first + length - WEEK_MINUTES))
    return spans


def _check_overlaps(blocks, errors):
    for later, block in enumerate(blocks):
        for earlier in range(later):
            if blocks[earlier] is None or block is None:
                continue
            clash = next(((a, b) for a in week_spans(blocks[earlier]) for b in week_spans(block)
                          if a[0] < b[1] and b[0] < a[1]), None)
            if clash:
                day = DAYS[max(clash[0][0], clash[1][0]) // DAY_MINUTES]
                errors[f"blocks[{later}].start"] = [f"overlaps blocks[{earlier}] on {day}"]
                break


def _filler(raw, errors, cache):
    if not isinstance(raw, dict):
        errors["filler"] = ["must be an object with a collection and pad_to_minutes"]
        return None
    _unknown(raw, FILLER_FIELDS, "filler.", errors)
    clean = {}
    for name in FILLER_COLLECTION_FIELDS:
        if raw.get(name) is not None:
            found = _collection(raw[name], f"filler.{name}", errors, cache)
            clean[name] = found and found[0]
    pad = raw.get("pad_to_minutes")
    if pad is not None:
        if isinstance(pad, bool) or not isinstance(pad, int) or not 1 <= pad <= 60 or 60 % pad:
            errors["filler.pad_to_minutes"] = [f"'{pad}' does not divide the hour (1, 2, 3, 4, 5, 6, 10, 12, "
                                               "15, 20, 30 or 60)"]
        elif raw.get("collection") is None:
            errors["filler.collection"] = ["required to pad programs"]
        clean["pad_to_minutes"] = pad
    cooldown = raw.get("cooldown_minutes", 0)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int) or not 0 <= cooldown <= MAX_COOLDOWN_MINUTES:
        errors["filler.cooldown_minutes"] = [f"'{cooldown}' is not a whole number of minutes "
                                             f"(0..{MAX_COOLDOWN_MINUTES})"]
    clean["cooldown_minutes"] = cooldown
    return clean


def _programs(channel, raw, timezone, errors):
    """Hand-placed programs, checked as a schedule's (assets by path imported), each with a start."""
    if not isinstance(raw, list):
        errors["programs"] = ["must be a list of programs with a start and an asset"]
        return []
    unplaced = {f"programs[{index}].start": ["required: a hand-placed program airs at its start"]
                for index, program in enumerate(raw)
                if isinstance(program, dict) and program.get("start") in (None, "")}
    errors.update(unplaced)
    try:
        checked = schedules.validate_schedule(channel, {"timezone": timezone, "programs": raw})["programs"]
    except ConfigError as exc:
        errors.update({field: messages for field, messages in exc.errors.items() if field != "timezone"})
        return []
    if unplaced:
        return []
    return [{"start": p.start.isoformat(), "asset": p.asset_id,
             **{name: getattr(p, name) for name in HAND_FIELDS if getattr(p, name) not in (None, "")}}
            for p in checked]


def _copy_mode(channel, clean, cache, errors):
    """A copy-mode channel passes media through as they are: every asset a collection may air
    must already be in the channel's format (schedules.copy_mode_errors)."""
    stream = channel.config.stream_settings
    for field, collection in referenced_collections(clean).items():
        problems = schedules.copy_mode_errors(stream, {asset.pk: asset for asset in cache[collection]})
        if problems:
            example = next(iter(problems.values()))[0]
            errors[field] = [f"{len(problems)} of its assets cannot air on this copy channel, e.g.: {example}"]


def validate_rules(data, channel, cache=None):
    """The clean programming document, or ConfigError with one entry per field
    (`blocks[0].start`). `channel` is the one programmed: its hand-placed programs are checked
    against its copy-mode format as its schedule's would be. The collections' assets read are
    left in `cache` ({collection id: assets}) for the build that follows."""
    cache = {} if cache is None else cache
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object with blocks and/or a default"]})
    errors = {}
    _unknown(data, RULE_FIELDS, "", errors)
    timezone = data.get("timezone") or "UTC"
    try:
        schedules.validate_timezone(timezone)
    except ValueError as exc:
        errors["timezone"] = [str(exc)]
    raw_blocks = data.get("blocks", [])
    if not isinstance(raw_blocks, list):
        errors["blocks"], raw_blocks = ["must be a list of blocks"], []
    blocks = [_block(raw, f"blocks[{index}]", errors, cache) for index, raw in enumerate(raw_blocks)]
    _check_overlaps(blocks, errors)
    clean = {"timezone": timezone, "blocks": blocks}
    if data.get("default") is not None:
        if isinstance(data["default"], dict):
            _unknown(data["default"], STREAM_FIELDS, "default.", errors)
            clean["default"] = _stream(data["default"], "default", errors, cache)
        else:
            errors["default"] = ["must be an object with a collection and an order"]
    elif not blocks:
        errors["default"] = ["required when there are no blocks"]
    if data.get("filler") is not None:
        clean["filler"] = _filler(data["filler"], errors, cache)
    if data.get("programs") is not None and "timezone" not in errors:
        clean["programs"] = _programs(channel, data["programs"], timezone, errors)
    if not errors:
        _copy_mode(channel, clean, cache, errors)
    if errors:
        raise ConfigError(errors)
    return clean

