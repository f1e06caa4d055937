"""Where alerts go (routes) and each delivery of one alert event to one route (notifications)."""
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from streams_app.models import Alert

SEVERITY_RANK = {Alert.Severity.WARNING: 0, Alert.Severity.CRITICAL: 1}
MAX_ADDRESSES = 20
ENVIRONMENT_PREFIX = "env: "  # the names of the routes RETROVUE_ALERT_WEBHOOKS defines


def check_webhook_url(url):
    """An http(s) URL with a host and a valid port, or ValidationError."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or any(c.isspace() for c in url):
        raise ValidationError(f"'{url[:100]}' is not an http:// or https:// URL with a host")
    return url


def email_addresses(target):
    """The comma-separated addresses of an email route, each checked, or ValidationError."""
    addresses = [part.strip() for part in target.split(",") if part.strip()]
    if not addresses:
        raise ValidationError("give one or more email addresses, separated by commas")
    if len(addresses) > MAX_ADDRESSES:
        raise ValidationError(f"at most {MAX_ADDRESSES} addresses")
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"'{address[:100]}' is not an email address") from None
    return addresses


def check_kinds(kinds):
    if not isinstance(kinds, list) or not all(isinstance(k, str) and k in Alert.Kind.values for k in kinds):
        raise ValidationError(f"a list of alert kinds, each one of {', '.join(Alert.Kind.values)} "
                              "(empty: every kind)")


class NotificationRoute(models.Model):
    """A receiver of alerts (a webhook or email addresses) and which alerts it wants: empty
    filters match everything. Routes named 'env: <url>' come from RETROVUE_ALERT_WEBHOOKS."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook"
        EMAIL = "email"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target = models.TextField(help_text="webhook: an http(s) URL; email: addresses separated by commas")
    min_severity = models.CharField(max_length=10, choices=Alert.Severity.choices,
                                    default=Alert.Severity.WARNING)
    kinds = models.JSONField(default=list, blank=True, validators=[check_kinds],
                             help_text=f"alert kinds, e.g. [\"STALL\", \"HOST_LOST\"]; [] for every kind "
                                       f"({', '.join(Alert.Kind.values)})")
    channel = models.ForeignKey("channels_app.Channel", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="notification_routes", help_text="only this channel's alerts")
    host = models.CharField(max_length=100, blank=True, default="", help_text="only alerts of this host")
    enabled = models.BooleanField(default=True)
    send_resolved = models.BooleanField(default=True, help_text="also tell when an alert clears")
    from_environment = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.name.startswith(ENVIRONMENT_PREFIX) and not self.from_environment:
            raise ValidationError({"name": f"names starting with '{ENVIRONMENT_PREFIX}' are kept for "
                                           "RETROVUE_ALERT_WEBHOOKS"})
        try:
            self.target = clean_target(self.kind, self.target)
        except ValidationError as exc:
            raise ValidationError({"target": exc.messages}) from None

    def matches(self, alert):
        """True when the alert passes every filter of this route."""
        return (SEVERITY_RANK[alert.severity] >= SEVERITY_RANK[self.min_severity]
                and (not self.kinds or alert.kind in self.kinds)
                and self.channel_id in (None, alert.channel_id)
                and self.host in ("", alert.host))

    @property
    def addresses(self):
        return email_addresses(self.target)


def clean_target(kind, target):
    """The target as stored (email addresses joined by ', '), or ValidationError."""
    target = (target or "").strip()
    if kind == NotificationRoute.Kind.EMAIL:
        return ", ".join(email_addresses(target))
    return check_webhook_url(target)


class Notification(models.Model):
    """One alert event for one route: created once (the unique constraint is the de-duplication),
    then tried until sent or out of attempts."""

    class Event(models.TextChoices):
        RAISED = "raised"
        CLEARED = "cleared"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    route = models.ForeignKey(NotificationRoute, on_delete=models.CASCADE, related_name="notifications")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=10, choices=Event.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["route", "alert", "event"],
                                               name="one_notification_per_route_alert_event")]

    def __str__(self):
        return f"{self.alert.kind} {self.event} to {self.route}: {self.status}"
