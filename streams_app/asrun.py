"""The as-run log as operators read it (API, CLI, page, admin): what aired on a channel over a
window, as rows or CSV; and its retention. The engine writes it (playout/asrun.py)."""
import csv
import io
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from retrovue.errors import ConfigError

from channels_app.models import ViewerSession

from .alerts import channel_filter
from .models import AsRunEntry

DEFAULT_WINDOW = timedelta(hours=24)
MAX_ROWS = 10_000
COLUMNS = ("channel", "channel_name", "kind", "title", "asset", "source", "scheduled_start", "scheduled_end",
           "actual_start", "actual_end", "duration_s", "frames", "host", "run", "note", "viewers")


def _moment(name, text):
    """An ISO 8601 date-time (a naive one is UTC) or a date (its midnight UTC)."""
    try:
        value = parse_datetime(text.strip())
        if value is None and (day := parse_date(text.strip())):
            value = datetime.combine(day, datetime.min.time())
    except ValueError:
        value = None
    if value is None:
        raise ConfigError({name: [f"'{text}' is not an ISO 8601 date or date-time"]})
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def find_as_run(channel=None, since=None, until=None):
    """Entries overlapping [since, until) (strings from a query; default: the last 24 hours),
    oldest first. A window holding more than MAX_ROWS is refused rather than cut short."""
    until_at = _moment("to", until) if until else timezone.now()
    since_at = _moment("from", since) if since else until_at - DEFAULT_WINDOW
    if since_at >= until_at:
        raise ConfigError({"from": ["must be before 'to'"]})
    entries = (AsRunEntry.objects.select_related("channel", "asset")
               .filter(Q(actual_end__gt=since_at) | Q(actual_end=None), actual_start__lt=until_at))
    if channel is not None:
        entries = entries.filter(channel=channel_filter(channel))
    found = list(entries[:MAX_ROWS + 1])
    if len(found) > MAX_ROWS:
        raise ConfigError({"from": [f"the window holds more than {MAX_ROWS} entries: narrow it"]})
    return found


def as_run_rows(entries):
    """Rows of `entries`, each with how many viewers watched during it (viewer sessions of its
    channel overlapping it), from one query for all."""
    entries, now = list(entries), timezone.now()
    watched = {}
    if entries:
        sessions = ViewerSession.objects.filter(
            channel_id__in={entry.channel_id for entry in entries},
            started_at__lt=max(entry.actual_end or now for entry in entries),
            last_seen_at__gt=min(entry.actual_start for entry in entries))
        for channel_id, began, seen, ended in sessions.values_list("channel_id", "started_at", "last_seen_at",
                                                                   "ended_at"):
            watched.setdefault(channel_id, []).append((began, ended or seen))
    return [{**_row(entry), "viewers": sum(began < (entry.actual_end or now) and left > entry.actual_start
                                          for began, left in watched.get(entry.channel_id, ()))}
            for entry in entries]


def _row(entry):
    return {"channel": entry.channel.number, "channel_name": entry.channel.name, "kind": entry.kind,
            "title": entry.title, "asset": entry.asset_id, "source": entry.source,
            "scheduled_start": entry.scheduled_start, "scheduled_end": entry.scheduled_end,
            "actual_start": entry.actual_start, "actual_end": entry.actual_end,
            "duration_s": None if entry.duration_s is None else round(entry.duration_s, 3),
            "frames": entry.frames, "host": entry.host, "run": entry.stream_id, "note": entry.note}


def as_run_csv(rows):
    """CSV of rows (as_run_rows), times in ISO 8601 to the millisecond."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: value.isoformat(timespec="milliseconds") if hasattr(value, "isoformat") else value
                         for key, value in row.items()})
    return out.getvalue()


def prune_as_run(now=None):
    """Delete entries that ended more than RETROVUE_ASRUN_RETENTION_DAYS ago; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.RETROVUE_ASRUN_RETENTION_DAYS)
    return AsRunEntry.objects.filter(actual_end__lt=cutoff).delete()[0]
