"""A channel programmed by rules: its schedule built ahead from them and extended by beat.

The rules-built schedule is the channel's current schedule: the first build makes a new version
(holding what the channel airs until the cutoff, so nothing on air changes) and puts it on air;
later builds work in whatever non-looping schedule is current, so programs someone placed there
by hand stay. A build never changes what has aired or, on a channel on air, what airs within
LOCK: it keeps every
program starting before the cutoff (the first program boundary at or after now + LOCK, never
inside a program split by mid-rolls or between a program and its rolls), keeps hand-placed
programs after it as fixed points, and plans the rest anew (library_app/planning.py) up to
now + RETROVUE_PROGRAMMING_HOURS. An extension only appends, from where the last build ended.
Streams keep their place from the kept programs, and from ChannelProgramming.progress once
`prune` has removed programs that ended more than PRUNE_AGE ago.
"""
import logging
import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.models import Channel, MediaAsset, Program, Schedule, TransitionRule
from channels_app.programming import channel_segments
from retrovue.errors import ConfigError

from .collections import cached_assets, referenced_collections
from .models import ChannelProgramming, Collection
from .orders import progress_key
from .planning import FILLER_ROLES, Planner, after, starts_unit
from .rules import HAND_FIELDS, validate_rules

log = logging.getLogger("retrovue.library")
LOCK = timedelta(minutes=5)
PRUNE_AGE = timedelta(days=2)
DEFAULT_HOURS = 48
EXTEND_MARGIN = timedelta(hours=1)  # beat extends a channel built less than this beyond the horizon
# How far past the lock a build looks for the end of what airs then (a longer program ends the
# first build's copy there, and a rebuild's cutoff at its end).
AIRING_SPAN = timedelta(hours=6)
NEXT_PROGRAMS = 10


def programming_hours():
    return getattr(settings, "RETROVUE_PROGRAMMING_HOURS", DEFAULT_HOURS)


def _programming(channel):
    found = ChannelProgramming.objects.filter(channel=channel).first()
    if found is None or not found.rules:
        raise ConfigError({"programming": [f"channel {channel.number} has no programming rules"]})
    return found


def _hand_placed(document):
    """{(asset id, start)} of the hand-placed programs a rules document lists."""
    return {(p["asset"], datetime.fromisoformat(p["start"])) for p in document.get("programs", [])}


def set_programming(channel, data, now=None):
    """Validate and store the channel's rules (a seed is drawn the first time and kept), then
    build from the cutoff; one transaction: on any error nothing is written."""
    now = now or timezone.now()
    cache = {}
    with transaction.atomic():
        clean = validate_rules(data, channel, cache)
        programming, _ = ChannelProgramming.objects.get_or_create(
            channel=channel, defaults={"seed": secrets.randbits(62)})
        replaced = _hand_placed(programming.rules)
        programming.rules = clean
        programming.save(update_fields=["rules", "updated_at"])
        _build(channel, programming, now, programming_hours(), append=False, replaced=replaced, cache=cache)
    return programming


def build(channel, now=None, hours=None, cache=None):
    """Rebuild the channel's schedule from the cutoff to `hours` ahead; a summary. A `cache`
    dict shared by several builds reads each collection once for all of them."""
    with transaction.atomic():
        return _build(channel, _programming(channel), now or timezone.now(), hours or programming_hours(),
                      append=False, cache=cache)


def extend(channel, now=None, hours=None, cache=None):
    """Prune, then append to the channel's schedule from where it was built up to `hours` ahead."""
    now = now or timezone.now()
    with transaction.atomic():
        prune(channel, now)
        return _build(channel, _programming(channel), now, hours or programming_hours(), append=True, cache=cache)


def extend_all(now=None):
    """Extend every channel programmed by rules whose schedule reaches less than the horizon
    less EXTEND_MARGIN; the numbers of those extended (a channel whose build fails keeps the
    reason in build_error)."""
    now = now or timezone.now()
    due = now + timedelta(hours=programming_hours()) - EXTEND_MARGIN
    rows = (ChannelProgramming.objects.select_related("channel__current_schedule")
            .filter(Q(built_until=None) | Q(built_until__lt=due)).order_by("channel__number"))
    cache, extended = {}, []
    for row in rows:
        if not row.rules:
            continue
        try:
            extend(row.channel, now, cache=cache)
        except (ConfigError, ValueError, OverflowError) as exc:
            log.warning("programming of channel %s not extended: %s", row.channel.number, exc)
            ChannelProgramming.objects.filter(pk=row.pk).update(build_error=str(exc))
            continue
        extended.append(row.channel.number)
    return extended


