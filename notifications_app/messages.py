"""What a notification says: one JSON body for webhooks (the alert's fields plus a one-line
Slack-compatible `text`) and a subject and body for email."""
from dataclasses import dataclass

from .models import Notification

ICONS = {"CRITICAL": ":red_circle:", "WARNING": ":warning:", "resolved": ":white_check_mark:",
         "test": ":information_source:"}


@dataclass(frozen=True)
class Message:
    subject: str
    payload: dict

    @property
    def text(self):
        return self.payload["text"]

    @property
    def body(self):
        """The email body: the text line, then each field."""
        fields = [f"{key}: {value}" for key, value in self.payload.items()
                  if key != "text" and value not in (None, "")]
        return "\n".join([self.text, "", *fields]) + "\n"


def _iso(moment):
    return moment.isoformat(timespec="seconds") if moment else None


def _one_line(text):
    return " ".join(str(text).split())


def subject_of(alert):
    """'channel 3 (News)' or 'host enc-1'."""
    if alert.channel:
        return f"channel {alert.channel.number} ({alert.channel.name})"
    return f"host {alert.host}"


def alert_message(alert, event):
    """The message of an alert's raise ("firing") or clear ("resolved")."""
    firing = event == Notification.Event.RAISED
    state = "firing" if firing else "resolved"
    label = alert.severity if firing else "RESOLVED"
    icon = ICONS[alert.severity if firing else "resolved"]
    headline = f"[{label}] {alert.kind} on {subject_of(alert)}"
    channel = alert.channel
    payload = {
        "text": f"{icon} {headline} — {_one_line(alert.message)}",
        "state": state,
        "alert_id": alert.pk,
        "kind": alert.kind,
        "severity": alert.severity,
        "channel": channel.number if channel else None,
        "channel_name": channel.name if channel else None,
        "host": alert.host,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "raised_at": _iso(alert.raised_at),
        "cleared_at": _iso(alert.cleared_at),
    }
    return Message(subject=f"[RetroVue] {headline}", payload=payload)


def trial_message(route):
    """What 'send test notification' sends: proof the route reaches someone, about no alert."""
    text = f"{ICONS['test']} RetroVue test notification for route '{route.name}'"
    return Message(subject="[RetroVue] test notification",
                   payload={"text": text, "state": "test", "route": route.name})
