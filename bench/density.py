#!/usr/bin/env python
"""Channel density: what the manager itself costs per running channel, next to FFmpeg's cost.

    python bench/density.py [--runs 3] [--levels 10,25,50] [--window 15] [--confinement both]

Everything is real: the web server (`manage.py runserver`, as in the Procfile), `celery beat`
with the DatabaseScheduler, one encode worker (threads pool) and one copy-mode FFmpeg per
channel, each playing a clip generated with lavfi to its own UDP port on 127.0.0.1. Each run
ramps up: first the idle manager with no channel (the baseline, measured in the same run),
then each level of running channels, then it keeps starting channels until admission control
refuses one, which is how many fit on this machine. At each level, after the channels settle,
psutil reads the CPU time and memory (RSS) of web, beat and the worker process (its FFmpeg
children excluded) and of every FFmpeg over a window. Per channel: (manager at N - manager
idle) / N, and FFmpeg's total / N; and each channel's start latency (start asked to RUNNING, the
channels started one after another). With `--confinement both` every run ramps twice, with
each channel in a control group of its own (resources_app/confinement.py) and without
(RETROVUE_RESOURCE_LIMITS=off), so the table shows what confinement costs per channel beside
the unconfined figures. Median over the runs; docs/BENCHMARKS.md has the figures.
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

DATA_DIR = common.ROOT / "var" / "density-bench"
REDIS_URL = os.environ.get("RETROVUE_DENSITY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
HOST = "bench-density"
WEB_PORT = 8765
FIRST_PORT = 6400
CAPACITY = 80  # worker threads: CPU reservations, not slots, decide how many fit


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--levels", default="10,25,50", help="channel counts to measure at")
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured per level")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after the last start")
    parser.add_argument("--bitrate", default="5M", help="the channels' video bitrate (default 5M)")
    parser.add_argument("--confinement", choices=("both", "on", "off"), default="both",
                        help="channels in control groups (on), not (off), or a ramp of each per run")
    return parser.parse_args()


class Manager:
    """Web, beat and one encode worker, started with the bench's environment."""

    def __init__(self):
        with open(DATA_DIR / "web.log", "wb") as log:
            self.web = subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{WEB_PORT}", "--noreload"],
                cwd=common.ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        # The Procfile's log levels: a log line per beat task is not what production pays.
        self.beat = common.Beat(DATA_DIR / "beat.log", loglevel="WARNING")
        self.worker = common.Worker(HOST, CAPACITY, DATA_DIR / "worker.log", loglevel="WARNING")
        self.worker.wait_live()

    def processes(self):
        return {"web": self.web.pid, "beat": self.beat.proc.pid, "worker": self.worker.proc.pid}

    def stop(self):
        self.worker.stop()
        self.beat.stop()
        common.stop_process(self.web)


def snapshot(pids):
    """CPU seconds and RSS MB of each manager process and, summed, of every FFmpeg."""
    taken = {"at": time.monotonic()}
    for name, pid in pids.items():
        proc = psutil.Process(pid)
        with proc.oneshot():
            times = proc.cpu_times()
            taken[name] = (times.user + times.system, proc.memory_info().rss / 2**20)
    cpu = rss = 0.0
    for proc in common.ffmpeg_processes(str(DATA_DIR)):
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                cpu, rss = cpu + times.user + times.system, rss + proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
    taken["ffmpeg"] = (cpu, rss)
    return taken


def measure(pids, window):
    """{part: (CPU % of one core over the window, RSS MB at its end)}."""
    before = snapshot(pids)
    time.sleep(window)
    after = snapshot(pids)
    elapsed = after["at"] - before["at"]
    return {name: ((after[name][0] - before[name][0]) / elapsed * 100, after[name][1])
            for name in [*pids, "ffmpeg"]}


def start_channels(clip, first, last, latencies=None):
    """Create and start channels first..last; returns the numbers admission control refused.
    With `latencies`, each start is waited for (RUNNING) and its seconds appended."""
    from channels_app import services
    from retrovue.errors import DoesNotFit, NoCapacity
    from streams_app import lifecycle

    refused = []
    for number in range(first, last + 1):
        channel = services.create_channel({
            "name": f"density {number}", "number": number, "quality": "copy", "playlist": [str(clip)],
            "stream_settings": {"resolution": "640x360", "frame_rate": 25},
            "network_settings": {"multicast_address": "127.0.0.1", "port": FIRST_PORT + number}})
        asked = time.monotonic()
        try:
            lifecycle.start_channel(channel)
        except (DoesNotFit, NoCapacity) as refusal:  # NoCapacity: the host's heartbeat came late
            if isinstance(refusal, NoCapacity):
                print(f"  channel {number} refused: {refusal}", flush=True)
            refused.append(number)
            break
        if latencies is not None:
            common.wait_for(lambda: services.get_channel(number).status == "RUNNING", timeout=30, interval=0.01,
                            what=f"channel {number} RUNNING")
            latencies.append(time.monotonic() - asked)
    return refused


def wait_running(count):
    from channels_app.models import Channel

    common.wait_for(lambda: Channel.objects.filter(status="RUNNING").count() >= count,
                    timeout=30 + count, interval=0.5, what=f"{count} channels RUNNING")


