"""Handing a library scan to a worker (beat rescans the same way)."""
from datetime import timedelta

from celery import current_app
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from retrovue.errors import BrokerUnavailable, Conflict

from .models import Library

SCAN_TASK = "library.scan"
STALE_SCAN = timedelta(minutes=5)  # longer than any one probe (media.PROBE_TIMEOUT_S)
SEND_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def claimable(states, now):
    """Libraries in `states`, or queued or scanning but silent for STALE_SCAN (a worker that
    died mid-scan, or a task the broker lost)."""
    return Q(scan_state__in=states) | Q(scan_state__in=[Library.ScanState.QUEUED, Library.ScanState.SCANNING],
                                        scan_touched_at__lt=now - STALE_SCAN)


def queue_scan(library):
    """Mark the library QUEUED (compare-and-swap: a scan queued or under way is not queued
    twice) and send its task by name, before the commit: a broker that refuses it rolls the
    mark back (503), so the library never says QUEUED with no task on its way."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Library.objects.filter(claimable([Library.ScanState.IDLE, Library.ScanState.FAILED], now),
                                         pk=library.pk).update(scan_state=Library.ScanState.QUEUED,
                                                               scan_error="", scan_touched_at=now)
        if not claimed:
            raise Conflict(f"library {library.name} is already being scanned")
        try:
            current_app.send_task(SCAN_TASK, args=[library.pk], queue="control", retry_policy=SEND_RETRY)
        except Exception as exc:  # noqa: BLE001 - whatever the broker's client raises
            raise BrokerUnavailable(f"the broker is unavailable ({exc}); the scan was not queued") from None
    library.refresh_from_db()
    return library


def queue_idle_scans():
    """Beat's rescan: every library not queued or scanning (or silent too long); returns their names."""
    queued = []
    for library in Library.objects.filter(claimable([Library.ScanState.IDLE, Library.ScanState.FAILED],
                                                    timezone.now())):
        try:
            queue_scan(library)
        except Conflict:
            continue
        queued.append(library.name)
    return queued
