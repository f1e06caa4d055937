"""Worker shutdown stops every supervisor; a stored switch wakes its engine; migrations create
beat's schedule idempotently."""
from celery.signals import worker_shutting_down
from django.conf import settings
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from channels_app.signals import switch_requested

from .alerts import alert_interval
from .launch import tell_switch
from .supervisor import shutdown_all


@worker_shutting_down.connect
def stop_supervisors(**_):
    shutdown_all()


@receiver(switch_requested)
def wake_engine(sender, channel, **_):
    tell_switch(channel)


def beat_schedule():
    """(name, task, every seconds) of each control loop beat runs."""
    every = settings.RETROVUE_HEALTH_CHECK_INTERVAL
    return [
        ("retrovue: sweep stream leases", "streams.sweep_leases", every),
        ("retrovue: evaluate alerts", "streams.evaluate_alerts", alert_interval()),
        ("retrovue: forecast trends", "streams.evaluate_trends", 60),
        ("retrovue: restart failed channels", "streams.restart_failed_channels", 10),
        ("retrovue: prune metric samples", "streams.prune_metrics", 600),
        ("retrovue: prune the as-run log", "streams.prune_as_run", 3600),
        ("retrovue: stop idle on-demand channels", "streams.stop_idle_on_demand", 5),
        ("retrovue: reconcile reservations", "resources.reconcile", settings.RETROVUE_RECONCILE_SECONDS),
        ("retrovue: migrate draining hosts", "resources.migrate_step", every),
    ]


@receiver(post_migrate)
def ensure_beat_schedule(sender, **_):
    if sender.name != "streams_app":
        return
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, task, every in beat_schedule():
        interval, _created = IntervalSchedule.objects.get_or_create(
            every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": interval, "queue": "control", "enabled": True})
