"""Beat's resource control loops: reconcile reservations with runs, migrate draining hosts."""
from celery import shared_task


@shared_task(name="resources.reconcile", ignore_result=True)
def reconcile_reservations():
    from .allocations import reconcile

    return reconcile()


@shared_task(name="resources.migrate_step", ignore_result=True)
def migrate_draining_hosts():
    from .services import migrate_step

    return migrate_step()
