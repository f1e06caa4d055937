"""/guide: every channel's programmes on a time grid, now and the next hours (`?hours=`, 1–24,
default 4; `?start=` an ISO 8601 date-time), from the same listings as the XMLTV guide. A
programme's block is placed and sized in % of the window; clicking it opens its details."""
from datetime import UTC, datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from channels_app.models import Channel
from retrovue.errors import ConfigError

from .asrun import _moment as iso_moment
from .iptv import artwork_urls
from .listings import channel_listings

DEFAULT_HOURS = 4
MAX_HOURS = 24
SLOT = timedelta(minutes=30)  # the grid's default start and its time marks fall on these
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REACH = timedelta(days=366)  # how far from now the grid may start: schedules are worked out that far


def floor_to(moment, step):
    return moment - (moment - EPOCH) % step


def window(query, now):
    """(start, hours) from the page's query: a bad value is refused with its reason."""
    raw_hours = query.get("hours", "").strip() or str(DEFAULT_HOURS)
    if not (raw_hours.isascii() and raw_hours.isdigit() and 1 <= int(raw_hours) <= MAX_HOURS):
        raise ConfigError({"hours": [f"'{raw_hours}' is not a whole number of hours from 1 to {MAX_HOURS}"]})
    raw_start = query.get("start", "").strip()
    start = iso_moment("start", raw_start) if raw_start else floor_to(now, SLOT)
    if abs(start - now) > REACH:
        raise ConfigError({"start": [f"'{raw_start}' is more than {REACH.days} days from now"]})
    return start, int(raw_hours)


def percent(moment, start, span):
    return round((moment - start) / span * 100, 3)


def block(airing, start, span, artwork_url):
    """How the grid draws an airing: its part inside the window, in % of it."""
    shown_from, shown_to = max(airing.start, start), min(airing.stop, start + span)
    return {"airing": airing, "left": percent(shown_from, start, span),
            "width": percent(shown_to, start, span) - percent(shown_from, start, span),
            "artwork": artwork_url(airing.asset) if airing.asset else None}


def marks(start, span):
    """The time ruler: every half hour (every hour past six hours) inside the window."""
    step = SLOT if span <= timedelta(hours=6) else 2 * SLOT
    at = floor_to(start, step)
    found = []
    while at < start + span:
        if at >= start:
            found.append({"at": at, "left": percent(at, start, span)})
        at += step
    return found


@login_required
def guide_page(request):
    now = timezone.now()
    try:
        start, hours = window(request.GET, now)
    except ConfigError as exc:
        return render(request, "dashboards/guide.html", {"errors": exc.errors}, status=400)
    span = timedelta(hours=hours)
    channels = list(Channel.objects.select_related("current_schedule"))
    listings = channel_listings(channels, start, start + span, now)
    artwork_url = artwork_urls("")  # the page's own site: a path (with the IPTV token when one is set)
    rows = [{"channel": channel, "blocks": [block(airing, start, span, artwork_url) for airing in airings]}
            for channel, airings in listings.items()]
    context = {"rows": rows, "marks": marks(start, span), "start": start, "end": start + span, "hours": hours,
               "now_left": percent(now, start, span) if start <= now < start + span else None,
               "earlier": start - span, "later": start + span}
    return render(request, "dashboards/guide.html", context)
