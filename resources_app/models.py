"""Encode hosts (each runs one Celery worker that consumes its own queue) and what is reserved on them."""
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class EncodeHostQuerySet(models.QuerySet):
    def live(self):
        """Hosts accepting channels whose heartbeat is within the lease TTL."""
        return self.filter(state=EncodeHost.State.ONLINE, last_heartbeat__gte=lease_horizon())

    def fresh(self):
        """Hosts whose heartbeat is within the lease TTL, draining ones included."""
        return self.exclude(state=EncodeHost.State.OFFLINE).filter(last_heartbeat__gte=lease_horizon())


def lease_horizon():
    return timezone.now() - timedelta(seconds=settings.RETROVUE_LEASE_TTL_SECONDS)


class EncodeHost(models.Model):
    class State(models.TextChoices):
        ONLINE = "ONLINE"
        DRAINING = "DRAINING"
        OFFLINE = "OFFLINE"

    name = models.CharField(max_length=100, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ONLINE)
    capacity = models.PositiveIntegerField(default=8, help_text="max_channels: channel slots")
    cpu_count = models.PositiveIntegerField(default=0)
    memory_mb = models.PositiveIntegerField(default=0)
    bandwidth_mbps = models.FloatField(default=1000, help_text="configured network bandwidth")
    labels = models.JSONField(default=list, blank=True, help_text="e.g. a hardware encoder: nvenc")
    # With `migrate`, a draining host's channels are moved elsewhere one by one.
    migrate = models.BooleanField(default=False)
    pid = models.IntegerField(null=True, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    # Live use measured by psutil at each heartbeat (percents of the whole host).
    cpu_percent = models.FloatField(null=True, blank=True)
    memory_percent = models.FloatField(null=True, blank=True)
    net_mbps = models.FloatField(null=True, blank=True, help_text="bytes sent and received, Mbit/s")
    # Whether its worker holds each channel to its resource_limits (control groups), and how or why not.
    limits_enforced = models.BooleanField(null=True, blank=True)
    limits_note = models.CharField(max_length=300, blank=True, default="")

    objects = EncodeHostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    @property
    def queue(self):
        return f"encode.{self.name}"

    @property
    def cpu_capacity(self):
        """In psutil's percent of one core: a 2-core host holds 200."""
        return (self.cpu_count or 1) * 100

    def __str__(self):
        return self.name


class ResourceAllocation(models.Model):
    """What a channel has reserved on a host: admission control counts these, never guesses.

    A running channel's reservation belongs to its run (`stream`) and goes when the run ends.
    An operator's `allocate` may also hold resources for a channel that is not running yet
    (`stream` empty); its amounts then stay the channel's requirement until released.
    """

    channel = models.OneToOneField("channels_app.Channel", on_delete=models.CASCADE,
                                   related_name="allocation")
    host = models.ForeignKey(EncodeHost, on_delete=models.CASCADE, related_name="allocations")
    stream = models.ForeignKey("streams_app.Stream", null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    cpu_percent = models.FloatField(help_text="percent of one core")
    memory_mb = models.PositiveIntegerField()
    bandwidth_mbps = models.FloatField()
    manual = models.BooleanField(default=False, help_text="set by an operator's allocate")
    reserved_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["host__name", "channel__number"]

    def __str__(self):
        return (f"{self.channel} on {self.host}: {self.cpu_percent:g}% CPU, {self.memory_mb} MB, "
                f"{self.bandwidth_mbps:g} Mbit/s")


class ProfileCost(models.Model):
    """What one channel of a quality profile measurably costs on a host (`resources calibrate`)."""

    host = models.CharField(max_length=100)
    profile = models.CharField(max_length=16)
    cpu_percent = models.FloatField()
    memory_mb = models.FloatField()
    measured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "profile"], name="one_cost_per_host_profile")]

    def __str__(self):
        return f"{self.profile} on {self.host}: {self.cpu_percent:g}% CPU, {self.memory_mb:g} MB"
