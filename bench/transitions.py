#!/usr/bin/env python
"""Program transitions: what a receiver sees at a program boundary and at a switch, for the
scheduled playout engine and for a naive restart-per-program baseline measured in the same run.

    python bench/transitions.py [--runs 3] [--load 2]

Everything is real: one encode worker subprocess (host bench-t), Redis (DB 11,
RETROVUE_TRANSITIONS_BENCH_REDIS_URL), the database, FFmpeg. The bench's own database and data
folder (var/transitions-bench), UDP ports 6301-6303 on 127.0.0.1 only.

Programs are solid-colour clips generated with lavfi, 320x240 at 30 fps: A red (10 s), B blue
(5 s), C green (5 s, the switch target); the slate is colour bars. A receiver thread in this
process, independent of RetroVue, keeps every datagram and its arrival time (time.monotonic). The
capture is then judged by an independent TS reader (tests/tsanalysis.py: continuity counters,
PCR, the datagram carrying each video frame's start) and by FFmpeg's signalstats, which tells
from each decoded frame's average chroma which program it came from.

- transcode: a channel with quality 480p overridden to 320x240, 30 fps, preset ultrafast, whose
  schedule is A at T+3 s and B right after it; 2 s into B the switch service is asked for C.
- copy: the same schedule and switch on a copy-mode channel (quality copy at 320x240, 30 fps; the
  clips are already in that format), aired by the copy mode of the playout engine (streams_app/playout/copy.py): no
  re-encode, one persistent output stage fed by a TS splicer.
- naive: what a restart-per-program playout loop does: a bare `ffmpeg -re -i A.mp4 ... -f mpegts
  udp://...` started at A's scheduled time, a new one for B started when it exits, and for the
  switch B's FFmpeg stopped and one for C started.

How to read the figures: docs/BENCHMARKS.md.
"""
import argparse
import datetime
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from tests.tsanalysis import analyze, frame_arrivals  # noqa: E402

# Not var/bench-...: the start-latency bench kills every FFmpeg whose argv contains "var/bench".
DATA_DIR = common.ROOT / "var" / "transitions-bench"
REDIS_URL = os.environ.get("RETROVUE_TRANSITIONS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
HOST = "bench-t"
ENGINE_PORT, NAIVE_PORT, COPY_PORT = 6301, 6302, 6303  # a channel's number is its port
CHANNEL_NAME = "bench transitions"
CHANNELS = {ENGINE_PORT: ("480p", CHANNEL_NAME), COPY_PORT: ("copy", CHANNEL_NAME + " copy")}

FPS = 30
SIZE = "320x240"
# name -> (lavfi colour, seconds, tone Hz)
CLIPS = {"A": ("red", 10, 440), "B": ("blue", 5, 880), "C": ("lime", 5, 660)}
COLOUR = {"A": "red", "B": "blue", "C": "green"}
EXPECTED_A = CLIPS["A"][1] * FPS
LEAD_SECONDS = 3.0      # A is scheduled this long after the channel is started
SWITCH_AFTER_B = 2.0    # the switch to C is requested this long after B's scheduled start
TAIL_SECONDS = 3.0      # captured after the switch request
GAP_WINDOW = 0.5        # the boundary gap is looked for this far either side of the boundary

TARGET_GAP_MS = 50
TARGET_FRAMES = 1
TARGET_BOUNDARY_MS = 100
TARGET_SWITCH_MS = 1000

worker = None
extra_procs = []  # FFmpeg the bench starts itself (the naive baseline, --load): stopped in clean_up()
recorders = []
_configured = False


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each mode (default 3)")
    parser.add_argument("--size", default=SIZE, help=f"the clips' and channels' size (default {SIZE})")
    parser.add_argument("--bitrate", default=None,
                        help="the clips' video bitrate, e.g. 5M (default: what x264 spends on a solid colour, "
                             "~30 kbit/s); with it the clips carry luma noise that costs that rate")
    parser.add_argument("--load", type=int, default=0,
                        help="extra transcodes loading the host meanwhile (default 0; e.g. 2)")
    args = parser.parse_args()
    if args.runs < 1 or args.load < 0:
        parser.error("--runs must be at least 1 and --load at least 0")
    return args


def start_load(count):
    """`count` bare FFmpeg transcodes at real time (640x360, veryfast) that load the host as other
    channels would; they write nowhere (-f null). Stopped in clean_up()."""
    for _ in range(count):
        extra_procs.append(subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
             "testsrc2=size=640x360:rate=30",
             "-c:v", "libx264", "-preset", "veryfast", "-f", "null", "-"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))


