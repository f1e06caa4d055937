#!/usr/bin/env python
"""Media libraries and rule-built schedules: scan, rescan, build and guide times.

    python bench/library.py [--files 5000] [--probe-sample 100] [--channels 50] [--days 7] [--runs 5]

A library of --files tiny clips in the layouts people have (shows: `Show/Season 01/Show - S01E02 -
Title.mp4` with tvshow.nfo and poster.jpg per show and an .nfo per episode; movies: `Title (1985)/
Title (1985).mp4` with a movie .nfo) is generated once (copies of one 1 s lavfi clip) and
measured, each figure beside a floor measured in the same run:
- first scan, seconds per file, beside a bare ffprobe of the same files (--probe-sample of them);
- rescan of the unchanged library (median of --runs), beside a bare walk + stat of the tree;
- building --days for --channels rule-driven channels (weeknight block of a show in order,
  movies shuffled otherwise, trailers padding to the half hour), beside a bulk insert of as
  many program rows; the scanned durations are set to 22-50 min (episodes), 85-130 min (movies)
  and 30-150 s (trailers) first, as the clips are 1 s;
- the guide of those channels (`/iptv/xmltv.xml`, 48 h) rendered anew, and served again within
  its minute, beside one query reading the same programs with their assets.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

DATA_DIR = common.ROOT / "var" / "library-bench"
REDIS_URL = os.environ.get("RETROVUE_LIBRARY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
EPISODES_PER_SEASON, SEASONS = 20, 2
MOVIE_SHARE = 0.2
TRAILERS = 60


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--probe-sample", type=int, default=100)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    return parser.parse_args()


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_library(root, files):
    """The tree under root/shows, root/movies and root/trailers (made once per size)."""
    marker = root / f".made-{files}"
    if marker.exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    clip = common.make_clip(root / ".clip.mp4", size="160x120", seconds=1)
    poster = root / ".poster.jpg"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=120x180",
                    "-frames:v", "1", str(poster)], check=True)
    movies = int(files * MOVIE_SHARE)
    per_show = EPISODES_PER_SEASON * SEASONS
    shows = (files - movies - TRAILERS) // per_show
    for show in range(shows):
        name = f"Show {show:03d}"
        folder = root / "shows" / name
        write(folder / "tvshow.nfo", f"<tvshow><title>{name}</title><genre>Comedy</genre><mpaa>TV-PG</mpaa>"
                                     f"<year>{1980 + show % 20}</year></tvshow>")
        shutil.copy(poster, folder / "poster.jpg")
        for season in range(1, SEASONS + 1):
            season_folder = folder / f"Season {season:02d}"
            season_folder.mkdir(parents=True, exist_ok=True)
            for episode in range(1, EPISODES_PER_SEASON + 1):
                stem = f"{name} - S{season:02d}E{episode:02d} - Episode {episode}"
                shutil.copy(clip, season_folder / f"{stem}.mp4")
                write(season_folder / f"{stem}.nfo",
                      f"<episodedetails><title>Episode {episode}</title><season>{season}</season>"
                      f"<episode>{episode}</episode><plot>Plot of {stem}.</plot></episodedetails>")
    for movie in range(movies):
        title = f"Movie {movie:04d} ({1970 + movie % 40})"
        folder = root / "movies" / title
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, folder / f"{title}.mp4")
        write(folder / f"{title}.nfo", f"<movie><title>Movie {movie:04d}</title><year>{1970 + movie % 40}</year>"
                                       f"<genre>Drama</genre><mpaa>PG</mpaa></movie>")
    for trailer in range(TRAILERS):
        (root / "trailers").mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / "trailers" / f"trailer {trailer:03d}.mp4")
    marker.touch()


def bare_walk(root):
    """The floor of a rescan: every file's stat, nothing else."""
    count = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(folder, name))
            count += 1
    return count


def bare_probe(path):
    subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_format", "-show_streams", str(path)],
                   capture_output=True, check=True)


def timed(action):
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def realistic_durations():
    """Episode, movie and trailer lengths a real library has (the generated clips are 1 s)."""
    from channels_app.models import MediaAsset

    assets = list(MediaAsset.objects.all())
    for asset in assets:
        seed = asset.pk * 7919
        asset.duration_s = {"show": 22 * 60 + seed % (28 * 60), "movie": 85 * 60 + seed % (45 * 60)}.get(
            asset.kind, 30 + seed % 120)
    MediaAsset.objects.bulk_update(assets, ["duration_s"], batch_size=500)


