"""Encode host registration and liveness, called from the worker process of each host."""
import logging
import threading
import time

import psutil
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from streams_app.models import Stream

from . import confinement
from .models import EncodeHost

log = logging.getLogger("retrovue.hosts")
GROUP_SWEEP_BEATS = 30


def register_host(name, capacity, pid=None):
    """Record this host as ONLINE with its measured size and whether it can hold channels to
    their limits (a DRAINING host stays draining)."""
    limits = confinement.support()
    host, created = EncodeHost.objects.get_or_create(name=name, defaults={"capacity": capacity})
    state = host.state if host.state == EncodeHost.State.DRAINING else EncodeHost.State.ONLINE
    EncodeHost.objects.filter(pk=host.pk).update(
        state=state, capacity=capacity, cpu_count=psutil.cpu_count() or 1,
        memory_mb=psutil.virtual_memory().total // 2**20, pid=pid,
        bandwidth_mbps=settings.RETROVUE_HOST_BANDWIDTH_MBPS, labels=settings.RETROVUE_HOST_LABELS,
        registered_at=timezone.now(), last_heartbeat=timezone.now(),
        limits_enforced=limits.enforced, limits_note=limits.note)
    return host


def sweep_groups(name):
    """Remove the control groups of this host's runs that are over; returns their stream ids."""
    return confinement.sweep(lambda: set(Stream.objects.filter(host=name, status__in=Stream.ACTIVE)
                                         .values_list("pk", flat=True)))


class NetworkMeter:
    """Mbit/s sent and received by this machine since the previous reading."""

    def __init__(self):
        self.last = self._read()

    @staticmethod
    def _read():
        counters = psutil.net_io_counters()
        return time.monotonic(), counters.bytes_sent + counters.bytes_recv

    def mbps(self):
        (then, before), self.last = self.last, self._read()
        elapsed = self.last[0] - then
        return round((self.last[1] - before) * 8 / 1e6 / elapsed, 2) if elapsed > 0 else None


def heartbeat_host(name, capacity, pid=None, net_mbps=None):
    """Renew the host's liveness and live use; re-registers it if its row is gone. Returns rows
    touched."""
    touched = EncodeHost.objects.filter(name=name).exclude(state=EncodeHost.State.OFFLINE).update(
        last_heartbeat=timezone.now(), cpu_percent=psutil.cpu_percent(None),
        memory_percent=psutil.virtual_memory().percent, net_mbps=net_mbps)
    if not touched and not EncodeHost.objects.filter(name=name).exists():
        register_host(name, capacity, pid)
        touched = 1
    return touched


def mark_offline(name):
    """A clean shutdown; if the database is away the stale heartbeat tells the same story."""
    close_old_connections()
    try:
        return EncodeHost.objects.filter(name=name).update(state=EncodeHost.State.OFFLINE)
    except DatabaseError as exc:
        log.warning("could not mark host %s offline: %s", name, exc)
        return 0


class HostHeartbeat(threading.Thread):
    """Background thread of a worker process that keeps its host's row fresh."""

    def __init__(self, name, capacity, interval):
        super().__init__(name=f"host-heartbeat-{name}", daemon=True)
        self.host, self.capacity, self.interval = name, capacity, interval
        self.stopped = threading.Event()

    def run(self):
        failing = False
        network = NetworkMeter()
        beats = 0
        while not self.stopped.wait(self.interval):
            beats += 1
            try:
                close_old_connections()
                heartbeat_host(self.host, self.capacity, net_mbps=network.mbps())
                if beats % GROUP_SWEEP_BEATS == 0:  # runs a lost worker left that were ended since
                    sweep_groups(self.host)
            except DatabaseError as exc:  # the database may be away for a while; keep trying
                if not failing:
                    log.warning("host heartbeat of %s failing: %s", self.host, exc)
                failing = True
                connection.close()
            else:
                failing = False
