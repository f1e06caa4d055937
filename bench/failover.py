#!/usr/bin/env python
"""Failover outages: how long a channel's UDP output is silent when its FFmpeg is killed, when
FFmpeg freezes (a stall), when the encode worker running it is killed (host loss) and when it is
frozen (SIGSTOP, then SIGCONT once its channel has moved: the time two hosts publish at once must
be 0), with our defaults and with the seed's timings for comparison.

    python bench/failover.py [--runs 5] [--seed-runs 2]

Everything is real: two encode worker subprocesses (hosts bench-a and bench-b), a real
`celery beat` with the DatabaseScheduler running the lease sweep, FFmpeg, and a copy-mode
channel playing a clip generated with lavfi. The bench's own database and data folder
(var/failover-bench), Redis DB 12 (RETROVUE_FAILOVER_BENCH_REDIS_URL), UDP ports 6201-6204 on
127.0.0.1 only. An independent receiver thread in this process timestamps every datagram; the
outage is the longest silence between datagrams from just before the event until the output has
flowed again for a while; the capture around it is read by tests/tsanalysis.py (continuity,
PCR, announced restarts). How to read the figures: docs/BENCHMARKS.md.
"""
import argparse
import datetime
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from tests.tsanalysis import analyze  # noqa: E402

# Not var/bench-...: the start-latency bench kills every FFmpeg whose argv contains "var/bench".
DATA_DIR = common.ROOT / "var" / "failover-bench"
REDIS_URL = os.environ.get("RETROVUE_FAILOVER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
HOSTS = ("bench-a", "bench-b")
CAPACITY = 3  # channel slots per worker; a free thread is left for beat's control tasks

# Our defaults (the embedded defaults of retrovue/settings.py), set explicitly so that this
# process, both workers and beat share them whatever the calling shell exports.
OURS_ENV = {
    "RETROVUE_HEARTBEAT_SECONDS": "1",
    "RETROVUE_LEASE_TTL_SECONDS": "3",
    "RETROVUE_LEASE_SWEEP_SECONDS": "1",
    "RETROVUE_STALL_SECONDS": "2",
    "RETROVUE_AUTO_RESTART": "1",
    "RETROVUE_MAX_RESTART_ATTEMPTS": "3",
    "RETROVUE_RESTART_DELAY_SECONDS": "0",
    "RETROVUE_LOG_LEVEL": "INFO",
}
# The seed checked health every 30 s and waited 30 s before a restart. For host loss that is a
# sweep every 30 s; the lease TTL must exceed the sweep interval (at TTL <= interval every sweep
# starts a grace period, see streams_app/control_loops.py), so it is 31 s, the least whole second
# above it. For an FFmpeg crash it is restart_delay_seconds 30 in the channel's failover_settings.
SEED_HOST_ENV = {**OURS_ENV, "RETROVUE_LEASE_SWEEP_SECONDS": "30", "RETROVUE_LEASE_TTL_SECONDS": "31"}
SEED_RESTART_DELAY = 30

# label -> (channel number = UDP port, failover_settings)
CHANNELS = {
    "kill-ours": (6201, {}),
    "kill-seed": (6202, {"restart_delay_seconds": SEED_RESTART_DELAY}),
    "stall": (6203, {}),
    "host": (6204, {}),
    "frozen": (6205, {}),
}
FROZEN_AFTER_MOVE = 2.0  # the frozen host stays frozen this long after its channel moved
PRE_SECONDS = 1.5   # steady output before each event (its longest gap is the baseline jitter)
TAIL_SECONDS = 1.5  # output must flow this long after it is back before the outage is measured
TARGET_CRASH = 1.0
TARGET_HOST, STRETCH_HOST = 10.0, 5.0

clusters = []  # every cluster started, for the clean-up
_configured = False  # Django is set up: the clean-up may use the database


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5,
                        help="runs of each scenario with our defaults (default 5)")
    parser.add_argument("--seed-runs", type=int, default=2,
                        help="runs of each scenario with the seed's timings, ~35-65 s each; 0 skips "
                             "them (default 2)")
    args = parser.parse_args()
    if args.runs < 1 or args.seed_runs < 0:
        parser.error("--runs must be at least 1 and --seed-runs at least 0")
    return args


def on_sigterm(signum, _frame):
    """Turn SIGTERM into SystemExit so that the clean-up in main() runs."""
    sys.exit(128 + signum)