def on_sigterm(signum, _frame):
    """Turn SIGTERM into SystemExit so that the clean-up in main() runs."""
    sys.exit(128 + signum)


def sleep_until(moment):
    time.sleep(max(0.0, moment - time.monotonic()))


# --- the independent receiver -------------------------------------------------------------------
class Recorder:
    """Receives UDP on 127.0.0.1:port in a thread, keeping each datagram and its arrival time."""

    def __init__(self, port):
        self.sock = common.udp_receiver(port, timeout=0.1)
        self.datagrams, self.arrivals = [], []
        self.running = True
        self.thread = threading.Thread(target=self._receive, name=f"udp-{port}", daemon=True)
        self.thread.start()
        recorders.append(self)

    def _receive(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.arrivals.append(time.monotonic())
            self.datagrams.append(data)

    def max_gap(self, start, end):
        return self.longest_gap(start, end)[0]

    def longest_gap(self, start, end):
        """(seconds, time it began) of the longest silence within [start, end], edges included."""
        times = [start] + [t for t in self.arrivals if start <= t <= end] + [end]
        return max((b - a, a) for a, b in zip(times, times[1:]))

    def stop(self):
        if self.running:
            self.running = False
            self.thread.join()
            self.sock.close()


# --- media and analysis -------------------------------------------------------------------------
def make_clips(size, bitrate):
    """Solid-colour H.264/AAC clips (a keyframe a second), imported as media assets. With a
    bitrate, noise on the luma makes them cost it (the chroma, which tells the programs apart,
    stays the colour's)."""
    from channels_app import media

    assets = {}
    for name, (colour, seconds, tone) in CLIPS.items():
        path = DATA_DIR / "media" / f"{name}-{colour}-{size}-{bitrate or 'crf'}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        video = f"color=c={colour}:size={size}:rate={FPS}" + (",noise=c0s=40:c0f=t+u" if bitrate else "")
        rate = ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate else []
        if not path.exists():
            subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                            "-f", "lavfi", "-i", video,
                            "-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000",
                            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", *rate,
                            "-g", str(FPS), "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                            str(path)], check=True)
        assets[name] = media.resolve_asset(str(path))
    return assets


FRAME_LINE = re.compile(r"^frame:\s*\d+")
STAT_LINE = re.compile(r"^lavfi\.signalstats\.([UV])AVG=([\d.]+)")


def classify(u, v):
    if v > 200 and u < 110:
        return "red"
    if u > 200 and v < 150:
        return "blue"
    if u < 100 and v < 100:
        return "green"
    return "other"


def frame_colours(capture):
    """The colour of every decoded frame of a capture, in stream order. FFmpeg decodes it with
    passthrough timing, so no frame is dropped or repeated when the timestamps restart (as they
    do between the baseline's FFmpeg runs)."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(capture),
         "-map", "0:v:0", "-vf", "signalstats,metadata=mode=print:file=-",
         "-fps_mode", "passthrough", "-f", "null", "-"],
        capture_output=True, text=True, check=True).stdout
    colours, stats = [], None
    for line in out.splitlines():
        if FRAME_LINE.match(line):
            if stats is not None:
                colours.append(classify(stats.get("U", 128), stats.get("V", 128)))
            stats = {}
        elif stats is not None and (m := STAT_LINE.match(line)):
            stats[m.group(1)] = float(m.group(2))
    if stats is not None:
        colours.append(classify(stats.get("U", 128), stats.get("V", 128)))
    return colours


def runs_of(colours):
    """[(colour, count, index of its first frame)] of consecutive frames of one colour."""
    found = []
    for index, colour in enumerate(colours):
        if found and found[-1][0] == colour:
            found[-1][1] += 1
        else:
            found.append([colour, 1, index])
    return [tuple(r) for r in found]


def judge(recorder, capture, sched_a, sched_b, asked):
    """The figures of one run from its capture; times are monotonic seconds."""
    capture.write_bytes(b"".join(recorder.datagrams))
    report = analyze(capture.read_bytes())
    colours = frame_colours(capture)
    arrivals = frame_arrivals(recorder.datagrams, recorder.arrivals)
    sequence = runs_of(colours)
    margins = report.delivery_margins()
    result = {"cc": report.cc_errors, "pcr": report.pcr_backwards + report.pcr_jumps,
              "pcr_backwards": report.pcr_backwards, "frames_decoded": len(colours),
              "pcr_interval_ms": report.longest_pcr_interval() * 1000, "dts_order": report.dts_order_faults(),
              "margin_ms": min(margins.values()) * 1000 if margins else None,
              "frames_sent": len(arrivals), "sequence": sequence,
              "datagrams": len(recorder.datagrams)}

    def first(colour, after=0):
        return next((i for i, c in enumerate(colours) if c == colour and i >= after), None)

    def arrival(index):
        return arrivals[index] if index is not None and index < len(arrivals) else None

    a_first = first("red")
    b_first = first("blue", after=a_first or 0)
    if a_first is not None:
        result["a_start_ms"] = _ms(arrival(a_first), sched_a)
        end = b_first if b_first is not None else len(colours)
        result["frames_a"] = sum(c == "red" for c in colours[a_first:end])
        result["a_contiguous"] = all(c == "red" for c in colours[a_first:a_first + result["frames_a"]])
    # The same measure over 6 s in the middle of A, with no transition in it: the output's own
    # jitter, against which the boundary's gap is to be read.
    result["steady_gap_ms"] = recorder.max_gap(sched_a + 2, sched_a + 8) * 1000
    if b_first is not None:
        first_b = arrival(b_first)
        result["boundary_ms"] = _ms(first_b, sched_b)
        last_a = arrival(b_first - 1)
        low = min(t for t in (sched_b, last_a) if t is not None) - GAP_WINDOW
        high = max(t for t in (sched_b, first_b) if t is not None) + GAP_WINDOW
        gap, began = recorder.longest_gap(low, high)
        result["gap_ms"], result["gap_at_ms"] = gap * 1000, _ms(began, sched_b)
    c_first = first("green", after=b_first or 0)
    if c_first is not None:
        result["switch_ms"] = _ms(arrival(c_first), asked)
        first_c = arrival(c_first)
        if first_c is not None:
            result["switch_gap_ms"] = recorder.max_gap(asked - GAP_WINDOW, first_c + GAP_WINDOW) * 1000
    return result


def _ms(t, reference):
    return None if t is None or reference is None else (t - reference) * 1000


# --- the playout engine through the real worker ------------------------------------------------
def create_channel(number, size):
    from channels_app import services
    from channels_app.models import Channel

    quality, name = CHANNELS[number]
    for old in Channel.objects.filter(number=number):
        if old.name != name:  # with DATABASE_URL set, never touch someone else's channel
            raise RuntimeError(f"channel {number} exists and is not the bench's ({old.name})")
        services.delete_channel(old)
    return services.create_channel({
        "name": name, "number": number, "quality": quality,
        "stream_settings": {"resolution": size, "frame_rate": FPS},
        "quality_settings": {"preset": "ultrafast"},
        "network_settings": {"multicast_address": "127.0.0.1", "port": number}})


def wait_running(channel):
    from channels_app.models import Channel

    def running():
        row = Channel.objects.get(pk=channel.pk)
        if row.status == Channel.Status.ERROR:
            raise RuntimeError(f"{channel} failed: {row.status_reason}")
        return row.status == Channel.Status.RUNNING

    common.wait_for(running, timeout=20, what=f"{channel} RUNNING")


def stop_and_wait(channel):
    """Stop the channel; return once it is STOPPED and its encoder has exited."""
    import psutil

    from channels_app.models import Channel
    from channels_app.services import get_channel
    from streams_app.lifecycle import stop_channel
    from streams_app.models import Stream

    row = Channel.objects.get(pk=channel.pk)
    run = Stream.objects.filter(channel_id=channel.pk, generation=row.generation).first()
    stop_channel(get_channel(channel.pk))
    common.wait_for(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.STOPPED,
                    timeout=20, what=f"{channel} STOPPED")

    def gone():
        try:
            return psutil.Process(run.pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    if run and run.pid:
        common.wait_for(gone, timeout=10, what=f"encoder {run.pid} gone")


def engine_run(channel, assets, n, name="engine"):
    """One run of the scheduled channel: slate, A at T+3 s, B after it, a switch to C."""
    from django.utils import timezone

    from channels_app.models import Channel
    from channels_app.schedules import replace_schedule, switch_channel
    from channels_app.services import get_channel
    from streams_app.lifecycle import start_channel

    Channel.objects.filter(pk=channel.pk).update(switch_asset=None, switch_requested_at=None)
    recorder = Recorder(channel.number)  # before the start: the capture begins with a keyframe
    try:
        start_at = timezone.now() + datetime.timedelta(seconds=LEAD_SECONDS)
        sched_a = time.monotonic() + (start_at - timezone.now()).total_seconds()
        sched_b = sched_a + CLIPS["A"][1]
        replace_schedule(channel, {"programs": [{"asset": assets["A"].pk, "start": start_at},
                                                {"asset": assets["B"].pk}]})
        start_channel(get_channel(channel.pk))
        wait_running(channel)
        sleep_until(sched_b + SWITCH_AFTER_B)
        asked = time.monotonic()
        switch_channel(get_channel(channel.pk), assets["C"].pk)
        sleep_until(asked + TAIL_SECONDS)
    finally:
        recorder.stop()
    stop_and_wait(channel)
    return judge(recorder, DATA_DIR / f"{name}-{n}.ts", sched_a, sched_b, asked)


# --- the naive baseline -------------------------------------------------------------------------
def naive_argv(clip, log_level="error"):
    """A bare FFmpeg per program, encoding like the engine's channel (x264 ultrafast,
    zerolatency, 2 s GOP, AAC 48 kHz stereo), MPEG-TS to the same kind of UDP output."""
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", log_level, "-re", "-i", str(clip),
            "-map", "0:v:0", "-map", "0:a:0", "-c:v", "libx264", "-preset", "ultrafast",
            "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-g", str(2 * FPS),
            "-keyint_min", str(2 * FPS), "-sc_threshold", "0", "-crf", "23", "-maxrate", "1800k",
            "-bufsize", "3600k", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2",
            "-f", "mpegts", f"udp://127.0.0.1:{NAIVE_PORT}?pkt_size=1316"]


def naive_start(clip, log):
    proc = subprocess.Popen(naive_argv(clip), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log, start_new_session=True)
    extra_procs.append(proc)
    return proc


def naive_run(assets, n):
    """A restart-per-program loop: A at its scheduled time, B when A's FFmpeg exits; the switch
    stops B's FFmpeg and starts one for C."""
    clips = {name: Path(asset.source) for name, asset in assets.items()}
    recorder = Recorder(NAIVE_PORT)
    try:
        with open(DATA_DIR / "naive.log", "ab") as log:
            sched_a = time.monotonic() + 1.0
            sched_b = sched_a + CLIPS["A"][1]
            sleep_until(sched_a)
            proc = naive_start(clips["A"], log)
            proc.wait()
            proc = naive_start(clips["B"], log)
            sleep_until(sched_b + SWITCH_AFTER_B)
            asked = time.monotonic()
            common.stop_process(proc)
            proc = naive_start(clips["C"], log)
            sleep_until(asked + TAIL_SECONDS)
            common.stop_process(proc)
    finally:
        recorder.stop()
        for proc in extra_procs:
            common.stop_process(proc)
    return judge(recorder, DATA_DIR / f"naive-{n}.ts", sched_a, sched_b, asked)


