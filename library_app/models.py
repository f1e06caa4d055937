"""Media libraries (folders scanned into MediaAssets), collections of their assets, and the
rules that build a channel's schedule from collections."""
from django.db import models


class Library(models.Model):
    """A folder under the media roots whose media files are scanned into the media library;
    an asset belongs to it by its path (no link is stored: an asset may be in several)."""

    class Kind(models.TextChoices):
        SHOWS = "shows"
        MOVIES = "movies"
        OTHER = "other"

    class ScanState(models.TextChoices):
        IDLE = "IDLE"
        QUEUED = "QUEUED"
        SCANNING = "SCANNING"
        FAILED = "FAILED"

    name = models.CharField(max_length=100, unique=True)
    path = models.CharField(max_length=1000, unique=True)  # resolved, under RETROVUE_MEDIA_ROOTS
    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.OTHER)
    scan_state = models.CharField(max_length=8, choices=ScanState.choices, default=ScanState.IDLE)
    scan_done = models.PositiveIntegerField(default=0)  # files looked at in the scan under way
    scan_total = models.PositiveIntegerField(default=0)  # files it found
    scan_error = models.TextField(blank=True, default="")
    # When the scan was queued or last wrote its progress: a scan silent for STALE_SCAN lost its
    # worker, and may be queued and claimed again (library_app/jobs.py).
    scan_touched_at = models.DateTimeField(null=True, blank=True)
    # {"found", "new", "changed", "unchanged", "removed", "failed"/"warnings": [{"path", "reason"}], "seconds"}
    last_scan = models.JSONField(default=dict, blank=True)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "libraries"

    def __str__(self):
        return self.name

    @property
    def progress(self):
        """Fraction of the scan under way done (1.0 when idle)."""
        if self.scan_state != self.ScanState.SCANNING or not self.scan_total:
            return 1.0 if self.scan_state != self.ScanState.SCANNING else 0.0
        return round(self.scan_done / self.scan_total, 3)


class Collection(models.Model):
    """Assets a programming rule draws from: a manual list (items, in order) or a smart query
    saved as JSON (show, season, genre, year range, kind, duration range, tags, library)."""

    class Kind(models.TextChoices):
        MANUAL = "manual"
        SMART = "smart"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.SMART)
    query = models.JSONField(default=dict, blank=True)  # smart collections only
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class CollectionItem(models.Model):
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="items")
    asset = models.ForeignKey("channels_app.MediaAsset", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["collection", "position"]
        constraints = [models.UniqueConstraint(fields=["collection", "asset"], name="asset_once_per_collection")]


class ChannelProgramming(models.Model):
    """A channel's programming rules (the validated document of PUT /programming) and where
    its builder stands: the rules-built schedule is the channel's current schedule, extended
    by beat to RETROVUE_PROGRAMMING_HOURS ahead."""

    channel = models.OneToOneField("channels_app.Channel", on_delete=models.CASCADE, related_name="programming")
    rules = models.JSONField(default=dict)
    seed = models.BigIntegerField(default=0)  # shuffles are drawn from it: a build is repeatable
    # {stream key: asset id last placed}, for streams whose programs were pruned from the schedule
    progress = models.JSONField(default=dict, blank=True)
    built_until = models.DateTimeField(null=True, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)
    build_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"programming of {self.channel}"
