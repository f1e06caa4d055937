"""Worker life cycle: register the encode host at start, heartbeat it, mark it offline at exit."""
import logging
import os

from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings

from . import confinement, hosts

log = logging.getLogger("retrovue.hosts")

_heartbeat = {}


@worker_ready.connect
def register_encode_host(**_):
    name, capacity = settings.RETROVUE_HOST, settings.RETROVUE_HOST_CAPACITY
    host = hosts.register_host(name, capacity, pid=os.getpid())
    limits = confinement.support()
    (log.info if limits.enforced else log.warning)("host %s: %s", name, limits.note)
    swept = hosts.sweep_groups(host.name)
    if swept:
        log.info("host %s: removed the control groups of %d ended runs", name, len(swept))
    # Every heartbeat period: a host is live while its heartbeat is younger than the lease TTL.
    thread = hosts.HostHeartbeat(name, capacity, settings.RETROVUE_HEARTBEAT_SECONDS)
    thread.start()
    _heartbeat["thread"] = thread


@worker_shutting_down.connect
def retire_encode_host(**_):
    thread = _heartbeat.pop("thread", None)
    if thread:
        thread.stopped.set()
        hosts.mark_offline(settings.RETROVUE_HOST)
