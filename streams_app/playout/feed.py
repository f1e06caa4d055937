"""The engine's timeline from the database: what airs from a moment on, and switch requests.

Runs on the pacer's helper thread, at segment boundaries and when a switch is asked for, so
a change of schedule or playlist airs from the next segment and a switch at once. If the
database is away the channel airs the slate rather than going silent.
"""
import functools
import logging
from datetime import timedelta

from django.db import DatabaseError, connection
from django.utils import timezone

from channels_app import programming, timeline
from channels_app.models import Channel, MediaAsset

from ..alerts import raise_alert
from ..models import Alert

log = logging.getLogger("retrovue.playout")
SLATE_WHILE_AWAY = timedelta(seconds=5)


def own_connection(method):
    """A call that opens its connection and closes it after: the engine's threads ask seldom (at
    boundaries), and a connection kept by each would put two per channel on the database server
    (PostgreSQL's default of 100 is reached near 50 channels a host)."""
    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        finally:
            connection.close()
    return call


class ChannelFeed:
    def __init__(self, channel_id):
        self.channel_id = channel_id
        self.audio = {}
        self.since = timezone.now()  # switch requests from before this run began are stale

    @own_connection
    def upcoming(self, at):
        try:
            channel = Channel.objects.select_related("current_schedule").get(pk=self.channel_id)
            return programming.upcoming(channel, at)
        except DatabaseError as exc:
            log.warning("channel %s: timeline unavailable (%s); airing the slate", self.channel_id, exc)
            return [timeline.Segment(at, at + SLATE_WHILE_AWAY, "slate", None, 0.0)]

    @own_connection
    def unreadable(self, segment, reason):
        """An alert that names the source the slate stands in for, and why."""
        try:
            raise_alert(Alert.Kind.SOURCE_FAILED, f"{segment.source} cannot be read: {reason}",
                        channel_id=self.channel_id, severity=Alert.Severity.CRITICAL)
        except DatabaseError as exc:
            log.warning("channel %s: alert not recorded: %s", self.channel_id, exc)

    @own_connection
    def has_audio(self, segment):
        if segment.asset_id is None:
            return True
        if segment.asset_id not in self.audio:
            codec = MediaAsset.objects.filter(pk=segment.asset_id).values_list("audio_codec", flat=True).first()
            self.audio[segment.asset_id] = bool(codec)
        return self.audio[segment.asset_id]

    @own_connection
    def poll_switch(self):
        """Take a pending switch request (compare-and-swap, so it is taken once); one asked
        before this run began (the channel was stopped) is cleared, not aired."""
        try:
            row = (Channel.objects.filter(pk=self.channel_id, switch_requested_at__isnull=False)
                   .values("switch_asset_id", "switch_requested_at").first())
            stale = row and row["switch_requested_at"] < self.since
            if not row or not Channel.objects.filter(
                    pk=self.channel_id, switch_requested_at=row["switch_requested_at"]).update(
                    switch_asset=None, switch_requested_at=None):
                return None
            if stale:
                log.info("channel %s: dropped a switch asked before this run began", self.channel_id)
                return None
            asset = MediaAsset.objects.get(pk=row["switch_asset_id"])
        except (DatabaseError, MediaAsset.DoesNotExist) as exc:
            log.warning("channel %s: switch not taken: %s", self.channel_id, exc)
            return None
        now = timezone.now()
        return timeline.Segment(now, now + timedelta(seconds=asset.duration_s), "switch", asset.source, 0.0,
                                title=asset.title, asset_id=asset.pk)
