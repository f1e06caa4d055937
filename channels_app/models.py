"""Channels and their configuration: the desired state of every channel lives here."""
import uuid

from django.db import models
from django.db.models import F, FilteredRelation, Q


class ChannelQuerySet(models.QuerySet):
    def with_runtime(self):
        """Annotate the host and start time of each channel's current run (its run of the
        current generation, through the runs' reverse relation) in one query."""
        return self.annotate(
            current_run=FilteredRelation("streams", condition=Q(streams__generation=F("generation"))),
            current_host=F("current_run__host"),
            current_started_at=F("current_run__started_at"),
            current_heartbeat_at=F("current_run__heartbeat_at"),
            current_on_air=F("current_run__health_metrics__on_air"),  # what its engine reports
        )


class Channel(models.Model):
    class Status(models.TextChoices):
        STOPPED = "STOPPED"
        STARTING = "STARTING"
        RUNNING = "RUNNING"
        STOPPING = "STOPPING"
        ERROR = "ERROR"

    class Desired(models.TextChoices):
        RUNNING = "RUNNING"
        STOPPED = "STOPPED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    number = models.PositiveIntegerField(unique=True)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STOPPED)
    status_reason = models.TextField(blank=True, default="")
    desired_state = models.CharField(max_length=10, choices=Desired.choices, default=Desired.STOPPED)
    # Ordered media file paths, looped; empty plays the generated slate.
    playlist = models.JSONField(default=list, blank=True)
    # When the playlist's first loop began (set when it changes; unset: when the channel was made).
    playlist_started_at = models.DateTimeField(null=True, blank=True)
    # Bumped at every placement; a supervisor whose generation is stale must stop (fencing).
    generation = models.PositiveIntegerField(default=0)
    # The schedule on air; without one the channel loops its playlist (or the slate).
    # RESTRICT: the schedule on air cannot vanish from under its channel (deleting the channel
    # still takes its schedules with it).
    current_schedule = models.ForeignKey("Schedule", null=True, blank=True, on_delete=models.RESTRICT,
                                         related_name="+")
    # A ContentSwitcher request: play this asset now, then rejoin the schedule.
    switch_asset = models.ForeignKey("MediaAsset", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    switch_requested_at = models.DateTimeField(null=True, blank=True)
    # Runs only while someone watches: a tune starts it, RETROVUE_ON_DEMAND_IDLE_SECONDS without a
    # viewer stops it (streams_app/tuning.py).
    on_demand = models.BooleanField(default=False)
    # The logo's file name under RETROVUE_DATA_DIR/logos/ (channels_app/logos.py); blank: none.
    logo = models.CharField(max_length=64, blank=True, default="")
    # The M3U's group-title; blank: "RetroVue".
    group = models.CharField(max_length=50, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["number"]

    def __str__(self):
        return f"{self.number} {self.name}"

    def get_absolute_url(self):
        """The channel's dashboard page: the admin's "View on site" button leads there."""
        from django.urls import reverse

        return reverse("channel", args=[self.number])


class ViewerSession(models.Model):
    """One viewer of a channel: an HTTP TS connection (a player or a tuner client) from connect
    to close, or an HLS client (by address and token) while its requests keep coming. Counted for
    tune-ins, concurrent viewers and watch time; an on-demand channel runs while one is seen."""

    class Kind(models.TextChoices):
        TS = "ts", "HTTP MPEG-TS"
        HLS = "hls", "HLS"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="viewers")
    kind = models.CharField(max_length=3, choices=Kind.choices)
    client = models.CharField(max_length=100)  # address, and for HLS the token or user agent
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["channel", "last_seen_at"]), models.Index(fields=["started_at"])]

    @property
    def watched_s(self):
        return ((self.ended_at or self.last_seen_at) - self.started_at).total_seconds()

    def __str__(self):
        return f"{self.get_kind_display()} viewer {self.client} of {self.channel}"


class ChannelConfig(models.Model):
    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="config")
    stream_settings = models.JSONField(default=dict)
    quality_settings = models.JSONField(default=dict)
    network_settings = models.JSONField(default=dict)
    resource_limits = models.JSONField(default=dict)
    # auto_restart, max_restart_attempts, restart_delay_seconds; missing keys use the system defaults.
    failover_settings = models.JSONField(default=dict, blank=True)
    # host (a host name) and/or label (a host label such as nvenc): where the channel may run.
    placement_settings = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    SECTIONS = ("stream_settings", "quality_settings", "network_settings", "resource_limits",
                "failover_settings", "placement_settings")

    def sections(self):
        return {name: getattr(self, name) for name in self.SECTIONS}

    def failover(self):
        """The channel's restart policy: its own keys over the system defaults' failover_settings."""
        from .system_config import system_config  # it reads this module's SystemConfig

        return {**system_config()["failover_settings"], **(self.failover_settings or {})}

    def __str__(self):
        return f"config of {self.channel}"


