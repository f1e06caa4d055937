"""`retrovue resources calibrate`: what one channel of each quality profile really costs here.

Each profile encodes the channel slate (or, for copy, passes a clip through) with the exact
argv a channel of that profile would run, paced at real time like a live channel, to a null
output. The kernel's own accounting of the child (wait4: CPU time and peak RSS) gives the
cost: CPU seconds per second of output, in percent of one core, and peak memory in MB.
"""
import os
import subprocess
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from channels_app.profiles import PROFILE_RESOURCES, merged_sections
from channels_app.validation import validate_config
from streams_app import ffmpeg

from .models import ProfileCost


@dataclass(frozen=True)
class Cost:
    profile: str
    cpu_percent: float
    memory_mb: float
    seconds: float
    reserved_cpu_percent: float
    reserved_memory_mb: float


def _plan(profile, work_dir, playlist=()):
    sections = validate_config(merged_sections(0, profile))
    plan = ffmpeg.ChannelPlan(number=0, name=f"calibration {profile}", playlist=tuple(playlist),
                              sections=sections, channel_dir=work_dir / profile,
                              ffmpeg=settings.RETROVUE_FFMPEG)
    ffmpeg.write_channel_files(plan)
    return plan


def _argv(plan, seconds, output, paced=True):
    inputs, maps = ffmpeg.input_args(plan)
    if not paced:
        inputs = [arg for arg in inputs if arg != "-re"]
    return [plan.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *inputs, *maps,
            *ffmpeg.codec_args(plan), "-t", f"{seconds:g}", "-f", "mpegts", "-y", str(output)]


def _run(argv):
    """Run FFmpeg to completion; (CPU seconds, peak RSS MB) as the kernel accounted them."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg exited with {proc.returncode}: {proc.stderr.read().decode()[-300:]}")
    proc.stderr.close()
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def measure(profile, seconds, work_dir):
    """The cost of one channel of `profile` over `seconds` of real-time output."""
    playlist = ()
    if profile == "copy":  # pass through a clip already in the copy profile's format
        source = _plan("720p", work_dir)
        clip = work_dir / "copy-source.ts"
        _run(_argv(source, seconds + 1, clip, paced=False))
        playlist = (str(clip),)
    plan = _plan(profile, work_dir, playlist)
    started = time.monotonic()
    cpu_seconds, peak_mb = _run(_argv(plan, seconds, os.devnull))
    elapsed = time.monotonic() - started
    reserved = PROFILE_RESOURCES[profile]
    return Cost(profile, round(cpu_seconds / seconds * 100, 1), round(peak_mb, 1), round(elapsed, 2),
                reserved["max_cpu_percent"], reserved["max_memory_mb"])


def calibrate(profiles=None, seconds=5.0, save=True, host=None):
    """Measure each profile on this host; with save, planning uses the figures."""
    work_dir = settings.RETROVUE_DATA_DIR / "calibration"
    work_dir.mkdir(parents=True, exist_ok=True)
    costs = [measure(profile, seconds, work_dir) for profile in profiles or PROFILE_RESOURCES]
    if save:
        for cost in costs:
            ProfileCost.objects.update_or_create(
                host=host or settings.RETROVUE_HOST, profile=cost.profile,
                defaults={"cpu_percent": cost.cpu_percent, "memory_mb": cost.memory_mb,
                          "measured_at": timezone.now()})
    return costs
