"""Worker shutdown stops every supervisor; a stored switch wakes its engine; migrations create
beat's schedule idempotently, and a new health_check_interval in the system defaults moves beat's
health checks to it."""
from celery.signals import worker_shutting_down
from django.conf import settings
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from channels_app.signals import switch_requested, system_config_changed

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
    """(name, task, every seconds) of each control loop beat runs: failure detection (leases,
    draining hosts) every RETROVUE_LEASE_SWEEP_SECONDS, the health checks every health_check_interval."""
    every, health = settings.RETROVUE_LEASE_SWEEP_SECONDS, alert_interval()
    return [
        ("retrovue: sweep stream leases", "streams.sweep_leases", every),
        ("retrovue: evaluate alerts", "streams.evaluate_alerts", health),
        ("retrovue: forecast trends", "streams.evaluate_trends", health),
        ("retrovue: restart failed channels", "streams.restart_failed_channels", 10),
        ("retrovue: prune metric samples", "streams.prune_metrics", 600),
        ("retrovue: prune the as-run log and viewer sessions", "streams.prune_history", 3600),
        ("retrovue: stop idle on-demand channels", "streams.stop_idle_on_demand", 5),
        ("retrovue: reconcile reservations", "resources.reconcile", settings.RETROVUE_RECONCILE_SECONDS),
        ("retrovue: migrate draining hosts", "resources.migrate_step", every),
        ("retrovue: rescan media libraries", "library.rescan", settings.RETROVUE_LIBRARY_RESCAN_SECONDS),
        ("retrovue: extend rule-built schedules", "library.extend_programming", 600),
    ]


HEALTH_CHECKS = ("streams.evaluate_alerts", "streams.evaluate_trends")


@receiver(post_migrate)
def ensure_beat_schedule(sender, **_):
    if sender.name != "streams_app":
        return
    for name, task, every in beat_schedule():
        schedule(name, task, every)


def schedule(name, task, every):
    """Create or update beat's task `name` to run every `every` seconds on the control queue."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    interval, _created = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name=name, defaults={"task": task, "interval": interval, "queue": "control", "enabled": True})


@receiver(system_config_changed)
def follow_health_check_interval(sender, before, config, **_):
    """Within the transaction that stored it: beat picks up the changed tasks at its next tick."""
    if before["monitoring"]["health_check_interval"] == config["monitoring"]["health_check_interval"]:
        return
    for name, task, every in beat_schedule():
        if task in HEALTH_CHECKS:
            schedule(name, task, every)