# --- reporting ----------------------------------------------------------------------------------
def describe(label, n, runs, r):
    def f(key, fmt="{:.0f}"):
        return "-" if r.get(key) is None else fmt.format(r[key])

    warn = ""
    if abs(r["frames_decoded"] - r["frames_sent"]) > 1:
        warn = f" [decoded {r['frames_decoded']} frames of {r['frames_sent']} sent: timings unreliable]"
    if r.get("frames_a") is not None and not r.get("a_contiguous"):
        warn += " [A's frames not contiguous]"
    print(f"  {label} run {n}/{runs}: gap {f('gap_ms')} ms from {f('gap_at_ms', '{:+.0f}')} ms "
          f"(steady {f('steady_gap_ms')} ms), CC errors {r['cc']}, PCR jumps {r['pcr']} "
          f"({r['pcr_backwards']} backwards), A frames {f('frames_a')}/{EXPECTED_A}, "
          f"A start {f('a_start_ms', '{:+.0f}')} ms, B boundary {f('boundary_ms', '{:+.0f}')} ms, "
          f"switch {f('switch_ms')} ms (gap {f('switch_gap_ms')} ms), longest PCR interval "
          f"{f('pcr_interval_ms', '{:.1f}')} ms, least DTS-PCR {f('margin_ms', '{:.0f}')} ms; sequence "
          + " ".join(f"{c}x{k}" for c, k, _ in r["sequence"]) + warn, flush=True)


