"""Sending notifications: webhook POSTs and email, retried with exponential backoff.

deliver_due(now) is the step beat runs (and each alert event kicks): it claims each pending
notification that is due, sends it once, and records the outcome. A claim moves the
notification's next attempt past the send's timeout, so two passes at once never send one
twice, and a pass that dies mid-send leaves it to be tried again after the claim runs out.
"""
import json
import smtplib
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Exists, OuterRef
from django.utils import timezone

from .messages import alert_message, trial_message
from .models import Notification, NotificationRoute

FIRST_RETRY_SECONDS = 10
BACKOFF_FACTOR = 3
MAX_BACKOFF_SECONDS = 3600
BATCH = 100
ERROR_BODY_CHARS = 200


class DeliveryError(Exception):
    """The receiver refused or could not be reached; the message says what it answered."""


def backoff(attempts):
    """Seconds before the next try after `attempts` failed ones: 10, 30, 90, ... up to an hour."""
    return min(FIRST_RETRY_SECONDS * BACKOFF_FACTOR ** (attempts - 1), MAX_BACKOFF_SECONDS)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured: report it rather than re-send elsewhere."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_json(url, payload):
    """POST the payload as JSON; DeliveryError unless the receiver answers 2xx in time."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "RetroVue"})
    where = urlsplit(url).netloc
    try:
        with _opener.open(request, timeout=settings.RETROVUE_NOTIFY_TIMEOUT_SECONDS) as response:
            response.read(ERROR_BODY_CHARS)
    except urllib.error.HTTPError as exc:
        answer = exc.read(ERROR_BODY_CHARS).decode(errors="replace").strip()
        raise DeliveryError(f"{where} answered HTTP {exc.code}{': ' + answer if answer else ''}") from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"{where}: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # a timeout while reading, a malformed answer
        raise DeliveryError(f"{where}: {exc or type(exc).__name__}") from None


def send_email(addresses, message):
    try:
        send_mail(message.subject, message.body, None, addresses, fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"mail to {', '.join(addresses)} via {settings.EMAIL_HOST}:{settings.EMAIL_PORT}: "
                            f"{exc or type(exc).__name__}") from None


def send(route, message):
    """Send one message to the route's receiver, or raise DeliveryError."""
    if route.kind == NotificationRoute.Kind.EMAIL:
        send_email(route.addresses, message)
    else:
        post_json(route.target, message.payload)


def send_trial(route):
    """Send the route a test message now; returns what happened for the API, admin and CLI."""
    try:
        send(route, trial_message(route))
    except DeliveryError as exc:
        return {"route": route.pk, "sent": False, "detail": str(exc)}
    return {"route": route.pk, "sent": True, "detail": f"test notification sent to {route.target}"}


def claim(notification, now):
    """Take a due notification for this pass; False when another pass took it first."""
    hold = now + timedelta(seconds=settings.RETROVUE_NOTIFY_TIMEOUT_SECONDS * 2 + 30)
    taken = Notification.objects.filter(pk=notification.pk, status=Notification.Status.PENDING,
                                        next_attempt_at=notification.next_attempt_at) \
        .update(next_attempt_at=hold)
    return bool(taken)


def attempt(notification, now):
    """Send once and record it: "sent", "retrying" (next try after the backoff) or "failed"."""
    notification.attempts += 1
    try:
        send(notification.route, alert_message(notification.alert, notification.event))
    except DeliveryError as exc:
        notification.last_error = str(exc)
        if notification.attempts >= settings.RETROVUE_NOTIFY_MAX_ATTEMPTS:
            notification.status, outcome = Notification.Status.FAILED, "failed"
        else:
            notification.next_attempt_at = now + timedelta(seconds=backoff(notification.attempts))
            outcome = "retrying"
    else:
        notification.status, notification.sent_at, outcome = Notification.Status.SENT, now, "sent"
    notification.save(update_fields=["attempts", "status", "next_attempt_at", "last_error", "sent_at"])
    return outcome


def deliver_due(now=None):
    """Send every pending notification due at `now` (of enabled routes), oldest first; returns
    the ids by outcome: {"sent": [...], "retrying": [...], "failed": [...]}. A clear waits while
    its raise is still being retried, so no receiver hears "resolved" before "firing"."""
    now = now or timezone.now()
    done = {"sent": [], "retrying": [], "failed": []}
    raise_pending = Notification.objects.filter(route=OuterRef("route"), alert=OuterRef("alert"),
                                                event=Notification.Event.RAISED, status=Notification.Status.PENDING)
    due = Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lte=now,
                                      route__enabled=True) \
        .exclude(Exists(raise_pending), event=Notification.Event.CLEARED) \
        .select_related("route", "alert__channel").order_by("next_attempt_at", "pk")[:BATCH]
    for notification in due:
        if claim(notification, now):
            done[attempt(notification, now)].append(notification.pk)
    return done
