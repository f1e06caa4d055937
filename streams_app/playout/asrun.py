"""The engine's as-run log: each segment written when it goes on air and closed when it comes
off, at its frame-grid times (what the output stage was fed to show then), plus a row for each
interruption of the channel's output.

Why here: only the engine knows what really aired (a slate standing in for an unreadable file, a
switch cutting a program, a program ending early), and when to the frame. Its calls run on the
pacer's helper thread, so a database write never delays a frame; while the database is away the
rows are not written and the log has a hole, never a wrong entry.
"""
import logging

from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from ..models import AsRunEntry, Stream
from .feed import own_connection

log = logging.getLogger("retrovue.playout")


class AsRunLog:
    def __init__(self, channel_id, stream_id, host):
        self.channel_id, self.stream_id, self.host = channel_id, stream_id, host
        self.on_air_row = None  # pk of the row on air now
        self.first_row = self.gap_row = None  # pks of the run's first row and of the interruption before it

    @own_connection
    def on_air(self, segment, at, previous_frames=None):
        """`segment` went on air at `at`; the one before it (if this run aired one) came off then,
        after `previous_frames` frames."""
        try:
            with transaction.atomic():
                first = self.on_air_row is None
                if first:
                    self.gap_row = self.close_previous_run(at)
                else:
                    AsRunEntry.objects.filter(pk=self.on_air_row).update(actual_end=at, frames=previous_frames)
                self.on_air_row = AsRunEntry.objects.create(
                    channel_id=self.channel_id, stream_id=self.stream_id, host=self.host, kind=segment.kind,
                    title=segment.title, asset_id=segment.asset_id, source=segment.source or "",
                    scheduled_start=None if segment.kind == "switch" else segment.start,
                    scheduled_end=None if segment.kind == "switch" else segment.end,
                    actual_start=at, note=segment.description).pk
                self.first_row = self.on_air_row if first else self.first_row
        except DatabaseError as exc:
            self.on_air_row = None
            log.warning("channel %s: as-run not recorded: %s", self.channel_id, exc)

    @own_connection
    def off_air(self, at, frames, why):
        """The run's output ended at `at` (stopped, or its output stage died), or now if that is
        earlier: the pacer writes ahead of the screen, and what was queued when the output
        stopped never aired."""
        if self.on_air_row is None:
            return
        try:
            row = AsRunEntry.objects.get(pk=self.on_air_row)
            row.actual_end, row.frames = min(at, timezone.now()), frames
            row.note = "; ".join(filter(None, [row.note, why]))
            row.save(update_fields=["actual_end", "frames", "note"])
        except (DatabaseError, AsRunEntry.DoesNotExist) as exc:
            log.warning("channel %s: as-run end not recorded: %s", self.channel_id, exc)

    @own_connection
    def output_began(self, at):
        """The output stage's first output came at `at`, after the frame-grid start of the run's
        first segment (FFmpeg's start-up): that segment aired from then, and the interruption
        before it lasted until then."""
        try:
            with transaction.atomic():
                AsRunEntry.objects.filter(pk=self.first_row, actual_start__lt=at).filter(
                    Q(actual_end=None) | Q(actual_end__gt=at)).update(actual_start=at)
                AsRunEntry.objects.filter(pk=self.gap_row, actual_end__lt=at).update(actual_end=at)
        except DatabaseError as exc:
            log.warning("channel %s: as-run start not corrected: %s", self.channel_id, exc)

    def close_previous_run(self, at):
        """At a run's first segment: close what the channel's run before left on air (a lost host
        or a killed worker never wrote its end: its last heartbeat is the best known), and record
        the time between as an interruption unless an operator had stopped the channel (its pk)."""
        last = AsRunEntry.objects.filter(channel_id=self.channel_id).select_related("stream").last()
        if last is None or last.kind == AsRunEntry.Kind.INTERRUPTION:
            return None
        run = last.stream
        if last.actual_end is None:
            seen = run and (run.heartbeat_at or run.ended_at)
            last.actual_end = min(seen or at, at)
            last.note = "; ".join(filter(None, [last.note, "end not recorded: its run was lost"]))
            last.save(update_fields=["actual_end", "note"])
        stopped = run is not None and run.pk != self.stream_id and run.status == Stream.Status.STOPPED \
            and run.status_reason == "stopped"
        if stopped or at <= last.actual_end:
            return None
        why = ("the output stage restarted" if run is not None and run.pk == self.stream_id
               else run.status_reason if run is not None and run.status_reason else "its run ended")
        return AsRunEntry.objects.create(
            channel_id=self.channel_id, stream_id=self.stream_id, host=self.host, kind=AsRunEntry.Kind.INTERRUPTION,
            actual_start=last.actual_end, actual_end=at, note=why).pk
