"""Celery tasks: the long-lived stream supervisor (encode.<host> queues) and beat's control loops.

Entry points only: each calls one service function."""
from celery import shared_task

from library_app import builder, jobs, scanning
from library_app.models import Library

from . import alerts, asrun, forecasts, lifecycle, monitoring, services, tuning
from . import supervisor
from .launch import SUPERVISE_TASK, SWITCH_TASK


@shared_task(name=SUPERVISE_TASK, ignore_result=True, acks_late=False,
             time_limit=None, soft_time_limit=None)
def supervise_stream(stream_id):
    if supervisor.recorded_run(stream_id) is None:
        return "never recorded"  # its start was rolled back after the task was sent
    return supervisor.Supervisor(stream_id).run()


@shared_task(name=SWITCH_TASK, ignore_result=True)
def switch_asked(stream_id):
    return supervisor.switch_asked(stream_id)


@shared_task(name="streams.sweep_leases", ignore_result=True)
def sweep_leases():
    return services.sweep_expired_leases()


@shared_task(name="streams.restart_failed_channels", ignore_result=True)
def restart_failed_channels():
    return lifecycle.restart_failed_channels(only_due=True)


@shared_task(name="streams.evaluate_alerts", ignore_result=True)
def evaluate_alerts():
    return alerts.evaluate_alerts()


@shared_task(name="streams.evaluate_trends", ignore_result=True)
def evaluate_trends():
    return forecasts.evaluate_trends()


@shared_task(name="streams.prune_metrics", ignore_result=True)
def prune_metrics():
    return monitoring.prune_metric_samples()


@shared_task(name="streams.stop_idle_on_demand", ignore_result=True)
def stop_idle_on_demand():
    return tuning.stop_idle_on_demand()


@shared_task(name="streams.prune_history", ignore_result=True)
def prune_history():
    """The as-run log and viewer sessions past their retention."""
    return {"as_run": asrun.prune_as_run(), "viewer_sessions": tuning.prune_viewer_sessions()}


@shared_task(name=jobs.SCAN_TASK, ignore_result=True)
def scan_library(library_id):
    library = Library.objects.filter(pk=library_id).first()
    return scanning.scan_library(library) if library else "no such library"


@shared_task(name="library.rescan", ignore_result=True)
def rescan_libraries():
    return jobs.queue_idle_scans()


@shared_task(name="library.extend_programming", ignore_result=True)
def extend_programming():
    return builder.extend_all()


@shared_task(name="resources.migrate_step", ignore_result=True)
def migrate_draining_hosts():
    return services.migrate_step()
