"""Beat's resource control loop: reconcile reservations with runs (the migration of draining
hosts re-places runs: streams_app.tasks)."""
from celery import shared_task

from . import allocations


@shared_task(name="resources.reconcile", ignore_result=True)
def reconcile_reservations():
    return allocations.reconcile()
