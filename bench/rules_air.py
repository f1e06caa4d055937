#!/usr/bin/env python
"""A channel programmed only by rules, aired for --minutes through the real engine and judged
from what a receiver captured.

    python bench/rules_air.py [--minutes 60] [--quality copy|480p]

Everything is real: one encode worker subprocess (host bench-r), Redis (DB 14,
RETROVUE_RULES_BENCH_REDIS_URL), the bench's own database and data folder (var/rules-bench),
FFmpeg, UDP to 127.0.0.1:6401 only. The channel has no hand-written program: its rules are
three time blocks (red episodes in order at 1/6-2/6 and 5/6-6/6 of the run, blue ones shuffled
at 3/6-4/6), a default of green movies shuffled, and filler (yellow, white and magenta trailers)
padding every program to the next whole minute. Clips are solid colours, 320x240 at 30 fps.

The capture is judged by readers independent of RetroVue's: tests/tsanalysis.py (continuity
counters, PCR) and FFmpeg's signalstats (each decoded frame's colour). Figures:
- every planned program boundary: the longest silence within 0.5 s of it, beside the baseline
  of the same run, the longest silence 0.5 s or more from any boundary (the steady stream);
- every boundary where the colour changes: the first frame of the new colour against its
  planned start (frames are 33 ms apart);
- frames aired against frames planned over the whole run; CC errors and PCR faults.
"""
import argparse
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.transitions import Recorder, frame_colours, runs_of  # noqa: E402
from tests.tsanalysis import analyze, frame_arrivals  # noqa: E402

DATA_DIR = common.ROOT / "var" / "rules-bench"
REDIS_URL = "redis://127.0.0.1:6379/14"
HOST, PORT, FPS, SIZE = "bench-r", 6401, 30, "320x240"
LEAD = timedelta(seconds=20)  # the rules take over this far after the channel starts
GAP_WINDOW = 0.5
# collection -> [(lavfi colour, seconds)]; classify() names yellow, white and magenta "other"
CLIPS = {"episodes": [("red", 31), ("red", 44), ("red", 27)],
         "specials": [("blue", 29), ("blue", 38)],
         "movies": [("lime", 23), ("lime", 41), ("lime", 52)],
         "trailers": [("yellow", 7), ("white", 5), ("magenta", 9), ("yellow", 4)]}
COLOUR = {"red": "red", "blue": "blue", "lime": "green"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=60, help="how long the rules air (at least 6)")
    parser.add_argument("--quality", choices=("copy", "480p"), default="copy")
    return parser.parse_args()


def make_collections():
    from channels_app import media
    from library_app import collections

    colours = {}
    for name, clips in CLIPS.items():
        items = []
        for index, (colour, seconds) in enumerate(clips):
            path = DATA_DIR / "media" / f"{name}-{index}-{colour}-{seconds}s.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                                "-f", "lavfi", "-i", f"color=c={colour}:size={SIZE}:rate={FPS}",
                                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
                                "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS), "-pix_fmt", "yuv420p",
                                "-c:a", "aac", "-shortest", str(path)], check=True)
            asset = media.resolve_asset(str(path))
            colours[asset.pk] = COLOUR.get(colour, "other")
            items.append(asset.pk)
        collections.create_collection({"name": name, "items": items})
    return colours


def rules(begin, minutes):
    """Blocks at whole minutes of UTC: red at 1/6-2/6 and 5/6-1 of the run, blue at 3/6-4/6."""
    def clock(fraction):
        moment = begin + timedelta(minutes=round(minutes * fraction))
        return f"{moment:%H:%M}"

    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    blocks = [{"days": every_day, "start": clock(a), "end": clock(b), "collection": name, "order": order}
              for a, b, name, order in [(1 / 6, 2 / 6, "episodes", "chronological"),
                                        (3 / 6, 4 / 6, "specials", "shuffle"),
                                        (5 / 6, 1.0, "episodes", "chronological")]]
    return {"timezone": "UTC", "blocks": blocks, "default": {"collection": "movies", "order": "shuffle"},
            "filler": {"collection": "trailers", "pad_to_minutes": 1, "cooldown_minutes": 0}}


