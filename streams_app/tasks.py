"""Celery tasks: the long-lived stream supervisor (encode.<host> queues) and beat's control loops."""
from celery import shared_task

from .supervisor import Supervisor


@shared_task(name="streams.supervise", ignore_result=True, acks_late=False,
             time_limit=None, soft_time_limit=None)
def supervise_stream(stream_id):
    return Supervisor(stream_id).run()


@shared_task(name="streams.sweep_leases", ignore_result=True)
def sweep_leases():
    from .services import sweep_expired_leases

    return sweep_expired_leases()


@shared_task(name="streams.restart_failed_channels", ignore_result=True)
def restart_failed_channels():
    from channels_app.services import restart_failed_channels as restart

    return restart(only_due=True)


@shared_task(name="streams.evaluate_alerts", ignore_result=True)
def evaluate_alerts():
    from .alerts import evaluate_alerts as evaluate

    return evaluate()


@shared_task(name="streams.prune_metrics", ignore_result=True)
def prune_metrics():
    from .monitoring import prune_metric_samples

    return prune_metric_samples()
