"""Alert events queue deliveries (streams_app sends alert_changed, knowing nothing of this app);
migrations create beat's delivery pass and the routes of RETROVUE_ALERT_WEBHOOKS."""
from django.conf import settings
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from streams_app.alerts import alert_changed

from .services import queue_alert_event, sync_environment_routes
from .tasks import DELIVER_TASK, kick_delivery


@receiver(alert_changed)
def notify(sender, alert, event, **_):
    if queue_alert_event(alert, event):
        kick_delivery()


@receiver(post_migrate)
def ensure_delivery_schedule(sender, **_):
    """Beat's delivery pass, each run expiring after one interval so a backlog never piles up."""
    if sender.name != "notifications_app":
        return
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = settings.RETROVUE_NOTIFY_INTERVAL_SECONDS
    interval, _created = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="retrovue: deliver notifications",
        defaults={"task": DELIVER_TASK, "interval": interval, "queue": "control", "enabled": True,
                  "expire_seconds": every})
    sync_environment_routes()
