"""Celery entry points: beat's delivery pass, also kicked right after each alert event."""
import logging

from celery import shared_task
from django.conf import settings

from streams_app.launch import SEND_RETRY

from . import delivery

log = logging.getLogger("retrovue.notifications")
DELIVER_TASK = "notifications.deliver_due"


@shared_task(name=DELIVER_TASK, ignore_result=True)
def deliver_notifications():
    return delivery.deliver_due()


def kick_delivery():
    """Deliver now rather than at beat's next pass; with the broker away, beat's pass still will."""
    try:
        deliver_notifications.apply_async(expires=settings.RETROVUE_NOTIFY_INTERVAL_SECONDS,
                                          retry_policy=SEND_RETRY)
    except Exception as exc:  # noqa: BLE001 - whatever the broker's client raises
        log.warning("notification delivery not kicked (%s); beat's next pass sends it", exc)
