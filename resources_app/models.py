"""Encode hosts: each runs one Celery worker that consumes its own queue."""
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class EncodeHostQuerySet(models.QuerySet):
    def live(self):
        """Hosts accepting channels whose heartbeat is within the lease TTL."""
        fresh = timezone.now() - timedelta(seconds=settings.RETROVUE_LEASE_TTL_SECONDS)
        return self.filter(state=EncodeHost.State.ONLINE, last_heartbeat__gte=fresh)


class EncodeHost(models.Model):
    class State(models.TextChoices):
        ONLINE = "ONLINE"
        DRAINING = "DRAINING"
        OFFLINE = "OFFLINE"

    name = models.CharField(max_length=100, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.ONLINE)
    capacity = models.PositiveIntegerField(default=8, help_text="channel slots")
    cpu_count = models.PositiveIntegerField(default=0)
    memory_mb = models.PositiveIntegerField(default=0)
    pid = models.IntegerField(null=True, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(null=True, blank=True)
    # Live use measured by psutil at each heartbeat.
    cpu_percent = models.FloatField(null=True, blank=True)
    memory_percent = models.FloatField(null=True, blank=True)

    objects = EncodeHostQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    @property
    def queue(self):
        return f"encode.{self.name}"

    def __str__(self):
        return self.name