def cell(results, key, fmt="{:.0f}"):
    """'median (min..max)' of a figure over the runs; '-' where it could not be measured."""
    values = [r[key] for r in results if r.get(key) is not None]
    if not values:
        return "-"
    runs, median, low, high = common.summary(values)
    missing = f" [{len(results) - runs} n/a]" if runs < len(results) else ""
    if low == high:
        return fmt.format(median) + missing
    return f"{fmt.format(median)} ({fmt.format(low)}..{fmt.format(high)})" + missing


COLUMNS = (("max gap ms", "gap_ms", "{:.0f}"), ("steady gap ms", "steady_gap_ms", "{:.0f}"), ("CC errors", "cc", "{:g}"), ("PCR jumps", "pcr", "{:g}"),
           (f"A frames (exp {EXPECTED_A})", "frames_a", "{:g}"),
           ("B boundary ms", "boundary_ms", "{:+.0f}"), ("switch ms", "switch_ms", "{:.0f}"),
           ("switch gap ms", "switch_gap_ms", "{:.0f}"), ("PCR int ms", "pcr_interval_ms", "{:.1f}"),
           ("DTS-PCR min ms", "margin_ms", "{:.0f}"), ("DTS order faults", "dts_order", "{:g}"))

# (title, figure, format, how far a value is from ideal, the most that meets the target)
TARGETS = (
    ("no unflagged CC errors", "cc", "{:g}", abs, 0),
    ("no PCR jumps (backwards or > 0.2 s)", "pcr", "{:g}", abs, 0),
    (f"no arrival gap over {TARGET_GAP_MS} ms at the boundary", "gap_ms", "{:.0f} ms", abs, TARGET_GAP_MS),
    (f"A's frames within {TARGET_FRAMES} of {EXPECTED_A}", "frames_a", "{:g}",
     lambda v: abs(v - EXPECTED_A), TARGET_FRAMES),
    (f"B within {TARGET_BOUNDARY_MS} ms of its scheduled time", "boundary_ms", "{:+.0f} ms", abs,
     TARGET_BOUNDARY_MS),
    (f"switch within {TARGET_SWITCH_MS} ms", "switch_ms", "{:.0f} ms", abs, TARGET_SWITCH_MS),
    ("PCR at most every 40 ms (TR 101 290 1.3a)", "pcr_interval_ms", "{:.1f} ms", abs, 40.5),
    ("every PES before its decode time (DTS - PCR >= 0)", "margin_ms", "{:.0f} ms", lambda v: max(0, -v), 0),
    ("DTS rising on every PID", "dts_order", "{:g}", abs, 0),
)


