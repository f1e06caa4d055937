#!/usr/bin/env python
"""Live TS viewers one web process carries, and what they leave the API.

    python bench/viewers.py [--runs 3] [--levels 25,50,100,200] [--bitrate 2] [--window 20]

One channel's HLS window is published here as FFmpeg's hls muxer writes it (a 2 s segment every
2 s at --bitrate Mbit/s, six listed), so the figures are the web tier's alone. For each server
(uvicorn, ASGI, as compose runs it; gunicorn with 32 threads, WSGI, the earlier compose shape,
as the baseline in the same run), one process each, and each level of N concurrent viewers of
`/iptv/channels/1.ts` (every viewer reads all it is sent): after the viewers settle, over
--window seconds, how many viewers kept up (received at least 90 % of what was published),
the API's latency (`GET /api/health`, ten times a second: p95 and p99) and the server's CPU.
The servers run with the deployment's settings (DJANGO_DEBUG off). Median over runs.
"""
import argparse
import math
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

DATA_DIR = common.ROOT / "var" / "viewers-bench"
API_EVERY = 0.1  # seconds between API requests
REDIS_URL = os.environ.get("RETROVUE_VIEWERS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
PORT = 8767
SEGMENT_SECONDS = 2
SERVERS = {
    "uvicorn (ASGI)": ["-m", "uvicorn", "retrovue.asgi:application", "--host", "127.0.0.1", "--port", str(PORT),
                       "--log-level", "warning"],
    "gunicorn 32 threads (WSGI)": ["-m", "gunicorn", "retrovue.wsgi", "--bind", f"127.0.0.1:{PORT}",
                                   "--workers", "1", "--threads", "32", "--log-level", "warning"],
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--levels", default="25,50,100,200")
    parser.add_argument("--bitrate", type=float, default=2.0, help="the channel's Mbit/s")
    parser.add_argument("--window", type=float, default=20.0)
    return parser.parse_args()


class Publisher(threading.Thread):
    """Writes the channel's HLS window: a segment every SEGMENT_SECONDS, then the playlist."""

    def __init__(self, folder, bitrate_mbps):
        super().__init__(daemon=True)
        self.folder, self.stopped = folder, threading.Event()
        self.segment = bytes(int(bitrate_mbps * 1e6 / 8 * SEGMENT_SECONDS) // 188 * 188)
        self.published = 0  # bytes

    def run(self):
        sequence = 0
        while not self.stopped.is_set():
            (self.folder / f"index{sequence}.ts").write_bytes(self.segment)
            first = max(0, sequence - 5)
            lines = ["#EXTM3U", "#EXT-X-VERSION:6", f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
                     f"#EXT-X-MEDIA-SEQUENCE:{first}"]
            for n in range(first, sequence + 1):
                lines += [f"#EXTINF:{SEGMENT_SECONDS}.000000,", f"index{n}.ts"]
            (self.folder / "index.m3u8").write_text("\n".join(lines) + "\n")
            (self.folder / f"index{first - 1}.ts").unlink(missing_ok=True)
            self.published += len(self.segment)
            sequence += 1
            self.stopped.wait(SEGMENT_SECONDS)


class Viewer(threading.Thread):
    """Tunes in and reads everything it is sent, counting bytes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.received, self.status, self.stopped = 0, None, threading.Event()

    def run(self):
        try:
            with socket.create_connection(("127.0.0.1", PORT), timeout=30) as connection:
                connection.sendall(b"GET /iptv/channels/1.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                self.status = connection.recv(12)[9:12]
                while not self.stopped.is_set():
                    data = connection.recv(65536)
                    if not data:
                        return
                    self.received += len(data)
        except OSError:
            return


def api_latencies(token, until):
    """GET /api/health ten times a second until `until`: seconds each took (None: no answer in 5 s)."""
    import urllib.request

    found = []
    while time.monotonic() < until:
        started = time.monotonic()
        request = urllib.request.Request(f"http://127.0.0.1:{PORT}/api/health",
                                         headers={"Authorization": f"Token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                answer.read()
            found.append(time.monotonic() - started)
        except OSError:
            found.append(None)
        time.sleep(max(0.0, API_EVERY - (time.monotonic() - started)))
    return found


def cpu_seconds(proc):
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def measure(server, level, args, publisher, token):
    viewers = [Viewer() for _ in range(level)]
    for viewer in viewers:
        viewer.start()
    time.sleep(4)  # tuned in, past the head start
    start_bytes = [v.received for v in viewers]
    published, cpu0, t0 = publisher.published, cpu_seconds(server), time.monotonic()
    latencies = api_latencies(token, t0 + args.window)
    elapsed = time.monotonic() - t0
    rate = (publisher.published - published) / elapsed if publisher.published > published else \
        args.bitrate * 1e6 / 8
    cpu = (cpu_seconds(server) - cpu0) / elapsed * 100
    kept_up = sum(1 for v, s in zip(viewers, start_bytes) if (v.received - s) / elapsed >= 0.9 * rate)
    for viewer in viewers:
        viewer.stopped.set()
    answered = [x for x in latencies if x is not None]
    return {"kept_up": kept_up, "p95_ms": percentile(answered, 0.95), "p99_ms": percentile(answered, 0.99),
            "unanswered": len(latencies) - len(answered), "cpu": cpu}


def percentile(seconds, fraction):
    """The `fraction` percentile of `seconds`, in ms (nearest rank), or None for none."""
    return sorted(seconds)[math.ceil(fraction * len(seconds)) - 1] * 1000 if seconds else None


def one_run(args, publisher, token):
    results = {}
    for name, command in SERVERS.items():
        env = {**os.environ, "RETROVUE_MAX_VIEWERS_PER_CHANNEL": "10000", "RETROVUE_MAX_VIEWERS_PER_CLIENT": "10000",
               "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": secrets.token_urlsafe(64)}
        with open(DATA_DIR / "server.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, *command], cwd=common.ROOT, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            common.wait_for(lambda: listening(), timeout=30, what=f"{name} listening")
            server = psutil.Process(proc.pid)
            for level in args.levels:
                results[(name, level)] = measure(server, level, args, publisher, token)
                row = results[(name, level)]
                print(f"   {name:28} {level:4} viewers: kept up {row['kept_up']:4}, API p95 {fmt(row['p95_ms'])} ms, "
                      f"p99 {fmt(row['p99_ms'])} ms ({row['unanswered']} unanswered), CPU {row['cpu']:.0f}%", flush=True)
                time.sleep(2)  # the last viewers hang up
        finally:
            common.stop_process(proc, timeout=10)
    return results


def listening():
    try:
        socket.create_connection(("127.0.0.1", PORT), 0.2).close()
    except OSError:
        return False
    return True


def fmt(value):
    return "-" if value is None else f"{value:.0f}"


def report(runs, args):
    print(f"\nchannel at {args.bitrate:g} Mbit/s; one server process; median of {len(runs)} runs")
    print(f"{'server':28}  {'viewers':>7}  {'kept up':>7}  {'API p95 ms':>10}  {'API p99 ms':>10}  "
          f"{'API unanswered':>14}  {'CPU %':>5}")
    print(f"{'-' * 28}  {'-' * 7}  {'-' * 7}  {'-' * 10}  {'-' * 10}  {'-' * 14}  {'-' * 5}")
    for name in SERVERS:
        for level in args.levels:
            rows = [run[(name, level)] for run in runs]
            p95s = [r["p95_ms"] for r in rows if r["p95_ms"] is not None]
            p99s = [r["p99_ms"] for r in rows if r["p99_ms"] is not None]
            print(f"{name:28}  {level:>7}  {statistics.median(r['kept_up'] for r in rows):>7.0f}  "
                  f"{fmt(statistics.median(p95s) if p95s else None):>10}  "
                  f"{fmt(statistics.median(p99s) if p99s else None):>10}  "
                  f"{statistics.median(r['unanswered'] for r in rows):>14.0f}  "
                  f"{statistics.median(r['cpu'] for r in rows):>5.0f}")


def main():
    args = parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    common.configure_isolated(DATA_DIR, REDIS_URL)
    from rest_framework.authtoken.models import Token

    from channels_app.models import Channel
    from streams_app.hls import hls_dir
    from tests.factories import make_channel, make_user

    make_channel(1)
    Channel.objects.filter(number=1).update(status=Channel.Status.RUNNING)
    token = Token.objects.create(user=make_user("bench-operator", permissions="all")).key
    folder = hls_dir(1)
    folder.mkdir(parents=True, exist_ok=True)
    publisher = Publisher(folder, args.bitrate)
    publisher.start()
    print(f"viewers: {psutil.cpu_count()} cores; levels {args.levels}; {args.runs} runs")
    runs = []
    try:
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}", flush=True)
            runs.append(one_run(args, publisher, token))
    finally:
        publisher.stopped.set()
    report(runs, args)


if __name__ == "__main__":
    main()
