"""What the playout pacer needs from the database: the timeline, decoders, switch requests.

Runs on the pacer's thread. Reads happen at segment boundaries and every few frames for a
switch; if the database is away the channel airs the slate rather than going silent.
"""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from channels_app import programming, timeline
from channels_app.models import Channel, MediaAsset

from .ffmpeg import playout_format
from .playout import Decoder, Pacer

log = logging.getLogger("retrovue.playout")
SLATE_WHILE_AWAY = timedelta(seconds=5)


class Airing:
    """Binds one channel's playout to its schedule."""

    def __init__(self, channel_id, plan):
        self.channel_id, self.plan = channel_id, plan
        self.fmt = playout_format(plan)
        self.has_audio = {}
        self.since = timezone.now()  # switch requests from before this airing began are stale

    def upcoming(self, at):
        try:
            close_old_connections()
            channel = Channel.objects.select_related("current_schedule").get(pk=self.channel_id)
            return programming.channel_segments(channel, since=at, until=at + timedelta(hours=1))
        except DatabaseError as exc:
            log.warning("channel %s: timeline unavailable (%s); airing the slate", self.channel_id, exc)
            return [timeline.Segment(at, at + SLATE_WHILE_AWAY, "slate", None, 0.0)]

    def make_decoder(self, segment, frames, samples):
        return Decoder(self.plan.ffmpeg, segment, self.fmt, frames, samples,
                       has_audio=self.asset_has_audio(segment.asset_id),
                       slate_text=str(self.plan.slate_text_file))

    def asset_has_audio(self, asset_id):
        if asset_id is None:
            return True
        if asset_id not in self.has_audio:
            codec = MediaAsset.objects.filter(pk=asset_id).values_list("audio_codec", flat=True).first()
            self.has_audio[asset_id] = bool(codec)
        return self.has_audio[asset_id]

    def poll_switch(self):
        """Take a pending switch request (compare-and-swap, so it is taken once); one asked
        before this airing began (the channel was stopped) is cleared, not aired."""
        try:
            row = (Channel.objects.filter(pk=self.channel_id, switch_requested_at__isnull=False)
                   .values("switch_asset_id", "switch_requested_at").first())
            stale = row and row["switch_requested_at"] < self.since
            if not row or not Channel.objects.filter(
                    pk=self.channel_id, switch_requested_at=row["switch_requested_at"]).update(
                    switch_asset=None, switch_requested_at=None):
                return None
            if stale:
                log.info("channel %s: dropped a switch asked before this airing began", self.channel_id)
                return None
            asset = MediaAsset.objects.get(pk=row["switch_asset_id"])
        except (DatabaseError, MediaAsset.DoesNotExist) as exc:
            log.warning("channel %s: switch not taken: %s", self.channel_id, exc)
            return None
        now = timezone.now()
        return timeline.Segment(now, now + timedelta(seconds=asset.duration_s), "program", asset.source, 0.0,
                                title=asset.title, asset_id=asset.pk)

    def start(self, video_fd, audio_fd):
        pacer = Pacer(self.fmt, video_fd, audio_fd, self.upcoming, self.make_decoder, self.poll_switch,
                      lead_seconds=settings.RETROVUE_PLAYOUT_LEAD_SECONDS)
        pacer.start()
        return pacer
