"""Recording a new run of a channel and handing it to its host's worker; telling a running
engine that a switch waits for it."""
import logging

from celery import current_app
from django.db import transaction
from django.utils import timezone

from channels_app.models import Channel
from resources_app.allocations import reserve
from resources_app.models import EncodeHost
from retrovue.errors import BrokerUnavailable

from .models import Stream

log = logging.getLogger("retrovue.launch")
SUPERVISE_TASK = "streams.supervise"
SWITCH_TASK = "streams.switch_asked"
# A connection gone stale is made again at once; a broker that is down refuses within a second.
SEND_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def launch_run(channel, host):
    """Inside the caller's transaction (channel row locked, host admitted): bump the generation,
    which fences off any older run, record the new run with its reservation, and queue its
    supervisor. The task is sent before the commit: if the broker refuses it, BrokerUnavailable
    rolls the transaction back (a start is refused, never half-made); the supervisor waits for
    the commit when its task comes first (`supervisor.recorded_run`)."""
    channel.generation += 1
    channel.desired_state = Channel.Desired.RUNNING
    channel.status = Channel.Status.STARTING
    channel.status_reason = ""
    channel.save(update_fields=["generation", "desired_state", "status", "status_reason", "updated_at"])
    stream = Stream.objects.create(channel=channel, host=host.name, generation=channel.generation,
                                   heartbeat_at=timezone.now())
    reserve(channel, host, stream)
    try:  # by name: the task module is an entry point above this one
        current_app.send_task(SUPERVISE_TASK, args=[stream.pk], queue=host.queue, retry_policy=SEND_RETRY)
    except Exception as exc:  # noqa: BLE001 - whatever the broker's client raises
        raise BrokerUnavailable(f"the broker is unavailable ({exc}); channel {channel.number} was not started") \
            from None
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
                                  expires=10, retry_policy=SEND_RETRY)
        except Exception as exc:  # noqa: BLE001 - any broker failure: the slow poll covers it
            log.warning("channel %s: switch wake-up not sent (%s); the engine polls for it", channel.number, exc)

    transaction.on_commit(send)