def lock_for(channel):
    """How far ahead nothing may change: LOCK for a channel on air (viewers were promised it),
    none for one that airs nothing now (its rules apply at once when it starts)."""
    return LOCK if channel.status in (Channel.Status.STARTING, Channel.Status.RUNNING) else timedelta(0)


def _schedule(channel, programming, now, lock):
    """The schedule to build in: the current one, unless this is the first build or it loops;
    then a new version holding what airs until the cutoff, put on air."""
    zone = programming.rules["timezone"]
    current = channel.current_schedule
    if programming.built_at and current is not None and not current.loop:
        if current.timezone != zone:
            Schedule.objects.filter(pk=current.pk).update(timezone=zone)
            current.timezone = zone
        return current
    schedule = Schedule.objects.create(channel=channel, timezone=zone, loop=False)
    TransitionRule.objects.create(schedule=schedule, fill=TransitionRule.Fill.SLATE)
    airing = []
    for segment in channel_segments(channel, now, now + lock + AIRING_SPAN):
        if segment.start >= now + lock:
            break
        if segment.kind == "program" and segment.asset_id:
            airing.append(Program(schedule=schedule, position=len(airing), asset_id=segment.asset_id,
                                  start=segment.start, in_point=segment.in_point or None,
                                  out_point=segment.in_point + segment.duration_s, title=segment.title,
                                  description=segment.description))
    Program.objects.bulk_create(airing)
    Channel.objects.filter(pk=channel.pk).update(current_schedule=schedule, updated_at=timezone.now())
    channel.current_schedule = schedule
    return schedule


def _timed(schedule, before=None):
    """[(start, program)] of the schedule in airing order (a program without a start follows
    the previous one, as the timeline places it). With `before`, only the programs starting
    before it and the hand-placed ones (when every program has a start): a rebuild replaces the
    rest without reading it."""
    programs = Program.objects.filter(schedule=schedule)
    if before is not None and not programs.filter(start=None).exists():
        programs = programs.filter(Q(start__lt=before) | Q(origin=""))
    timed, cursor = [], schedule.created_at
    for program in programs.select_related("asset").order_by("position"):
        start = program.start or cursor
        timed.append((start, program))
        cursor = after(start, program.duration_s)
    return timed


def _cutoff(timed, lock):
    """The first program boundary at or after `lock` where a rebuild may begin."""
    previous = None
    for start, program in timed:
        if start >= lock and starts_unit(program, previous):
            return start
        previous = program
    return max([lock, *(after(start, program.duration_s) for start, program in timed)])


def _fixed(later, document, cutoff, until, replaced):
    """Hand-placed programs from the cutoff on, in time order, unsaved: those of the schedule
    (unless the rules that placed them were replaced) and the rules' own up to `until`; and
    warnings for rules' programs whose asset is gone."""
    fixed = {(p.asset_id, start): Program(start=start, asset=p.asset, origin="",
                                          **{name: getattr(p, name) for name in HAND_FIELDS})
             for start, p in later if not p.origin and (p.asset_id, start) not in replaced}
    wanted = [(p, datetime.fromisoformat(p["start"])) for p in document.get("programs", [])]
    wanted = [(p, start) for p, start in wanted if cutoff <= start < until and (p["asset"], start) not in fixed]
    assets = MediaAsset.objects.in_bulk([p["asset"] for p, _ in wanted]) if wanted else {}
    warnings = [f"hand-placed program at {p['start']}: media asset {p['asset']} is gone"
                for p, _ in wanted if p["asset"] not in assets]
    for p, start in wanted:
        if p["asset"] in assets:
            fixed[p["asset"], start] = Program(start=start, asset=assets[p["asset"]], origin="",
                                               **{name: p.get(name) for name in HAND_FIELDS if name in p})
    return sorted(fixed.values(), key=lambda program: program.start), warnings


def _assets(ids, cache):
    """{collection id: its assets}, each collection read once per cache (None: none kept)."""
    cache = {} if cache is None else cache
    for collection in Collection.objects.filter(pk__in=[i for i in ids if i not in cache]):
        cached_assets(collection, cache)
    return {i: cache.get(i, []) for i in ids}


def _progress(programming):
    """ChannelProgramming.progress with assets for ids."""
    found = MediaAsset.objects.in_bulk(list(programming.progress.values())) if programming.progress else {}
    return {key: found[pk] for key, pk in programming.progress.items() if pk in found}