def report(modes):
    print("\nUDP output on 127.0.0.1, median (min..max) over the runs; CC errors and PCR jumps over the "
          "whole capture (every transition in it)")
    rows = [(label, len(results), *(cell(results, key, fmt) for _, key, fmt in COLUMNS))
            for label, results in modes.items() if results is not None]
    print(common.table(("mode", "runs", *(title for title, _, _ in COLUMNS)), rows))

    print("\ntargets (runs that met each)")
    for title, key, fmt, distance, limit in TARGETS:
        parts = []
        for label, results in modes.items():
            if results is None:
                continue
            values = [r[key] for r in results if r.get(key) is not None]
            met = sum(distance(v) <= limit for v in values)
            worst = "" if not values else ", worst " + fmt.format(max(values, key=distance))
            verdict = "MET" if met == len(results) else "MISSED"
            parts.append(f"{label.split(' ')[0]} {met}/{len(results)} {verdict}{worst}")
        print(f"  {title}: " + "; ".join(parts))


def machine():
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"FFmpeg {ffmpeg[2] if len(ffmpeg) > 2 else '?'}, Python {platform.python_version()}, "
            f"load {load}")


# --- driving and clean-up -----------------------------------------------------------------------
def measure(args):
    global worker
    assets = make_clips(args.size, args.bitrate)
    channel, copy_channel = create_channel(ENGINE_PORT, args.size), create_channel(COPY_PORT, args.size)
    worker = common.Worker(HOST, capacity=2, log_path=DATA_DIR / "worker.log")
    worker.wait_live()
    start_load(args.load)
    engine, copy, naive = [], [], []
    # Interleaved, so that load which comes and goes during the run touches every mode alike.
    for n in range(1, args.runs + 1):
        engine.append(engine_run(channel, assets, n))
        describe("transcode", n, args.runs, engine[-1])
        copy.append(engine_run(copy_channel, assets, n, name="copy"))
        describe("copy", n, args.runs, copy[-1])
        naive.append(naive_run(assets, n))
        describe("naive", n, args.runs, naive[-1])
    return {"transcode (playout engine)": engine, "copy (copy playout)": copy,
            "naive restart-per-program": naive}