# --- the independent receiver -------------------------------------------------------------------
class Recorder:
    """Receives a channel's UDP output in a thread and notes each datagram's arrival (monotonic)."""

    def __init__(self, port):
        self.sock = common.udp_receiver(port, timeout=0.1)
        self.arrivals, self.senders, self.datagrams = [], [], []
        self.running = True
        self.thread = threading.Thread(target=self._receive, name=f"udp-{port}", daemon=True)
        self.thread.start()

    def _receive(self):
        while self.running:
            try:
                data, sender = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.datagrams.append(data)  # before the arrival: the lists are read while they grow
            self.senders.append(sender)
            self.arrivals.append(time.monotonic())

    def arrived_since(self, t):
        return bool(self.arrivals) and self.arrivals[-1] > t

    def longest_gap(self, start, end):
        """(seconds, from, to) of the longest silence within [start, end], edges included."""
        times = [start] + [t for t in list(self.arrivals) if start <= t <= end] + [end]
        return max(((b - a, a, b) for a, b in zip(times, times[1:])), key=lambda gap: gap[0])

    def publishers(self, start, end):
        """{sender address: [first, last] arrival} within [start, end]: each FFmpeg sends from
        a port of its own, so two senders at once are two hosts publishing one channel."""
        spans = {}
        for at, sender in zip(list(self.arrivals), list(self.senders)):
            if start <= at <= end:
                spans.setdefault(sender, [at, at])[1] = at
        return spans

    def stop(self):
        self.running = False
        self.thread.join()
        self.sock.close()


# --- processes ----------------------------------------------------------------------------------
class Cluster:
    """Two encode workers and beat, all started with the current os.environ."""

    def __init__(self, label):
        self.label = label
        self.workers = {}
        self.beat = None
        self.incarnation = 0

    def start_worker(self, host):
        self.incarnation += 1
        log = DATA_DIR / f"worker-{self.label}-{host}-{self.incarnation}.log"
        self.workers[host] = common.Worker(host, CAPACITY, log)
        return self.workers[host]

    def start(self):
        started_at = time.time()
        for host in HOSTS:
            self.start_worker(host)
        for worker in self.workers.values():
            worker.wait_live()
        self.beat = common.Beat(DATA_DIR / f"beat-{self.label}.log")
        wait_sweep_effective(since=started_at)

    def stop(self):
        if self.beat:
            self.beat.stop()
        for worker in self.workers.values():
            worker.stop()


def wait_sweep_effective(since):
    """Wait until beat's lease sweep has run (after `since`) outside its start-up grace period:
    the first sweep after a gap gives every lease one TTL to renew before judging any."""
    from django.conf import settings

    from streams_app.models import ControlLoopRun

    ttl = settings.RETROVUE_LEASE_TTL_SECONDS
    every = settings.RETROVUE_LEASE_SWEEP_SECONDS

    def effective():
        marks = dict(ControlLoopRun.objects.filter(name__in=["lease-sweep", "lease-sweep:grace"])
                     .values_list("name", "last_run_at"))
        last, grace = marks.get("lease-sweep"), marks.get("lease-sweep:grace")
        return last and last.timestamp() > since and grace and (last - grace).total_seconds() > ttl

    common.wait_for(effective, timeout=ttl + 3 * every + 30, interval=0.2,
                    what="beat's lease sweep (past its start-up grace)")