def program_channels(count):
    from channels_app.models import MediaAsset
    from library_app import collections
    from tests.factories import make_channel

    shows = sorted(set(MediaAsset.objects.exclude(show="").values_list("show", flat=True)))
    collections.create_collection({"name": "movies", "query": {"kind": "movie"}})
    collections.create_collection({"name": "trailers", "query": {"library": "trailers"}})
    channels = []
    for number in range(1, count + 1):
        show = shows[number % len(shows)]
        collections.create_collection({"name": f"show {number}", "query": {"show": show}})
        channels.append((make_channel(number, name=f"Rules {number}"), {
            "timezone": "Europe/Paris",
            "blocks": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "20:00", "end": "22:00",
                        "collection": f"show {number}", "order": "chronological"}],
            "default": {"collection": "movies", "order": "shuffle"},
            "filler": {"collection": "trailers", "pad_to_minutes": 30, "cooldown_minutes": 60}}))
    return channels


def main():
    args = parse_args()
    common.configure_isolated(DATA_DIR, REDIS_URL)
    from django.conf import settings
    from django.core.cache import caches
    from django.test import Client
    from django.utils import timezone

    from channels_app.models import MediaAsset, Program, Schedule
    from library_app import builder, libraries, scanning

    root = Path(settings.RETROVUE_MEDIA_ROOTS[0])
    print(f"library: {args.files} files, {args.channels} channels, {args.days} days, {args.runs} runs", flush=True)
    make_library(root, args.files)
    made = {kind: libraries.create_library({"name": kind, "path": str(root / kind), "kind": kind if kind != "trailers"
                                            else "other"}) for kind in ("shows", "movies", "trailers")}
    started = time.perf_counter()
    found = sum(scanning.scan_library(library)["found"] for library in made.values())
    first = (time.perf_counter() - started) / found
    sample = sorted(root.rglob("*.mp4"))[:args.probe_sample]
    probe = statistics.median(timed(lambda p=p: bare_probe(p)) for p in sample)
    print(f"first scan: {first * 1000:.1f} ms a file ({found} files); bare ffprobe {probe * 1000:.1f} ms", flush=True)

    rescans, walks = [], []
    for _ in range(args.runs):
        rescans.append(timed(lambda: [scanning.scan_library(library) for library in made.values()]))
        walks.append(timed(lambda: bare_walk(root)))
        print(f"   rescan {rescans[-1]:.2f} s, bare walk + stat {walks[-1]:.2f} s", flush=True)

    realistic_durations()
    channels = program_channels(args.channels)
    now = timezone.now()
    for channel, rules in channels:
        builder.set_programming(channel, rules, now=now)
    builds, inserts, programs = [], [], 0
    for _ in range(args.runs):
        cache = {}  # one read of each collection for all the channels, as beat's extend_all does
        builds.append(timed(lambda: [builder.build(channel, now=now, hours=24 * args.days, cache=cache)
                                     for channel, _rules in channels]))
        programs = Program.objects.filter(origin__gt="").count()
        asset = MediaAsset.objects.first()
        scratch = Schedule.objects.create(channel=channels[0][0])
        rows = [Program(schedule=scratch, position=i, asset=asset, start=now + timedelta(minutes=i), origin="x")
                for i in range(programs)]
        inserts.append(timed(lambda: Program.objects.bulk_create(rows, batch_size=500)))
        scratch.delete()
        print(f"   build {builds[-1]:.2f} s ({programs} programs), bulk insert of as many {inserts[-1]:.2f} s", flush=True)

    client, guides, warm, reads = Client(), [], [], []
    for _ in range(args.runs):
        caches["default"].clear()  # a guide is rendered again at most once a minute: measure both
        guides.append(timed(lambda: client.get("/iptv/xmltv.xml").content))
        warm.append(timed(lambda: client.get("/iptv/xmltv.xml").content))
        reads.append(timed(lambda: list(Program.objects.filter(
            start__gte=now - timedelta(hours=6), start__lt=now + timedelta(hours=48)).select_related("asset"))))
        print(f"   guide {guides[-1]:.2f} s (again within the minute {warm[-1] * 1000:.0f} ms), "
              f"reading its programs {reads[-1]:.2f} s", flush=True)

    print(f"\nmedian of {args.runs} runs")
    print(f"{'figure':44}  {'measured':>10}  {'floor':>10}  target")
    print(f"{'first scan, per file':44}  {first * 1000:>8.1f}ms  {probe * 1000:>8.1f}ms  (bare ffprobe)")
    print(f"{f'rescan of {found} unchanged files':44}  {statistics.median(rescans):>9.2f}s  "
          f"{statistics.median(walks):>9.2f}s  < 5 s")
    print(f"{f'build {args.days} days for {args.channels} channels':44}  {statistics.median(builds):>9.2f}s  "
          f"{statistics.median(inserts):>9.2f}s  < 10 s")
    print(f"{f'guide (xmltv) of {args.channels} channels, 48 h':44}  {statistics.median(guides):>9.2f}s  "
          f"{statistics.median(reads):>9.2f}s  < 1 s")
    print(f"{'the same guide again within the minute':44}  {statistics.median(warm):>9.3f}s")


if __name__ == "__main__":
    main()