class MediaAsset(models.Model):
    """A playable file (under the media roots) or http(s) URL, probed with ffprobe on import."""

    source = models.CharField(max_length=1000, unique=True)
    title = models.CharField(max_length=200, blank=True, default="")
    duration_s = models.FloatField()
    video_codec = models.CharField(max_length=32, blank=True, default="")
    audio_codec = models.CharField(max_length=32, blank=True, default="")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    frame_rate = models.FloatField(null=True, blank=True)
    audio_sample_rate = models.PositiveIntegerField(null=True, blank=True)
    probed_at = models.DateTimeField(auto_now=True)
    # What a library scan found (library_app/metadata.py): from the file's name and folders,
    # Kodi .nfo files, embedded tags and artwork beside it. `title` is the episode's or movie's.
    kind = models.CharField(max_length=6, blank=True, default="")  # "show", "movie" or "" (other)
    show = models.CharField(max_length=200, blank=True, default="", db_index=True)
    season = models.PositiveIntegerField(null=True, blank=True)
    episode = models.PositiveIntegerField(null=True, blank=True)
    episode_end = models.PositiveIntegerField(null=True, blank=True)  # S01E02E03: 3
    plot = models.TextField(blank=True, default="")
    genres = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    year = models.PositiveIntegerField(null=True, blank=True)
    content_rating = models.CharField(max_length=20, blank=True, default="")
    artwork = models.CharField(max_length=1000, blank=True, default="")  # an image file's path
    chapters = models.JSONField(default=list, blank=True)  # chapter start times, seconds
    # The file as scanned: a rescan probes again only when these change.
    file_size = models.BigIntegerField(null=True, blank=True)
    file_mtime = models.FloatField(null=True, blank=True)
    # Set when a scan no longer finds the file: it is never aired (the timeline skips it).
    missing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source"]

    def __str__(self):
        return self.title or self.source

    @property
    def resolution(self):
        return f"{self.width}x{self.height}" if self.width and self.height else ""


class Schedule(models.Model):
    """A channel's programming: ordered programs, optionally looping their block every day."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="schedules")
    timezone = models.CharField(max_length=64, default="UTC")
    loop = models.BooleanField(default=False, help_text="repeat the block of programs every day")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"schedule {self.pk} of {self.channel}"


class Program(models.Model):
    """One scheduled airing of an asset: at `start`, or right after the previous program."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="programs")
    position = models.PositiveIntegerField()
    asset = models.ForeignKey(MediaAsset, on_delete=models.PROTECT, related_name="programs")
    start = models.DateTimeField(null=True, blank=True)
    in_point = models.FloatField(null=True, blank=True)
    out_point = models.FloatField(null=True, blank=True)
    title = models.CharField(max_length=200, blank=True, default="")
    description = models.TextField(blank=True, default="")
    # Which rule placed it (library_app/builder.py: a stream key such as "block0", "filler");
    # blank: placed by hand, which rules build around and never replace.
    origin = models.CharField(max_length=40, blank=True, default="")

    class Meta:
        ordering = ["schedule", "position"]
        constraints = [models.UniqueConstraint(fields=["schedule", "position"], name="one_program_per_position")]

    @property
    def duration_s(self):
        return self.span(self.in_point, self.out_point, self.asset.duration_s)

    @staticmethod
    def span(in_point, out_point, asset_duration_s):
        """Seconds a program of an asset this long airs between its in and out points."""
        end = asset_duration_s if out_point is None else min(out_point, asset_duration_s)
        return max(0.0, end - (in_point or 0.0))

    def __str__(self):
        return self.title or str(self.asset)


class TransitionRule(models.Model):
    """What fills a gap between programs (or the time when nothing is scheduled)."""

    class Fill(models.TextChoices):
        CUT = "CUT", "cut to the next program"
        FILLER = "FILLER", "loop a filler asset"
        SLATE = "SLATE", "the generated slate"

    schedule = models.OneToOneField(Schedule, on_delete=models.CASCADE, related_name="transition")
    fill = models.CharField(max_length=8, choices=Fill.choices, default=Fill.SLATE)
    filler = models.ForeignKey(MediaAsset, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    def __str__(self):
        return f"{self.get_fill_display()} for {self.schedule}"


class SystemConfig(models.Model):
    """The system defaults an operator stored (the product design's configuration block, in its
    nested shape, only the keys set); one row. channels_app/system_config.py validates and
    merges it over the environment's defaults."""

    values = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "system defaults"

    def __str__(self):
        return "system defaults"
