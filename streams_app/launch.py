"""Recording a new run of a channel and handing it to its host's worker."""
from django.db import transaction
from django.utils import timezone

from channels_app.models import Channel

from .models import Stream


def launch_run(channel, host):
    """Inside the caller's transaction (channel row locked, host admitted): bump the generation,
    which fences off any older run, record the new run with its reservation, and queue its
    supervisor once the commit is durable."""
    from resources_app.allocations import reserve

    from .tasks import supervise_stream

    channel.generation += 1
    channel.desired_state = Channel.Desired.RUNNING
    channel.status = Channel.Status.STARTING
    channel.status_reason = ""
    channel.save(update_fields=["generation", "desired_state", "status", "status_reason", "updated_at"])
    stream = Stream.objects.create(channel=channel, host=host.name, generation=channel.generation,
                                   heartbeat_at=timezone.now())
    reserve(channel, host, stream)
    transaction.on_commit(lambda: supervise_stream.apply_async(args=[stream.pk], queue=host.queue))
    return stream
