#!/usr/bin/env python
"""On-demand channels: tune to first byte, and what idle ones cost.

    python bench/on_demand.py [--runs 5] [--idle 50]

Everything is real: one encode worker (host bench-a), a uvicorn web process (ASGI, as compose
serves the web), the bench's own database, Redis DB 13 and data folder (var/on-demand-bench),
FFmpeg and clips from lavfi. Output goes to 127.0.0.1 only.

- **Tune to first byte**: a stopped on-demand channel (copy: a 720p 5 Mbit/s clip with a
  keyframe a second; transcode: 480p from it) is tuned with `GET /iptv/channels/<n>.ts`; the
  figure is the time from sending the request to the first body byte. Beside it, the floor: a
  bare FFmpeg reading the clip as fast as it can into the same HLS segmentation (what the viewer
  follows: FFmpeg writes a segment whole when it ends, on a keyframe), from Popen to its first
  segment file.
  Between runs beat's idle step stops the channel. Median over --runs.
- **Idle cost**: --idle on-demand channels that nobody watches: FFmpeg processes, and the worker's
  and web process's CPU and memory over 10 s, beside the same with no channel (the baseline),
  and the time of beat's idle step over them.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

DATA_DIR = common.ROOT / "var" / "on-demand-bench"
REDIS_URL = os.environ.get("RETROVUE_ON_DEMAND_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
WEB_PORT = 6290
MODES = {"copy": ("copy", 6201), "480p transcode": ("480p", 6202)}
IDLE_FIRST_NUMBER = 6300


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="tunes per mode, at least 5")
    parser.add_argument("--idle", type=int, default=50, help="idle on-demand channels")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    return args


def web_server(log):
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "retrovue.asgi:application", "--host", "127.0.0.1",
                             "--port", str(WEB_PORT), "--log-level", "warning"], cwd=common.ROOT,
                            env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def listening():
    try:
        socket.create_connection(("127.0.0.1", WEB_PORT), 0.2).close()
    except OSError:
        return False
    return True


def tune_to_first_byte(number):
    """ms from sending the tune to the first body byte; the socket is returned open (the viewer)."""
    sock = socket.create_connection(("127.0.0.1", WEB_PORT), timeout=15)
    began = time.perf_counter()
    sock.sendall(f"GET /iptv/channels/{number}.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, body = received.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"tune answered {head[:80]!r}")
    if not body:
        body = sock.recv(65536)
    elapsed = (time.perf_counter() - began) * 1000
    # The body is chunked: the first chunk's size line, then TS packets.
    if b"\x47" not in body[:16]:
        raise RuntimeError(f"first bytes are not MPEG-TS: {body[:16]!r}")
    return elapsed, sock


def stop_idle(channel):
    """Beat's idle step as if the idle time had passed; waits for the channel's FFmpeg to go."""
    from django.conf import settings
    from django.utils import timezone

    from channels_app.models import Channel
    from streams_app import tuning

    later = timezone.now() + timedelta(seconds=settings.RETROVUE_ON_DEMAND_IDLE_SECONDS + 1)
    tuning.stop_idle_on_demand(now=later)
    common.wait_for(lambda: Channel.objects.get(pk=channel.pk).status == Channel.Status.STOPPED,
                    timeout=20, what=f"{channel} stopped")
    common.wait_for(lambda: not common.ffmpeg_processes(DATA_DIR / "channels" / str(channel.number)),
                    timeout=10, what=f"{channel}'s FFmpeg gone")


def floor_ms(clip, quality, folder):
    """ms from Popen to the first HLS segment file of a bare FFmpeg segmenting as a channel does."""
    from streams_app.playout.argv import HLS_FIRST_SEGMENT_SECONDS, HLS_SEGMENT_SECONDS

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*"):
        old.unlink()
    first, every = HLS_FIRST_SEGMENT_SECONDS, HLS_SEGMENT_SECONDS
    codecs = ["-c", "copy"] if quality == "copy" else [
        "-vf", "scale=854:480", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "50",
        "-force_key_frames", f"expr:lt(t,{every})*gte(t,n_forced*{first})", "-c:a", "aac"]
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(clip), *codecs,
            "-f", "hls", "-hls_time", str(every), "-hls_init_time", str(first),
            str(folder / "index.m3u8")]
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        common.wait_for(lambda: any(p.stat().st_size for p in folder.glob("*.ts")), timeout=15, interval=0.005,
                        what="the floor's first segment")
        return (time.perf_counter() - began) * 1000
    finally:
        common.stop_process(proc)


def usage(processes, seconds=10.0):
    """(percent of a core, RSS MB) of `processes` over `seconds`."""
    before = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    time.sleep(seconds)
    after = sum(p.cpu_times().user + p.cpu_times().system for p in processes)
    return (after - before) / seconds * 100, sum(p.memory_info().rss for p in processes) / 2**20


def family(proc):
    parent = psutil.Process(proc.pid)
    return [parent, *parent.children(recursive=True)]


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    common.configure_isolated(DATA_DIR, REDIS_URL)
    from channels_app.services import create_channel
    from streams_app import tuning

    clip = common.make_clip(DATA_DIR / "media" / "tune-720p.mp4", size="1280x720", seconds=30, bitrate="5M")
    log = open(DATA_DIR / "bench.log", "wb")
    worker = common.Worker(common.HOST, capacity=4, log_path=DATA_DIR / "worker.log")
    web = web_server(log)
    channels = []
    try:
        worker.wait_live()
        common.wait_for(listening, timeout=30, what="uvicorn listening")
        rows = []
        for label, (quality, number) in MODES.items():
            channel = create_channel({"name": f"bench {label}", "number": number, "quality": quality,
                                      "playlist": [str(clip)], "on_demand": True,
                                      "network_settings": {"protocol": "udp", "multicast_address": "127.0.0.1",
                                                           "port": number}})
            channels.append(channel)
            tunes = []
            for _ in range(args.runs + 1):  # the first one warms the web process and the worker up
                elapsed, viewer = tune_to_first_byte(number)
                viewer.close()
                tunes.append(elapsed)
                stop_idle(channel)
            floors = [floor_ms(clip, quality, DATA_DIR / "floor") for _ in range(args.runs)]
            tunes = tunes[1:]
            print(f"  {label}: tune " + ", ".join(f"{ms:.0f}" for ms in tunes) + " ms; floor "
                  + ", ".join(f"{ms:.0f}" for ms in floors) + " ms", flush=True)
            rows.append([label, len(tunes), f"{statistics.median(tunes):.0f}", f"{min(tunes):.0f}",
                         f"{max(tunes):.0f}", f"{statistics.median(floors):.0f}"])
        print(common.table(["on-demand channel", "runs", "tune to first byte median ms", "min", "max",
                            "bare FFmpeg first segment ms"], rows))

        processes = family(worker.proc) + family(web)
        baseline = usage(processes)
        for n in range(args.idle):
            channels.append(create_channel({
                "name": f"idle {n}", "number": IDLE_FIRST_NUMBER + n, "quality": "copy", "on_demand": True,
                "playlist": [str(clip)], "network_settings": {"protocol": "udp", "multicast_address": "127.0.0.1",
                                                              "port": IDLE_FIRST_NUMBER + n}}))
        idle = usage(processes)
        began = time.perf_counter()
        tuning.stop_idle_on_demand()
        step_ms = (time.perf_counter() - began) * 1000
        ffmpeg = len(common.ffmpeg_processes(DATA_DIR))
        print(common.table(["idle on-demand channels", "FFmpeg processes", "worker+web % of a core", "RSS MB",
                            "beat idle step ms"],
                           [["none (baseline)", 0, f"{baseline[0]:.1f}", f"{baseline[1]:.0f}", "-"],
                            [args.idle, ffmpeg, f"{idle[0]:.1f}", f"{idle[1]:.0f}", f"{step_ms:.1f}"]]))
    finally:
        from channels_app.services import delete_channel

        for channel in channels:
            try:
                delete_channel(channel)
            except Exception as exc:  # clean-up goes on
                print(f"could not delete {channel}: {exc}")
        common.stop_process(web)
        worker.stop()
        common.kill_ffmpeg(DATA_DIR)


if __name__ == "__main__":
    main()
