"""What the guide lists: each channel's airings over a window, with what the media library knows
about each asset (show, episode, plot, genres, year, rating, artwork) and whether it is the
asset's first airing on the channel. The XMLTV guide and the /guide page both read this, so a
client's guide and the operator's never disagree.

"First airing" (no `previously-shown`, which Plex and Jellyfin show as new) is a cheap
approximation, in two bulk queries for every channel: the asset is new on the channel unless
the channel's as-run log has it, a program of its current schedule places it earlier, a program
of an older schedule version placed it before now (a plan a rebuild replaced never aired), or it
airs earlier in the same listing (loops, and programs that follow on without a start of their own).
"""
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Min, Q

from channels_app.models import MediaAsset, Program
from channels_app.programming import channel_segments

from .models import AsRunEntry

log = logging.getLogger("retrovue.iptv")
# A listing opens this long before the hour of its start, so a programme that began within that
# time keeps its real start (and its first-airing verdict), and the listing stays the same all hour.
LOOKBACK_HOURS = 6
# An as-run start this close to a scheduled one is that airing (the run's frame grid moves it).
SAME_AIRING = timedelta(seconds=1)
# Characters XML 1.0 cannot hold (and DEL): control characters, lone surrogates, U+FFFE/U+FFFF.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
KIND_CATEGORIES = {"show": "Series", "movie": "Movie"}


def one_line(text):
    """Text safe for a single-line field: no control characters, whitespace collapsed."""
    return " ".join(CONTROL.sub("", text).split())


def plain_text(text):
    """Text safe for a multi-line field (XML 1.0 and HTML): no control characters."""
    return CONTROL.sub("", text).strip()


@dataclass
class Airing:
    """One programme of a channel's listing; `asset` is what the media library knows of it."""

    start: datetime
    stop: datetime
    kind: str  # the timeline segment's: "program", "filler", "slate" or "switch"
    title: str  # an episode's show; else the program's (or asset's) title, else the channel's name
    sub_title: str = ""  # an episode's title
    description: str = ""  # the program's description, else the asset's plot
    asset_id: int | None = None
    asset: MediaAsset | None = None
    first_airing: bool = False

    @property
    def categories(self):
        """"Series" or "Movie", then the asset's genres."""
        if self.asset is None:
            return []
        kind = KIND_CATEGORIES.get(self.asset.kind)
        genres = [one_line(str(genre)) for genre in self.asset.genres or []]
        return list(dict.fromkeys(name for name in [kind, *genres] if name))

    @property
    def episode_label(self):
        """The episode as shown on screen: S01E02, S01E02-E03 for a double episode, "" for none."""
        asset = self.asset
        if asset is None or asset.episode is None:
            return ""
        season = "" if asset.season is None else f"S{asset.season:02d}"
        last = f"-E{asset.episode_end:02d}" if asset.episode_end and asset.episode_end > asset.episode else ""
        return f"{season}E{asset.episode:02d}{last}"

    @property
    def rating(self):
        return one_line(self.asset.content_rating) if self.asset else ""


def merged_airings(channel, since, until):
    """The channel's segments over [since, until) as airings, titled as the segments are (maybe
    not at all); consecutive fills of one asset (a filler looping through a gap, or the slate)
    are one airing, programmes never merge."""
    merged = []
    for segment in channel_segments(channel, since, until):
        title = one_line(segment.title)
        last = merged[-1] if merged else None
        if (last and segment.kind != "program"
                and (last.kind, last.title, last.asset_id) == (segment.kind, title, segment.asset_id)):
            last.stop = segment.end
        else:
            merged.append(Airing(segment.start, segment.end, segment.kind, title,
                                 description=plain_text(segment.description), asset_id=segment.asset_id))
    return merged


def describe(airing, asset):
    """Fill in what the library knows of the airing's asset: an episode is listed under its show."""
    airing.asset = asset
    airing.description = airing.description or plain_text(asset.plot)
    if asset.kind == "show" and one_line(asset.show):
        airing.title, airing.sub_title = one_line(asset.show), airing.title


def earliest_airings(channels, asset_ids, now):
    """(channel id, asset id) -> the earliest start the database knows of each listed asset on
    the channel (only the listed ones: a rule-built schedule holds days of others)."""
    current = Q(schedule_id=F("schedule__channel__current_schedule_id"))
    planned = (Program.objects.filter(current | Q(start__lt=now), schedule__channel__in=channels,
                                      start__isnull=False, asset_id__in=asset_ids)
               .values("schedule__channel_id", "asset_id").annotate(first=Min("start"))
               .values_list("schedule__channel_id", "asset_id", "first"))
    aired = (AsRunEntry.objects.filter(channel__in=channels, asset_id__in=asset_ids)
             .values("channel_id", "asset_id").annotate(first=Min("actual_start"))
             .values_list("channel_id", "asset_id", "first"))
    earliest = {}
    for channel_id, asset_id, first in [*planned, *aired]:
        key = (channel_id, asset_id)
        earliest[key] = min(first, earliest.get(key, first))
    return earliest


def mark_first_airings(channel, airings, earliest):
    seen = set()
    for airing in airings:
        if airing.asset_id is None:
            continue
        before = earliest.get((channel.pk, airing.asset_id))
        airing.first_airing = airing.asset_id not in seen and (before is None or before > airing.start - SAME_AIRING)
        seen.add(airing.asset_id)


def listing_airings(channel, since, until):
    """The channel's merged airings; one channel's bad data never breaks everyone's guide."""
    try:
        return merged_airings(channel, since, until)
    except (OverflowError, ValueError) as exc:
        log.warning("guide: channel %s left without programmes: %s", channel.number, exc)
        return []


def channel_listings(channels, start, until, now):
    """{channel: [Airing]} of what each channel airs over [start, until), the programme on air at
    `start` with its real start, every asset's metadata from one query for all channels."""
    since = start.replace(minute=0, second=0, microsecond=0) - timedelta(hours=LOOKBACK_HOURS)
    listings = {channel: listing_airings(channel, since, until) for channel in channels}
    asset_ids = {airing.asset_id for airings in listings.values() for airing in airings if airing.asset_id}
    assets = MediaAsset.objects.in_bulk(asset_ids)
    earliest = earliest_airings(channels, asset_ids, now)
    for channel, airings in listings.items():
        for airing in airings:
            if airing.asset_id in assets:
                describe(airing, assets[airing.asset_id])
            airing.title = airing.title or one_line(channel.name)
        mark_first_airings(channel, airings, earliest)
        listings[channel] = [airing for airing in airings if airing.stop > start]
    return listings
