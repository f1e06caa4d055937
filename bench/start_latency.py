#!/usr/bin/env python
"""Channel start latency: from the start request to the first MPEG-TS datagram on the channel's
UDP output, for a copy-mode and a 720p-transcode channel, next to a bare-FFmpeg floor.

    python bench/start_latency.py [--runs 7] [--warmup 1]

Everything is real: one encode worker subprocess (host bench-a) on Redis DB 14, the bench's own
database and data folder (var/bench), FFmpeg, and a clip generated with lavfi. Output goes to
127.0.0.1 only, UDP ports 6101-6199. How to read the figures: docs/BENCHMARKS.md.
"""
import argparse
import datetime
import functools
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TARGET_MS = 300
# Channel modes: label -> (quality, channel number, UDP port, how the start is requested).
CHANNEL_MODES = {
    "copy": ("copy", 6101, 6101, "service"),
    "copy, POST /api/.../start": ("copy", 6102, 6102, "api"),
    "720p": ("720p", 6103, 6103, "service"),
}
FLOOR_PORTS = {"copy": 6111, "720p": 6112}
SETTLE_SECONDS = 0.5
PHASES = ("call returned", "task received", "ffmpeg forked", "first packet")
RECEIVED_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Task streams\.supervise\[")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="measured runs per mode, at least 5 (default 7)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured runs per mode first, as a long-lived server is warm (default 1)")
    args = parser.parse_args()
    if args.runs < 5 or args.warmup < 0:
        parser.error("--runs must be at least 5 and --warmup at least 0")
    return args


def on_sigterm(signum, _frame):
    """Turn SIGTERM into SystemExit so that the clean-up in main() runs."""
    sys.exit(128 + signum)


# --- starting channels --------------------------------------------------------------------------
def create_channel(label, quality, number, port, clip):
    from channels_app.services import create_channel as create

    return create({"name": f"bench {label}", "number": number, "quality": quality,
                   "playlist": [str(clip)],
                   "network_settings": {"protocol": "udp", "multicast_address": "127.0.0.1", "port": port}})


def service_start(channel):
    """What POST /api/channels/{id}/start does, minus HTTP: the service call."""
    from streams_app.lifecycle import start_channel

    start_channel(channel)


def api_start(channel):
    """The API view through Django's test client, as an operator (authentication forced; the
    permission check reads the operator's permissions as it does for every caller)."""
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    from tests.factories import make_user

    client = APIClient()
    operator = User.objects.filter(username="bench-operator").first() or make_user("bench-operator", permissions="all")
    client.force_authenticate(user=operator)
    response = client.post(f"/api/channels/{channel.pk}/start")
    if response.status_code != 202:
        raise RuntimeError(f"start returned {response.status_code}: {response.content[:200]!r}")


def current_stream(channel):
    """The run the last start created, once its supervisor has recorded FFmpeg's pid."""
    from channels_app.services import get_channel
    from streams_app.models import Stream

    def recorded():
        generation = get_channel(channel.pk).generation
        return Stream.objects.filter(channel=channel, generation=generation, pid__isnull=False).first()

    return common.wait_for(recorded, timeout=10, what=f"FFmpeg pid of {channel}")


def stop_and_wait(channel, pid):
    """Stop the channel; return once it is STOPPED and its FFmpeg has exited."""
    import psutil

    from channels_app.models import Channel
    from channels_app.services import get_channel
    from streams_app.lifecycle import stop_channel

    stop_channel(get_channel(channel.pk))

    def stopped():
        current = get_channel(channel.pk)
        if current.status == Channel.Status.ERROR:
            raise RuntimeError(f"{channel} failed: {current.status_reason}")
        return current.status == Channel.Status.STOPPED

    def ffmpeg_gone():
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    common.wait_for(stopped, timeout=15, what=f"{channel} STOPPED")
    common.wait_for(ffmpeg_gone, timeout=10, what=f"FFmpeg {pid} of {channel} gone")


# --- phases -------------------------------------------------------------------------------------
def received_at(log_path, since):
    """Wall-clock time the worker logged receiving the last supervise task (ms precision)."""
    stamps = [datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
              for m in map(RECEIVED_LINE.match, log_path.read_text(errors="replace").splitlines()) if m]
    return stamps[-1] if stamps and stamps[-1] >= since - 0.002 else None


def forked_at(pid):
    """Boot-clock time the kernel created process `pid` (10 ms ticks), from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime


def channel_run(channel, port, start, log_path):
    """One start of `channel`: ms from the request to each phase, ending at the first packet."""
    with common.udp_receiver(port) as sock:
        wall, boot = time.time(), time.clock_gettime(time.CLOCK_BOOTTIME)
        t0 = time.perf_counter()
        start(channel)
        returned = time.perf_counter()
        arrived = common.first_ts_datagram(sock)
    stream = current_stream(channel)
    received = received_at(log_path, wall)
    phases = {
        "call returned": (returned - t0) * 1000,
        "task received": None if received is None else (received - wall) * 1000,
        "ffmpeg forked": (forked_at(stream.pid) - boot) * 1000,
        "first packet": (arrived - t0) * 1000,
    }
    stop_and_wait(channel, stream.pid)
    return phases


# --- the bare FFmpeg floor ----------------------------------------------------------------------
def floor_argv(clip, quality, port):
    """Bare FFmpeg on the same clip, paced and looped like a channel, MPEG-TS to UDP."""
    codecs = ["-c", "copy"] if quality == "copy" else [
        "-vf", "scale=1280:720,fps=30", "-c:v", "libx264", "-preset", "veryfast", "-g", "60",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k"]
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
            "-re", "-stream_loop", "-1", "-i", str(clip), "-map", "0", *codecs,
            "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"]


def floor_run(argv, port, log):
    """ms from Popen to the first datagram of a bare FFmpeg, which is then stopped."""
    with common.udp_receiver(port) as sock:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)
        try:
            arrived = common.first_ts_datagram(sock)
        finally:
            common.stop_process(proc)
    return {"first packet": (arrived - t0) * 1000}


# --- driving and reporting ----------------------------------------------------------------------
def repeat(label, run, runs, warmup):
    """Call `run` warmup + runs times, a settle pause after each; returns the measured results."""
    results = []
    for n in range(warmup + runs):
        result = run()
        if n >= warmup:
            results.append(result)
        time.sleep(SETTLE_SECONDS)
    print(f"  {label}: " + ", ".join(f"{ms:.0f}" for ms in first_packets(results)) + " ms", flush=True)
    return results


def measure(args, clip, worker):
    """Every channel mode through the worker, then the bare-FFmpeg floors; label -> results."""
    channels, floors = {}, {}
    starts = {"service": service_start, "api": api_start}
    for label, (quality, number, port, how) in CHANNEL_MODES.items():
        channel = create_channel(label, quality, number, port, clip)
        run = functools.partial(channel_run, channel, port, starts[how], worker.log_path)
        channels[label] = repeat(label, run, args.runs, args.warmup)
    with open(common.DATA_DIR / "floor.log", "ab") as log:
        for quality, port in FLOOR_PORTS.items():
            run = functools.partial(floor_run, floor_argv(clip, quality, port), port, log)
            floors[quality] = repeat(f"{quality} bare ffmpeg", run, args.runs, args.warmup)
    return channels, floors


def machine():
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()
    return (f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"FFmpeg {ffmpeg[2] if len(ffmpeg) > 2 else '?'}, Python {platform.python_version()}")


def first_packets(results):
    return [r["first packet"] for r in results]


def figures(results):
    """runs, median, min, max of the first-packet times, as table cells."""
    runs, median, low, high = common.summary(first_packets(results))
    return runs, f"{median:.0f}", f"{low:.0f}", f"{high:.0f}"


def median_cell(results, phase):
    values = [r[phase] for r in results if r[phase] is not None]
    return f"{common.summary(values)[1]:.0f}" if values else "-"


def report(channels, floors):
    """Print the figures table, the phase medians and the target line."""
    rows = [(f"{label} (RetroVue)", *figures(results)) for label, results in channels.items()]
    rows += [(f"{quality} (bare ffmpeg floor)", *figures(results)) for quality, results in floors.items()]
    print("\nrequest -> first MPEG-TS datagram on 127.0.0.1")
    print(common.table(("mode", "runs", "median ms", "min ms", "max ms"), rows))
    print("\nphase medians, ms after the request (task received: worker log, 1 ms; "
          "ffmpeg forked: kernel start time, 10 ms ticks)")
    print(common.table(("mode", *PHASES), [
        (label, *(median_cell(results, phase) for phase in PHASES)) for label, results in channels.items()]))
    copy = common.summary(first_packets(channels["copy"]))[1]
    floor = common.summary(first_packets(floors["copy"]))[1]
    verdict = "MET" if copy <= TARGET_MS else "MISSED"
    print(f"\ntarget: copy-mode first packet within {TARGET_MS} ms of the request: median {copy:.0f} ms "
          f"-> {verdict} (bare FFmpeg floor {floor:.0f} ms, RetroVue adds {copy - floor:.0f} ms)")


def remove_channels():
    """Stop and delete the bench's channels (they would block the numbers in a reused database)."""
    from channels_app.models import Channel
    from channels_app.services import delete_channel
    from retrovue.errors import ServiceError
    from streams_app.lifecycle import stop_channel

    numbers = [number for _quality, number, _port, _how in CHANNEL_MODES.values()]
    for channel in Channel.objects.filter(number__in=numbers, name__startswith="bench "):
        try:
            delete_channel(stop_channel(channel))
        except ServiceError as exc:
            print(f"warning: could not remove {channel}: {exc}", file=sys.stderr)


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    common.configure()
    print(f"start latency, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {machine()}")
    print(f"runs {args.runs} per mode after {args.warmup} warm-up; data in {common.DATA_DIR}", flush=True)
    clip = common.make_clip(common.DATA_DIR / "media" / "clip.mp4")
    worker = common.Worker(common.HOST, capacity=2, log_path=common.DATA_DIR / "worker.log")
    try:
        worker.wait_live()
        report(*measure(args, clip, worker))
    finally:
        worker.stop()
        left = common.kill_ffmpeg(str(common.DATA_DIR))
        if left:
            print(f"warning: killed {left} FFmpeg process(es) left behind", file=sys.stderr)
        remove_channels()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