def clean_up():
    for recorder in recorders:
        recorder.stop()
    for proc in extra_procs:
        common.stop_process(proc)
    if _configured:
        from channels_app.models import Channel
        from streams_app.lifecycle import stop_channel

        for number, (_, name) in CHANNELS.items():
            common.for_each_channel(Channel.objects.filter(number=number, name=name), stop_channel, "stop")
    if worker:
        worker.stop()
    left = common.kill_ffmpeg(DATA_DIR)
    if left:
        print(f"warning: killed {left} FFmpeg process(es) left behind", file=sys.stderr)
    if _configured:
        from channels_app.models import Channel
        from channels_app.services import delete_channel

        for number, (_, name) in CHANNELS.items():
            common.for_each_channel(Channel.objects.filter(number=number, name=name), delete_channel, "remove")


def main():
    global _configured
    args = parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    common.HOST = HOST  # configure() exports it as this process's RETROVUE_HOST
    try:
        common.configure_isolated(DATA_DIR, REDIS_URL)
        _configured = True
        print(f"transitions, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {machine()}")
        print(f"runs: {args.runs} per mode; {args.load} extra transcodes loading the host; data in {DATA_DIR}, "
              f"broker {REDIS_URL}", flush=True)
        report(measure(args))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        clean_up()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
