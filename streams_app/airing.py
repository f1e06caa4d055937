"""What the playout pacer needs from the database: the timeline, decoders, switch requests.

Runs on the pacer's thread. Reads happen at segment boundaries and every few frames for a
switch; if the database is away the channel airs the slate rather than going silent.
"""
import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from channels_app import programming, timeline
from channels_app.models import Channel, MediaAsset

from . import copy_playout
from .ffmpeg import copy_reader_argv, playout_format
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


class CopyAiring(Airing):
    """A copy channel's playout: segments read as they are (`copy_playout`), the slate from a
    clip encoded once in the channel's format and aired in pieces no longer than the clip."""

    def __init__(self, channel_id, plan):
        super().__init__(channel_id, plan)
        self.slate = None
        self.copies_audio = plan.sections["stream_settings"].get("audio_codec", "copy") == "copy"

    def upcoming(self, at):
        pieces = []
        for segment in super().upcoming(at):
            start = segment.start
            while segment.kind == "slate" and segment.end - start > copy_playout.SLATE_PIECE:
                pieces.append(timeline.Segment(start, start + copy_playout.SLATE_PIECE, "slate", None, 0.0,
                                               title=segment.title))
                start += copy_playout.SLATE_PIECE
            pieces.append(segment if start == segment.start else
                          timeline.Segment(start, segment.end, "slate", None, 0.0, title=segment.title))
        return pieces

    def slate_path(self):
        if self.slate is None:
            self.slate = copy_playout.slate_clip(self.plan, self.fmt)
        return self.slate

    def make_decoder(self, segment, frames, samples):
        if segment.source:
            source, in_point = segment.source, segment.in_point
            has_audio = self.copies_audio or self.asset_has_audio(segment.asset_id)
        else:
            source, in_point, has_audio = str(self.slate_path()), 0.0, True
        seconds = float(frames / self.fmt.fps)
        return copy_playout.Reader(copy_reader_argv(self.plan, source, in_point, seconds, has_audio),
                                   self.fmt, frames)

    def start(self, out_fd):
        pacer = copy_playout.CopyPacer(self.fmt, out_fd, self.upcoming, self.make_decoder, self.poll_switch,
                                       lead_seconds=copy_playout.LEAD_SECONDS)
        # The slate clip is made once per format; start on it now rather than at the first gap.
        threading.Thread(target=self.slate_path, name="copy-slate", daemon=True).start()
        pacer.start()
        return pacer