def one_run(args, clip, confined):
    """The ramp of one run: {level: measurement}, with level 0 the idle baseline; and how many fit."""
    from channels_app.models import Channel
    from channels_app.services import delete_channel
    from resources_app.models import EncodeHost
    from streams_app.lifecycle import stop_all_channels

    os.environ["RETROVUE_RESOURCE_LIMITS"] = "enforce" if confined else "off"
    manager = Manager()
    host = EncodeHost.objects.get(name=HOST)
    print(f" {'confined' if confined else 'unconfined'}: {host.limits_note}", flush=True)
    if confined and not host.limits_enforced:
        manager.stop()
        return None, None
    results = {}
    try:
        time.sleep(args.settle)
        results[0] = measure(manager.processes(), args.window)
        started = 0
        for level in args.levels:
            latencies = []
            start_channels(clip, started + 1, level, latencies)
            started = level
            wait_running(level)
            time.sleep(args.settle)
            results[level] = measure(manager.processes(), args.window)
            results[level]["start_s"] = statistics.median(latencies)
            print(f"  {level:>3} channels: " + ", ".join(
                f"{name} {figures[0]:.1f}% {figures[1]:.0f} MB" for name, figures in results[level].items()
                if name != "start_s")
                + f", start {results[level]['start_s']:.3f} s", flush=True)
        while not start_channels(clip, started + 1, started + 1):
            started += 1
        fit = started
    finally:
        stop_all_channels()
        common.wait_for(lambda: not common.ffmpeg_processes(str(DATA_DIR)), timeout=60, interval=0.5,
                        what="every FFmpeg stopped")
        manager.stop()
        common.kill_ffmpeg(str(DATA_DIR))
        for channel in Channel.objects.filter(name__startswith="density "):
            channel.desired_state, channel.status = "STOPPED", "STOPPED"
            channel.save(update_fields=["desired_state", "status"])
            delete_channel(channel)
    return results, fit


def per_channel(results, level):
    """Manager CPU % and MB per channel above its idle baseline; FFmpeg's per channel."""
    idle, busy = results[0], results[level]
    manager = [name for name in idle if name not in ("ffmpeg", "start_s")]
    cpu = sum(busy[n][0] - idle[n][0] for n in manager) / level
    rss = sum(busy[n][1] - idle[n][1] for n in manager) / level
    worker_cpu = (busy["worker"][0] - idle["worker"][0]) / level
    return cpu, rss, worker_cpu, busy["ffmpeg"][0] / level, busy["ffmpeg"][1] / level, busy["start_s"]


def report(runs, fits, levels, label):
    print()
    print(label)
    print(f"copy-mode channels that fit on this host (by reservation): {statistics.median(fits):g} "
          f"(runs: {', '.join(map(str, fits))})")
    idle = [(sum(r[0][n][0] for n in ("web", "beat", "worker")), sum(r[0][n][1] for n in ("web", "beat", "worker")))
            for r in runs]
    print(f"idle manager (web + beat + worker, no channel): {statistics.median(c for c, _ in idle):.2f}% CPU, "
          f"{statistics.median(m for _, m in idle):.0f} MB RSS")
    rows = []
    for level in levels:
        figures = [per_channel(r, level) for r in runs]
        med = [statistics.median(f[i] for f in figures) for i in range(6)]
        span = f"{min(f[0] for f in figures):.3f}..{max(f[0] for f in figures):.3f}"
        rows.append([level, f"{med[0]:.3f}", span, f"{med[2]:.3f}", f"{med[1]:.2f}", f"{med[3]:.2f}",
                     f"{med[4]:.1f}", f"{med[5]:.3f}"])
    print(common.table(["channels", "manager %core/ch", "(min..max)", "worker %core/ch",
                        "manager MB/ch", "ffmpeg %core/ch", "ffmpeg MB/ch", "start s"], rows))
    print("target: manager under 1 %core and under 5 MB per running channel")


def main():
    args = parse_args()
    args.levels = sorted(int(n) for n in args.levels.split(","))
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # As deployed: DEBUG off (with it, Django keeps every query of every thread for its debug page).
    os.environ.update({"RETROVUE_HOST_BANDWIDTH_MBPS": "10000", "RETROVUE_LOG_LEVEL": "WARNING", "DJANGO_DEBUG": "0"})
    common.configure_isolated(DATA_DIR, REDIS_URL)
    print(f"density, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {platform.node()}, "
          f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"{os.environ['DATABASE_URL'].split(':')[0]}; {args.runs} runs, {args.window:g}s windows",
          flush=True)
    clip = common.make_clip(DATA_DIR / "media" / "clip.mp4", size="640x360", seconds=30, bitrate=args.bitrate)
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.confinement]
    runs = {mode: ([], []) for mode in modes}
    for run in range(args.runs):
        print(f"run {run + 1}/{args.runs}", flush=True)
        for confined in modes:
            results, fit = one_run(args, clip, confined)
            if results is not None:
                runs[confined][0].append(results)
                runs[confined][1].append(fit)
    for confined, (results, fits) in runs.items():
        if results:
            report(results, fits, args.levels, "each channel in a control group of its own" if confined
                   else "unconfined (RETROVUE_RESOURCE_LIMITS=off)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