def boot_clock_start(pid):
    """CLOCK_BOOTTIME at which the kernel created `pid` (10 ms ticks), or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_gone(pid):
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- channels -----------------------------------------------------------------------------------
def create_channels(clip):
    from channels_app.services import create_channel

    return {label: create_channel({
        "name": f"bench failover {label}", "number": number, "quality": "copy",
        "playlist": [str(clip)], "failover_settings": failover,
        "network_settings": {"protocol": "udp", "multicast_address": "127.0.0.1", "port": number}})
        for label, (number, failover) in CHANNELS.items()}


def current_run(channel):
    from channels_app.models import Channel
    from streams_app.models import Stream

    generation = Channel.objects.get(pk=channel.pk).generation
    return Stream.objects.filter(channel_id=channel.pk, generation=generation).first()


def running_run(channel, timeout=20):
    """The channel's current run once it is RUNNING with FFmpeg's pid recorded."""
    from channels_app.models import Channel

    def running():
        row = Channel.objects.get(pk=channel.pk)
        if row.status == Channel.Status.ERROR:
            raise RuntimeError(f"{channel} failed: {row.status_reason}")
        run = current_run(channel)
        return row.status == Channel.Status.RUNNING and run and run.status == "RUNNING" and run.pid and run

    return common.wait_for(running, timeout=timeout, what=f"{channel} RUNNING")


def start_and_settle(channel, recorder):
    """Start the channel, wait for RUNNING and for PRE_SECONDS of output; returns the run."""
    from channels_app.services import get_channel
    from streams_app.lifecycle import start_channel

    start_channel(get_channel(channel.pk))
    run = running_run(channel)
    common.wait_for(lambda: recorder.arrived_since(time.monotonic() - 0.2), timeout=10,
                    what=f"output of {channel}")
    time.sleep(PRE_SECONDS)
    return run


def stop_and_wait(channel):
    """Stop the channel; return once it is STOPPED and its FFmpeg has exited."""
    from channels_app.models import Channel
    from channels_app.services import get_channel
    from streams_app.lifecycle import stop_channel

    run = current_run(channel)
    stop_channel(get_channel(channel.pk))
    common.wait_for(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.STOPPED,
                    timeout=20, what=f"{channel} STOPPED")
    if run and run.pid:
        common.wait_for(lambda: process_gone(run.pid), timeout=10, what=f"FFmpeg {run.pid} gone")


class Event:
    """The moment of the fault on every clock the phases are measured with."""

    def __init__(self):
        self.boot = time.clock_gettime(time.CLOCK_BOOTTIME)
        self.wall = time.time()
        self.mono = time.monotonic()


def measure_outage(recorder, event, result):
    """Once output is back (a datagram after `result`'s observation time) and has flowed for
    TAIL_SECONDS, fill in the outage, when the output came back, and the baseline jitter."""
    seen = time.monotonic()
    common.wait_for(lambda: recorder.arrived_since(seen), timeout=10, what="output back")
    time.sleep(TAIL_SECONDS)
    gap, _start, end = recorder.longest_gap(event.mono - 0.2, time.monotonic())
    result["outage"] = gap
    result["output back"] = end - event.mono
    result["baseline"] = recorder.longest_gap(event.mono - PRE_SECONDS, event.mono)[0]
    # What a receiver's analyser makes of the capture around the event (tests/tsanalysis.py): an
    # output that restarts announces its new counters and time base; nothing else may jump.
    around = [data for data, at in zip(list(recorder.datagrams), list(recorder.arrivals))
              if at >= event.mono - PRE_SECONDS]
    ts = analyze(b"".join(around))
    result.update({"cc errors": ts.cc_errors, "pcr faults": ts.pcr_backwards + ts.pcr_jumps,
                   "announced": ts.announced, "pcr interval ms": ts.longest_pcr_interval() * 1000})
    return result


# --- scenarios ----------------------------------------------------------------------------------
def ffmpeg_fault(channel, recorder, sig, timeout):
    """SIGKILL or SIGSTOP the channel's FFmpeg; the supervisor restarts it in place."""
    run = start_and_settle(channel, recorder)
    old = run.pid
    event = Event()
    os.kill(old, sig)
    try:
        new = common.wait_for(lambda: (pid := current_run(channel).pid) != old and pid,
                              timeout=timeout, interval=0.02, what="a new FFmpeg")
        forked = boot_clock_start(new)
        running_run(channel, timeout=15)
        result = measure_outage(recorder, event, {
            "new FFmpeg": None if forked is None else forked - event.boot,
            "placements": 0})
    finally:
        if sig == signal.SIGSTOP and not process_gone(old):
            os.kill(old, signal.SIGKILL)  # the supervisor did not: never leave it frozen
    stop_and_wait(channel)
    return result


def at_sweep_phase(fraction):
    """Sleep until `fraction` of a sweep interval after one of beat's lease sweeps; returns the
    seconds after the sweep. The outage depends on where in the sweep cycle the host dies, and the
    bench's own rhythm would otherwise pick the same phase every run: runs are spread evenly."""
    from django.conf import settings

    from streams_app.models import ControlLoopRun

    every = settings.RETROVUE_LEASE_SWEEP_SECONDS
    last = ControlLoopRun.objects.get(name="lease-sweep").last_run_at.timestamp()
    target = last + fraction * every
    while target < time.time() + 0.05:
        target += every
    time.sleep(target - time.time())
    return fraction * every


def host_loss(channel, recorder, cluster, timeout, fraction):
    """SIGKILL the worker running the channel; beat's sweep re-places it on the other host."""
    from streams_app.models import Stream

    run = start_and_settle(channel, recorder)
    victim = cluster.workers[run.host]
    phase = at_sweep_phase(fraction)
    event = Event()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    common.wait_for(lambda: process_gone(run.pid), timeout=5, interval=0.01,
                    what="FFmpeg killed by the parent-death signal")
    ffmpeg_gone = time.monotonic() - event.mono

    def moved():
        now = current_run(channel)
        return now.generation > run.generation and now.status == "RUNNING" and now.pid and now

    moved_run = common.wait_for(moved, timeout=timeout, interval=0.05, what=f"{channel} re-placed")
    forked = boot_clock_start(moved_run.pid)
    old = Stream.objects.get(pk=run.pk)
    later = list(Stream.objects.filter(channel_id=channel.pk, generation__gt=run.generation)
                 .order_by("generation"))
    result = measure_outage(recorder, event, {
        "kill phase": phase,
        "FFmpeg gone": ffmpeg_gone,
        "lease expired": old.ended_at.timestamp() - event.wall if old.ended_at else None,
        "re-placed": later[-1].created_at.timestamp() - event.wall,
        "new FFmpeg": None if forked is None else forked - event.boot,
        "placements": len(later),
        "route": " > ".join([run.host] + [s.host for s in later]),
    })
    stop_and_wait(channel)
    cluster.start_worker(run.host).wait_live()
    return result


def frozen_host(channel, recorder, cluster, timeout, fraction):
    """SIGSTOP the worker running the channel (its FFmpeg, in a session of its own, is not
    stopped); once the sweep has moved the channel and the new host publishes, SIGCONT it."""
    import psutil

    run = start_and_settle(channel, recorder)
    victim = cluster.workers[run.host]
    phase = at_sweep_phase(fraction)
    event = Event()
    frozen = psutil.Process(victim.proc.pid)
    frozen.suspend()
    try:
        common.wait_for(lambda: (now := current_run(channel)).generation > run.generation
                        and now.status == "RUNNING", timeout=timeout, interval=0.05, what=f"{channel} re-placed")
        time.sleep(FROZEN_AFTER_MOVE)
    finally:
        frozen.resume()
    resumed = time.monotonic()
    common.wait_for(lambda: process_gone(run.pid), timeout=10, interval=0.02,
                    what="the frozen host's FFmpeg gone once it resumed")
    result = measure_outage(recorder, event, {"kill phase": phase, "placements": 1,
                                              "route": f"{run.host} > {current_run(channel).host}"})
    spans = recorder.publishers(event.mono - PRE_SECONDS, time.monotonic())
    old = next(span for span in spans.values() if span[0] < event.mono)
    newer = [span for span in spans.values() if span is not old]
    result["double publishing"] = max([0.0] + [min(old[1], span[1]) - max(old[0], span[0]) for span in newer])
    result["old sent after freeze"] = old[1] - event.mono
    result["old sent after resume"] = max(0.0, old[1] - resumed)
    stop_and_wait(channel)
    victim.wait_live()
    return result


def repeat(label, runs, scenario):
    results = []
    for n in range(runs):
        result = scenario((n + 0.5) / runs)
        results.append(result)
        route = (f", killed {result['kill phase']:.2f} s after a sweep, {result['route']}"
                 if "route" in result else "")
        if "double publishing" in result:
            route += (f", double publishing {result['double publishing']:.3f} s, old output stopped "
                      f"{result['old sent after freeze'] * 1000:.0f} ms after the freeze")
        print(f"  {label} run {n + 1}/{runs}: outage {result['outage']:.2f} s "
              f"(baseline gap {result['baseline'] * 1000:.0f} ms{route}); capture: {result['cc errors']} CC errors, "
              f"{result['pcr faults']} PCR faults, {result['announced']} announced restarts, longest PCR interval "
              f"{result['pcr interval ms']:.1f} ms", flush=True)
    return results


def measure(args, channels, recorders):
    """Every scenario; returns [(scenario, config, results)] in table order."""
    from django.conf import settings
    from django.test import override_settings

    stall, ttl = settings.RETROVUE_STALL_SECONDS, settings.RETROVUE_LEASE_TTL_SECONDS
    every = settings.RETROVUE_LEASE_SWEEP_SECONDS
    out = []
    cluster = Cluster("ours")
    clusters.append(cluster)
    cluster.start()
    print(f"workers {', '.join(HOSTS)} and beat up (ours: sweep every {every} s, lease TTL {ttl:g} s)",
          flush=True)

    def kill(label, delay):
        return lambda _fraction: ffmpeg_fault(channels[label], recorders[label], signal.SIGKILL, delay + 15)

    out.append(("FFmpeg SIGKILL", "ours: restart_delay 0", repeat(
        "FFmpeg SIGKILL, ours", args.runs, kill("kill-ours", 0))))
    out.append(("FFmpeg SIGSTOP (stall)", f"ours: stall {stall:g} s", repeat(
        "FFmpeg SIGSTOP, ours", args.runs,
        lambda _fraction: ffmpeg_fault(channels["stall"], recorders["stall"], signal.SIGSTOP, stall + 15))))
    out.append(("worker SIGKILL (host loss)", f"ours: sweep {every} s, TTL {ttl:g} s", repeat(
        "worker SIGKILL, ours", args.runs,
        lambda fraction: host_loss(channels["host"], recorders["host"], cluster,
                                   ttl + 3 * every + 30, fraction))))
    out.append(("worker SIGSTOP (frozen host)", f"ours: sweep {every} s, TTL {ttl:g} s", repeat(
        "worker SIGSTOP, ours", args.runs,
        lambda fraction: frozen_host(channels["frozen"], recorders["frozen"], cluster,
                                     ttl + 3 * every + 30, fraction))))
    if args.seed_runs:
        out.append(("FFmpeg SIGKILL", f"seed: restart_delay {SEED_RESTART_DELAY}", repeat(
            "FFmpeg SIGKILL, seed", args.seed_runs, kill("kill-seed", SEED_RESTART_DELAY))))
    cluster.stop()
    if not args.seed_runs:
        return out

    # The seed's host-loss timings: fresh workers and beat with the seed's environment, and
    # beat's schedule rewritten from it by the function `migrate` runs (ensure_beat_schedule).
    import redis
    from django.apps import apps

    from streams_app.signals import ensure_beat_schedule

    redis.Redis.from_url(REDIS_URL).flushdb()
    os.environ.update(SEED_HOST_ENV)
    every = int(SEED_HOST_ENV["RETROVUE_LEASE_SWEEP_SECONDS"])
    ttl = float(SEED_HOST_ENV["RETROVUE_LEASE_TTL_SECONDS"])
    with override_settings(RETROVUE_LEASE_SWEEP_SECONDS=every, RETROVUE_LEASE_TTL_SECONDS=ttl):
        ensure_beat_schedule(apps.get_app_config("streams_app"))
        cluster = Cluster("seed")
        clusters.append(cluster)
        print(f"workers and beat restarted with the seed's timings (sweep every {every} s, lease TTL "
              f"{ttl:g} s); waiting for the sweep to be past its start-up grace", flush=True)
        cluster.start()
        out.append(("worker SIGKILL (host loss)", f"seed: sweep {every} s, TTL {ttl:g} s", repeat(
            "worker SIGKILL, seed", args.seed_runs,
            lambda fraction: host_loss(channels["host"], recorders["host"], cluster,
                                       ttl + 3 * every + 60, fraction))))
        cluster.stop()
    return out



# --- reporting ----------------------------------------------------------------------------------
PHASES = ("FFmpeg gone", "lease expired", "re-placed", "new FFmpeg", "output back")


def cell(values, fmt="{:.2f}"):
    values = [v for v in values if v is not None]
    return fmt.format(statistics.median(values)) if values else "-"


def report(out):
    print("\noutage = longest silence of the UDP output around the event, seconds")
    rows = []
    for scenario, config, results in out:
        runs, median, low, high = common.summary([r["outage"] for r in results])
        rows.append((scenario, config, runs, f"{median:.2f}", f"{low:.2f}", f"{high:.2f}"))
    print(common.table(("scenario", "config", "runs", "median s", "min s", "max s"), rows))

    print("\nphase medians, seconds after the event (FFmpeg gone: polled; lease expired, re-placed: "
          "database timestamps; new FFmpeg: kernel start time, 10 ms ticks; output back: receiver)")
    print(common.table(("scenario / config", *PHASES, "placements", "baseline gap ms"), [
        (f"{scenario} / {config.split(':')[0]}", *(cell([r.get(p) for r in results]) for p in PHASES),
         "/".join(str(r["placements"]) for r in results),
         cell([r["baseline"] * 1000 for r in results], "{:.0f}"))
        for scenario, config, results in out]))

    print("\nconformance of the capture around the event (tests/tsanalysis.py), summed (PCR interval: longest)")
    print(common.table(("scenario / config", "CC errors", "PCR faults", "announced restarts", "longest PCR ms"), [
        (f"{scenario} / {config.split(':')[0]}", sum(r["cc errors"] for r in results),
         sum(r["pcr faults"] for r in results), sum(r["announced"] for r in results),
         f"{max(r['pcr interval ms'] for r in results):.1f}")
        for scenario, config, results in out]))

    def verdict(results, target):
        outages = [r["outage"] for r in results]
        over = sum(o > target for o in outages)
        return (f"median {statistics.median(outages):.2f} s, max {max(outages):.2f} s -> "
                + ("MET in every run" if not over else f"MISSED in {over} of {len(outages)} runs"))

    print("\ntargets")
    crash = next(r for s, c, r in out if s == "FFmpeg SIGKILL" and c.startswith("ours"))
    host = next(r for s, c, r in out if s.startswith("worker") and c.startswith("ours"))
    print(f"  FFmpeg crash, restart_delay 0, output back within {TARGET_CRASH:g} s: "
          f"{verdict(crash, TARGET_CRASH)}")
    print(f"  host loss, output back within {TARGET_HOST:g} s: {verdict(host, TARGET_HOST)}")
    print(f"  host loss, stretch {STRETCH_HOST:g} s: {verdict(host, STRETCH_HOST)}")
    frozen = next(r for s, c, r in out if s.startswith("worker SIGSTOP"))
    double = [r["double publishing"] for r in frozen]
    print(f"  frozen host, output back within {TARGET_HOST:g} s: {verdict(frozen, TARGET_HOST)}")
    print(f"  frozen host, two hosts publishing at once: max {max(double):.3f} s over {len(double)} runs -> "
          + ("MET (0) in every run" if not any(double) else "MISSED"))


def machine():
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()
    return (f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"FFmpeg {ffmpeg[2] if len(ffmpeg) > 2 else '?'}, Python {platform.python_version()}")


# --- clean-up -----------------------------------------------------------------------------------
def clean_up(recorders):
    """Stop beat, the channels and every worker, then any FFmpeg left under our data folder."""
    for cluster in clusters:
        if cluster.beat:
            cluster.beat.stop()
    if "django" in sys.modules and _configured:
        from channels_app.models import Channel
        from streams_app.lifecycle import stop_channel

        common.for_each_channel(Channel.objects.filter(name__startswith="bench failover "),
                                stop_channel, "stop")
    for cluster in clusters:
        for worker in cluster.workers.values():
            worker.stop()
    for recorder in recorders.values():
        recorder.stop()
    left = common.kill_ffmpeg(DATA_DIR)
    if left:
        print(f"warning: killed {left} FFmpeg process(es) left behind", file=sys.stderr)
    if _configured:
        from channels_app.models import Channel
        from channels_app.services import delete_channel

        common.for_each_channel(Channel.objects.filter(name__startswith="bench failover "),
                                delete_channel, "remove")


def main():
    global _configured
    args = parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    os.environ.update(OURS_ENV)  # before configure(): migrate writes beat's schedule from it
    recorders = {}
    try:
        common.configure_isolated(DATA_DIR, REDIS_URL)
        _configured = True
        print(f"failover, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {machine()}")
        print(f"runs: {args.runs} with our defaults, {args.seed_runs} with the seed's timings; "
              f"data in {DATA_DIR}, broker {REDIS_URL}", flush=True)
        clip = common.make_clip(DATA_DIR / "media" / "clip.mp4", size="640x360")
        channels = create_channels(clip)
        recorders = {label: Recorder(number) for label, (number, _f) in CHANNELS.items()}
        report(measure(args, channels, recorders))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        clean_up(recorders)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
