"""Recording a new run of a channel and handing it to its host's worker; telling a running
engine that a switch waits for it."""
import logging

from celery import current_app
from django.db import transaction
from django.utils import timezone

from channels_app.models import Channel
from resources_app.allocations import reserve
from resources_app.models import EncodeHost

from .models import Stream

log = logging.getLogger("retrovue.launch")
SUPERVISE_TASK = "streams.supervise"
SWITCH_TASK = "streams.switch_asked"


def launch_run(channel, host):
    """Inside the caller's transaction (channel row locked, host admitted): bump the generation,
    which fences off any older run, record the new run with its reservation, and queue its
    supervisor once the commit is durable."""
    channel.generation += 1
    channel.desired_state = Channel.Desired.RUNNING
    channel.status = Channel.Status.STARTING
    channel.status_reason = ""
    channel.save(update_fields=["generation", "desired_state", "status", "status_reason", "updated_at"])
    stream = Stream.objects.create(channel=channel, host=host.name, generation=channel.generation,
                                   heartbeat_at=timezone.now())
    reserve(channel, host, stream)
    # By name: the task module is an entry point above this one.
    transaction.on_commit(lambda: current_app.send_task(SUPERVISE_TASK, args=[stream.pk], queue=host.queue))
    return stream


def tell_switch(channel):
    """Once the switch request is committed, wake the engine airing `channel` through its host's
    queue. A lost wake-up (the broker away) costs only time: the engine's slow poll finds it."""
    run = Stream.objects.filter(channel=channel, status__in=Stream.ACTIVE).order_by("-generation").first()
    if run is None:
        return

    def send():
        try:
            current_app.send_task(SWITCH_TASK, args=[run.pk], queue=EncodeHost(name=run.host).queue,
                                  expires=10, retry=False)
        except Exception as exc:  # noqa: BLE001 - any broker failure: the slow poll covers it
            log.warning("channel %s: switch wake-up not sent (%s); the engine polls for it", channel.number, exc)

    transaction.on_commit(send)
