"""Stream runs: one row per placement of a channel on an encode host."""
import secrets

from django.db import models


class Stream(models.Model):
    class Status(models.TextChoices):
        STARTING = "STARTING"
        RUNNING = "RUNNING"
        STOPPING = "STOPPING"
        STOPPED = "STOPPED"
        ERROR = "ERROR"

    ACTIVE = (Status.STARTING, Status.RUNNING, Status.STOPPING)

    channel = models.ForeignKey("channels_app.Channel", on_delete=models.CASCADE, related_name="streams")
    host = models.CharField(max_length=100)
    generation = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STARTING)
    status_reason = models.TextField(blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    argv = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    restart_count = models.PositiveIntegerField(default=0)
    restart_requested = models.BooleanField(default=False)
    health_metrics = models.JSONField(default=dict, blank=True)
    error_log = models.JSONField(default=list, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "generation"], name="one_stream_per_generation"),
        ]

    def __str__(self):
        return f"{self.channel} gen {self.generation} on {self.host} ({self.status})"


class MetricSample(models.Model):
    """A coarse sample of a running stream, kept for charts (RETROVUE_METRICS_RETENTION_HOURS)."""

    stream = models.ForeignKey(Stream, on_delete=models.CASCADE, related_name="samples")
    channel = models.ForeignKey("channels_app.Channel", on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField()
    bitrate_kbps = models.FloatField(null=True)
    fps = models.FloatField(null=True)
    speed = models.FloatField(null=True)
    drop_frames = models.IntegerField(null=True)
    dup_frames = models.IntegerField(null=True)
    cpu_percent = models.FloatField(null=True)
    memory_mb = models.FloatField(null=True)
    restart_count = models.PositiveIntegerField(default=0)

    FIELDS = ("bitrate_kbps", "fps", "speed", "drop_frames", "dup_frames", "cpu_percent", "memory_mb")

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["channel", "at"]), models.Index(fields=["at"])]


class DiskSample(models.Model):
    """Free space of a host's data disk (RETROVUE_DATA_DIR) over the trend window, to see it filling."""

    host = models.CharField(max_length=100)
    path = models.CharField(max_length=500)
    at = models.DateTimeField()
    free_bytes = models.BigIntegerField()
    total_bytes = models.BigIntegerField()

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["host", "at"])]


class Alert(models.Model):
    """Raised and cleared like a broadcast system's alarms: at most one open alert per subject."""

    class Kind(models.TextChoices):
        CPU = "CPU", "CPU over threshold"
        MEMORY = "MEMORY", "memory over threshold"
        ERROR_RATE = "ERROR_RATE", "error rate over threshold"
        STALL = "STALL", "stream stalled"
        RESTART_LOOP = "RESTART_LOOP", "restart loop"
        HOST_LOST = "HOST_LOST", "encode host lost"
        OVER_RESERVATION = "OVER_RESERVATION", "using more than its reservation"
        SOURCE_FAILED = "SOURCE_FAILED", "a source cannot be read (the slate airs instead)"
        OUTPUT_FAILED = "OUTPUT_FAILED", "an output leg is failing (e.g. HLS on a full disk)"
        OOM = "OOM", "a process was killed by its channel's memory limit"
        SPEED_TREND = "SPEED_TREND", "encoding speed falling toward below real time"
        MEMORY_TREND = "MEMORY_TREND", "memory growing toward its limit"
        DISK_TREND = "DISK_TREND", "the data disk filling"
        CPU_TREND = "CPU_TREND", "a host's CPU headroom shrinking"

    class Severity(models.TextChoices):
        WARNING = "WARNING"
        CRITICAL = "CRITICAL"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    channel = models.ForeignKey("channels_app.Channel", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="alerts")
    host = models.CharField(max_length=100, blank=True, default="")
    message = models.TextField()
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    raised_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    cleared_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "channel"], name="one_open_alert_per_channel",
                                    condition=models.Q(cleared_at=None, channel__isnull=False)),
            models.UniqueConstraint(fields=["kind", "host"], name="one_open_alert_per_host",
                                    condition=models.Q(cleared_at=None, channel=None)),
        ]

    @property
    def is_open(self):
        return self.cleared_at is None

    def __str__(self):
        subject = self.channel or self.host
        return f"{self.kind} {subject}: {self.message}"


class AsRunEntry(models.Model):
    """What really aired (a broadcaster's as-run log): one row per segment the engine put on air,
    with its actual start and end on the run's frame grid, and one per interruption of the output.
    Written by the engine as it airs (playout/asrun.py); kept RETROVUE_ASRUN_RETENTION_DAYS."""

    class Kind(models.TextChoices):
        PROGRAM = "program"
        FILLER = "filler"
        SLATE = "slate"
        SWITCH = "switch"
        INTERRUPTION = "interruption"

    channel = models.ForeignKey("channels_app.Channel", on_delete=models.CASCADE, related_name="as_run")
    stream = models.ForeignKey(Stream, null=True, blank=True, on_delete=models.SET_NULL, related_name="as_run")
    host = models.CharField(max_length=100, blank=True, default="")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    title = models.CharField(max_length=300, blank=True, default="")
    asset = models.ForeignKey("channels_app.MediaAsset", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="as_run")
    source = models.TextField(blank=True, default="")
    scheduled_start = models.DateTimeField(null=True, blank=True)
    scheduled_end = models.DateTimeField(null=True, blank=True)
    actual_start = models.DateTimeField()
    actual_end = models.DateTimeField(null=True, blank=True)  # None while it airs
    frames = models.PositiveIntegerField(null=True, blank=True)
    note = models.TextField(blank=True, default="")  # why a slate stood in, why it ended, ...

    class Meta:
        ordering = ["actual_start", "pk"]
        indexes = [models.Index(fields=["channel", "actual_start"]), models.Index(fields=["actual_start"])]

    @property
    def duration_s(self):
        return None if self.actual_end is None else (self.actual_end - self.actual_start).total_seconds()

    def __str__(self):
        return f"{self.channel} {self.actual_start:%Y-%m-%d %H:%M:%S} {self.kind} {self.title}"


class ControlLoopRun(models.Model):
    """When a control loop (the lease sweep) last completed: after a gap longer than a lease,
    leases get one TTL to renew before any is judged, so an outage of Redis, beat or the database
    never reads as every host lost."""

    name = models.CharField(max_length=50, unique=True)
    last_run_at = models.DateTimeField()


# The HDHomeRun check digit (libhdhomerun's hdhomerun_discover_validate_device_id): the last
# nibble of a device id is the XOR of the others, every other one mapped through this table.
DEVICE_ID_CHECK = (0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB, 0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0)


def device_id_check(value):
    """The check nibble of the 32-bit device id `value` (its low nibble ignored)."""
    check = 0
    for shift in range(28, 0, -4):
        nibble = (value >> shift) & 0xF
        check ^= DEVICE_ID_CHECK[nibble] if shift % 8 == 4 else nibble
    return check


def new_device_id():
    value = secrets.randbits(28) << 4
    return f"{value | device_id_check(value):08X}"


class TunerDevice(models.Model):
    """This installation as a network tuner: a device id of its own, random at first use and kept
    (players and media servers remember a tuner by it), never derived from a secret."""

    device_id = models.CharField(max_length=8, unique=True, default=new_device_id)

    @classmethod
    def current(cls):
        return cls.objects.order_by("pk").first() or cls.objects.create()
