"""Recording a new run of a channel and handing it to its host's worker."""
from celery import current_app
from django.db import transaction
from django.utils import timezone

from channels_app.models import Channel
from resources_app.allocations import reserve

from .models import Stream

SUPERVISE_TASK = "streams.supervise"


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