def judge(recorder, programs, colours, mono_of, end):
    """The run's figures from its capture; `mono_of(moment)`: a planned time on the monotonic clock."""
    capture = DATA_DIR / "rules.ts"
    capture.write_bytes(b"".join(recorder.datagrams))
    report = analyze(capture.read_bytes())
    sequence = runs_of(frame_colours(capture))
    arrivals = frame_arrivals(recorder.datagrams, recorder.arrivals)
    starts = [mono_of(p.start) for p in programs]
    boundary_gaps = [recorder.max_gap(t - GAP_WINDOW, t + GAP_WINDOW) for t in starts[1:]]
    steady = max(recorder.max_gap(a + GAP_WINDOW, b - GAP_WINDOW) for a, b in zip(starts, starts[1:] + [end])
                 if b - a > 2 * GAP_WINDOW)
    # The colour runs on the capture against the planned changes of colour.
    changes = [(t, colours[p.asset_id]) for t, p, before in zip(starts[1:], programs[1:], programs)
               if colours[p.asset_id] != colours[before.asset_id]]
    runs_at = [(arrivals[index], colour) for colour, _, index in sequence if index < len(arrivals)]
    offsets, missed = [], 0
    for planned, colour in changes:
        near = [at for at, seen in runs_at if seen == colour and abs(at - planned) < 1.0]
        if near:
            offsets.append(min(near, key=lambda at: abs(at - planned)) - planned)
        else:
            missed += 1
    planned_frames = round((end - starts[0]) * FPS)
    aired_frames = sum(starts[0] - 0.5 / FPS <= at < end - 0.5 / FPS for at in arrivals)
    return {"programs": len(programs), "boundaries": len(boundary_gaps), "changes": len(changes), "missed": missed,
            "gap_median": statistics.median(boundary_gaps), "gap_max": max(boundary_gaps),
            "over_50": sum(gap > 0.05 for gap in boundary_gaps), "steady_max": steady,
            "offset_max": max(map(abs, offsets)) if offsets else None,
            "offset_median": statistics.median(offsets) if offsets else None,
            "planned_frames": planned_frames, "aired_frames": aired_frames,
            "cc": report.cc_errors, "pcr": report.pcr_jumps + report.pcr_backwards,
            "kinds": sorted({p.origin for p in programs})}


def main():
    args = parse_args()
    if args.minutes < 6:
        sys.exit("--minutes: at least 6 (three blocks of whole minutes)")
    common.configure_isolated(DATA_DIR, REDIS_URL)
    from django.conf import settings
    from django.utils import timezone

    from channels_app import services
    from channels_app.models import Program
    from library_app import builder
    from streams_app import lifecycle

    settings.RETROVUE_PROGRAMMING_HOURS = max(2, args.minutes // 60 + 2)
    worker = common.Worker(HOST, 2, DATA_DIR / "worker.log", loglevel="WARNING")
    channel = None
    try:
        worker.wait_live()
        colours = make_collections()
        channel = services.create_channel({
            "name": "bench rules", "number": PORT, "quality": args.quality,
            "stream_settings": {"resolution": SIZE, "frame_rate": FPS}, "quality_settings": {"preset": "ultrafast"},
            "network_settings": {"multicast_address": "127.0.0.1", "port": PORT}})
        # The rules' first block starts on a whole minute a sixth of the run after `begin`.
        begin = (timezone.now() + LEAD + timedelta(minutes=1)).replace(second=0, microsecond=0)
        builder.set_programming(channel, rules(begin, args.minutes), now=begin)
        end_at = begin + timedelta(minutes=args.minutes)
        programs = list(Program.objects.filter(schedule=services.get_channel(PORT).current_schedule,
                                               start__gte=begin, start__lt=end_at).order_by("start"))
        recorder = Recorder(PORT)
        lifecycle.start_channel(services.get_channel(PORT))
        mono_begin = time.monotonic() + (begin - timezone.now()).total_seconds()

        def mono_of(moment):
            return mono_begin + (moment - begin).total_seconds()

        print(f"rules air from {begin:%H:%M:%S} UTC for {args.minutes} min ({args.quality}): "
              f"{len(programs)} programs planned", flush=True)
        while time.monotonic() < mono_of(end_at):
            time.sleep(min(60.0, max(0.0, mono_of(end_at) - time.monotonic())))
            print(f"   {(time.monotonic() - mono_begin) / 60:.1f} min aired, "
                  f"{len(recorder.datagrams)} datagrams", flush=True)
        recorder.stop()
        result = judge(recorder, programs, colours, mono_of, mono_of(end_at))
    finally:
        if channel is not None:
            lifecycle.stop_channel(services.get_channel(PORT))
        worker.stop()
    r = result
    print(f"\n{r['programs']} programs ({', '.join(r['kinds'])}), {r['boundaries']} boundaries, "
          f"{r['changes']} of them a change of colour")
    print(f"longest silence at a boundary: median {r['gap_median'] * 1000:.0f} ms, max {r['gap_max'] * 1000:.0f} ms, "
          f"{r['over_50']} over 50 ms; away from boundaries (baseline) max {r['steady_max'] * 1000:.0f} ms")
    offset = "n/a" if r["offset_max"] is None else (f"median {r['offset_median'] * 1000:+.0f} ms, "
                                                     f"max |{r['offset_max'] * 1000:.0f}| ms")
    print(f"new colour's first frame against its planned start: {offset}; not seen: {r['missed']}")
    print(f"frames aired {r['aired_frames']} of {r['planned_frames']} planned; "
          f"CC errors {r['cc']}, PCR faults {r['pcr']}")


if __name__ == "__main__":
    main()
