"""`retrovue resources calibrate`: what one channel of each quality profile really costs here.

Each profile runs the real playout engine (pacer, readers and output stage with its UDP and HLS
outputs) for a while on a clip in the copy profile's format, sending to a loopback port nobody
listens on, inside the confinement a channel of the profile gets (a control group holding it to
the profile's reservation, where the host enforces limits). The kernel's own accounting of the
finished children (CPU time of the output stage and of every decoder or reader) gives CPU seconds
per second of air, in percent of one core; the summed resident memory of the run's processes,
sampled as it airs, gives the peak in MB; the time the group's CPU cap held it back says the
reservation is too small for this host (the CPU figure is then a floor).
"""
import collections
import os
import resource
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import psutil
from django.conf import settings
from django.utils import timezone

from channels_app import timeline
from channels_app.profiles import PROFILE_RESOURCES, merged_sections
from channels_app.validation import validate_config
from resources_app.confinement import group_named
from resources_app.models import ProfileCost

from .playout import CopyMode, Pacer, TranscodeMode
from .playout.copy import slate_clip
from .playout.plan import ChannelPlan
from .runner import FFmpegRun

DISCARD_PORT = 9  # nobody listens there on loopback: the datagrams are sent and dropped
SAMPLE_SECONDS = 0.25


@dataclass(frozen=True)
class Cost:
    profile: str
    cpu_percent: float
    memory_mb: float
    seconds: float
    reserved_cpu_percent: float
    reserved_memory_mb: float
    throttled_s: float | None  # held back by the reservation's CPU cap (None: not confined here)


class ClipFeed:
    """A timeline that airs one clip, looped."""

    def __init__(self, source, seconds):
        self.source, self.seconds = source, seconds

    def upcoming(self, at):
        end = at + timedelta(seconds=self.seconds)
        return [timeline.Segment(at, end, "program", self.source, 0.0)]

    def poll_switch(self):
        return None


def _plan(profile, work_dir):
    sections = validate_config(merged_sections(0, profile, {
        "network_settings": {"multicast_address": "127.0.0.1", "port": DISCARD_PORT}}))
    plan = ChannelPlan(number=0, name=f"calibration {profile}", sections=sections,
                       channel_dir=work_dir / profile, ffmpeg=settings.RETROVUE_FFMPEG)
    plan.hls_dir.mkdir(parents=True, exist_ok=True)
    plan.write_slate_text()
    return plan


def _rss(proc):
    try:
        return proc.memory_info().rss
    except psutil.Error:
        return 0


def measure(profile, seconds, work_dir):
    """The cost of one channel of `profile` over `seconds` of real-time air."""
    source = slate_clip(_plan("copy", work_dir))  # H.264/AAC 720p: what a copy channel passes through
    reserved = PROFILE_RESOURCES[profile]
    group = group_named(f"calibration-{profile}-{os.getpid()}")
    if group:
        group.apply(reserved["max_cpu_percent"], reserved["max_memory_mb"])
    plan = replace(_plan(profile, work_dir), cgroup_procs=group.procs if group else ())
    mode = (CopyMode if plan.copy else TranscodeMode)(plan)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    run = mode.spawn_output(lambda argv, pass_fds=(): FFmpegRun(
        argv, str(plan.channel_dir), collections.deque(maxlen=20), threading.Event(),
        stdin=subprocess.PIPE, pass_fds=pass_fds, join=plan.cgroup_procs))
    run.feeder = Pacer(mode, ClipFeed(str(source), seconds + 5), origin=timezone.now())
    run.feeder.start()
    peak, on_air = 0, False
    try:
        while time.monotonic() - started < seconds:
            time.sleep(SAMPLE_SECONDS)
            if group and run.producing and not on_air:
                on_air = True
                group.settle()  # as the supervisor does: the start allowance ends at the first output
            peak = max(peak, sum(_rss(proc) for proc in run.processes()))  # as health counts them
            if run.exit_code() is not None:
                raise RuntimeError(f"the output stage exited with {run.exit_code()}: {run.error_tail()}")
    finally:
        run.stop()
        throttled = group.stats()["cpu_throttled_s"] if group else None
        if group:
            group.remove()
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Cost(profile, round(cpu_seconds / elapsed * 100, 1), round(peak / 2**20, 1), round(elapsed, 2),
                reserved["max_cpu_percent"], reserved["max_memory_mb"],
                None if throttled is None else round(throttled, 2))


def calibrate(profiles=None, seconds=5.0, save=True, host=None):
    """Measure each profile on this host; with save, planning uses the figures."""
    settings.RETROVUE_DATA_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.RETROVUE_DATA_DIR, prefix="calibration-") as folder:
        costs = [measure(profile, seconds, Path(folder)) for profile in profiles or PROFILE_RESOURCES]
    if save:
        for cost in costs:
            ProfileCost.objects.update_or_create(
                host=host or settings.RETROVUE_HOST, profile=cost.profile,
                defaults={"cpu_percent": cost.cpu_percent, "memory_mb": cost.memory_mb,
                          "measured_at": timezone.now()})
    return costs