def _build(channel, programming, now, hours, append, replaced=frozenset(), cache=None):
    document, lock = programming.rules, lock_for(channel)
    schedule = _schedule(channel, programming, now, lock)
    read_before = None if append else now + lock + AIRING_SPAN  # a rebuild reads no further
    timed = _timed(schedule, read_before)
    cutoff = _cutoff([(s, p) for s, p in timed if read_before is None or s < read_before], now + lock)
    if append and programming.built_until:
        cutoff = max(cutoff, programming.built_until)
    until = now + timedelta(hours=hours)
    kept = [(start, p) for start, p in timed if start < cutoff]
    fixed, warnings = _fixed([(s, p) for s, p in timed if s >= cutoff], document, cutoff, until, replaced)
    assets = _assets(set(referenced_collections(document).values()), cache)
    planner = Planner(document, programming.seed, assets, kept, _progress(programming))
    placed, built_until = planner.plan(cutoff, until, fixed)
    first = kept[-1][1].position + 1 if kept else 0
    Program.objects.filter(schedule=schedule, position__gte=first).delete()
    for position, program in enumerate(placed, first):
        program.schedule, program.position = schedule, position
    Program.objects.bulk_create(placed, batch_size=2000)
    warnings += [f"collection {pk} is empty: its time was left to filler" for pk in sorted(planner.empty)]
    programming.built_until, programming.built_at = built_until, timezone.now()
    programming.build_error = "; ".join(warnings)
    programming.save(update_fields=["built_until", "built_at", "build_error", "updated_at"])
    return {"channel": channel.number, "schedule": schedule.pk, "from": cutoff, "until": built_until,
            "kept": len(kept), "programs": len(placed), "gap_seconds": round(planner.gap_seconds, 3),
            "warnings": warnings}


def prune(channel, now=None):
    """Delete the programs of the channel's schedule that ended more than PRUNE_AGE ago, first
    noting in ChannelProgramming.progress the last item of each stream they held; how many."""
    programming = ChannelProgramming.objects.filter(channel=channel).first()
    schedule = channel.current_schedule
    if programming is None or schedule is None or schedule.loop:
        return 0
    threshold = (now or timezone.now()) - PRUNE_AGE
    timed = _timed(schedule)
    old = 0
    while old < len(timed) and after(timed[old][0], timed[old][1].duration_s) <= threshold:
        old += 1
    while 0 < old < len(timed) and timed[old][1].start is None:  # the first kept must keep its start
        old -= 1
    if not old:
        return 0
    for _, program in timed[:old]:
        if program.origin and program.origin not in FILLER_ROLES:
            group = program.asset.show if program.origin.endswith(":shuffle_in_order") else ""
            programming.progress[progress_key(program.origin, group)] = program.asset_id
    programming.save(update_fields=["progress", "updated_at"])
    Program.objects.filter(schedule=schedule, position__lte=timed[old - 1][1].position).delete()
    return old


def clear_programming(channel):
    """Stop building by rules. The schedule built so far stays the channel's schedule (it airs
    until its end, then the slate); the seed and each stream's place are kept, so rules set again
    continue where these stopped."""
    ChannelProgramming.objects.filter(channel=channel).update(rules={}, built_until=None, build_error="",
                                                             updated_at=timezone.now())


def _next_programs(schedule, now):
    """The program on air and those after it (up to NEXT_PROGRAMS), times in the schedule's zone."""
    if schedule is None:
        return []
    zone = ZoneInfo(schedule.timezone)
    programs = Program.objects.filter(schedule=schedule).select_related("asset")
    current = programs.filter(start__lte=now).order_by("-start").first()
    following = list(programs.filter(start__gt=now).order_by("start")[:NEXT_PROGRAMS])
    if current and after(current.start, current.duration_s) > now:
        following = [current, *following][:NEXT_PROGRAMS]
    return [{"start": p.start.astimezone(zone), "end": after(p.start, p.duration_s).astimezone(zone),
             "title": p.title or p.asset.title, "asset": p.asset_id, "origin": p.origin} for p in following]


def programming_data(channel, now=None):
    """The stored rules (collections by id), how far they are built, and what airs next."""
    row = ChannelProgramming.objects.filter(channel=channel).first()
    schedule = Schedule.objects.filter(pk=channel.current_schedule_id).first()
    return {"rules": row.rules if row else {}, "built_until": row and row.built_until,
            "built_at": row and row.built_at, "build_error": row.build_error if row else "",
            "next": _next_programs(schedule, now or timezone.now())}
