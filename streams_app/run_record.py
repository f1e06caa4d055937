"""What one run's supervisor writes to the database, and how.

Every write is a compare-and-swap on (run, generation): a supervisor that lost its lease can
never overwrite the run that replaced it. The database may go away for a while: a write then
returns None (the outage is logged once, FFmpeg keeps running), metrics samples wait in a
bounded buffer, and the run's last words are retried until they land or the patience runs out.
"""
import collections
import logging

from django.db import DatabaseError, connection
from django.utils import timezone

from channels_app.models import Channel

from .models import MetricSample, Stream

log = logging.getLogger("retrovue.supervisor")
SAMPLE_BUFFER = 720


class RunRecord:
    def __init__(self, stream, generation, clock):
        self.stream, self.channel, self.generation, self.clock = stream, stream.channel, generation, clock
        self.down_since = None  # when the database went away (None: it answers)
        self.samples = collections.deque(maxlen=SAMPLE_BUFFER)

    def write(self, fn, *args, **kwargs):
        """Run one database call; while the database is away, log once and return None."""
        try:
            result = fn(*args, **kwargs)
        except DatabaseError as exc:
            if self.down_since is None:
                self.down_since = self.clock()
                log.warning("%s: database unavailable, FFmpeg keeps running: %s", self.channel, exc)
            connection.close()
            return None
        if self.down_since is not None:
            log.warning("%s: database back after %.1fs", self.channel, self.clock() - self.down_since)
            self.down_since = None
        return result

    def cas_stream(self, only_if=None, **changes):
        """Update our stream row only while it is still ours and active (and matches `only_if`);
        True if it was."""
        guard = {k: changes.pop(k) for k in list(changes) if k.startswith("status__")}
        guard.setdefault("status__in", Stream.ACTIVE)
        return bool(Stream.objects.filter(pk=self.stream.pk, generation=self.generation, **guard, **(only_if or {}))
                    .update(**changes))

    def cas_channel(self, only_from=None, **changes):
        rows = Channel.objects.filter(pk=self.channel.pk, generation=self.generation)
        if only_from:
            rows = rows.filter(status__in=only_from)
        return bool(rows.update(updated_at=timezone.now(), **changes))

    def add_sample(self, health, restart_count):
        self.samples.append(MetricSample(
            stream_id=self.stream.pk, channel_id=self.channel.pk, at=timezone.now(),
            restart_count=restart_count, **{k: health.get(k) for k in MetricSample.FIELDS}))

    def flush_samples(self):
        batch = list(self.samples)
        if batch and self.write(MetricSample.objects.bulk_create, batch) is not None:
            for _ in batch:
                self.samples.popleft()

    def write_final(self, writes, patience, wait):
        """The run's last words must land: retry while the database is away, up to `patience`
        (`wait(timeout=...)` between tries)."""
        deadline = self.clock() + patience
        pending = list(writes)
        while pending:
            if self.write(pending[0]) is None and self.down_since is not None:
                if self.clock() > deadline:
                    log.error("%s: could not record the end of the run; the sweep will", self.channel)
                    return
                wait(timeout=0.5)
                continue
            pending.pop(0)
