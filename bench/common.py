"""Shared parts of the benchmarks: an isolated environment, generated media, a real encode worker
subprocess, UDP receivers, process clean-up and the figures table.

`configure()` must run before anything imports Django: the settings read the environment once.
Only the benchmark's own data folder, Redis database and encode host name are touched.
"""
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.helpers import ffmpeg_processes  # noqa: F401  (shared with the tests)

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "var" / "bench"
# A Redis database of the benchmarks' own (the test suite uses 15); it is flushed at every start.
REDIS_URL = os.environ.get("RETROVUE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
HOST = "bench-a"
TS_SYNC = 0x47


def configure():
    """Point RetroVue at the bench's data folder, database and Redis DB with loopback-only output,
    set Django up, migrate and flush the broker. DATABASE_URL is honoured when set; otherwise the
    database is a fresh SQLite file in the data folder."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))  # DEBUG is off, as deployed
    if "DATABASE_URL" not in os.environ:
        for suffix in ("", "-wal", "-shm"):
            (DATA_DIR / f"bench.sqlite3{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{DATA_DIR / 'bench.sqlite3'}"
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "retrovue.settings",
        "RETROVUE_DATA_DIR": str(DATA_DIR),
        "RETROVUE_MEDIA_ROOTS": str(DATA_DIR / "media"),
        "RETROVUE_HOST": HOST,
        "RETROVUE_LOOPBACK_ONLY": "1",
        "REDIS_URL": REDIS_URL,
    })
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    import redis
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    redis.Redis.from_url(REDIS_URL).flushdb()


def make_clip(path, size="640x360", rate=25, seconds=10, bitrate=None):
    """An H.264/AAC MP4 from lavfi (testsrc2 + sine), one keyframe a second; with `bitrate`
    (e.g. "5M") its video is held near that rate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate_args = ["-b:v", bitrate, "-minrate", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] if bitrate else []
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(rate), *rate_args,
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True)
    return path


def wait_for(predicate, timeout=15.0, interval=0.05, what="condition"):
    """Poll `predicate` until it returns something truthy; returns it or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class Worker:
    """One real encode worker (`manage.py worker`) in its own session, logging to a file."""

    def __init__(self, host, capacity, log_path, loglevel="INFO"):
        self.host = host
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "worker", "--host", host, "--capacity", str(capacity),
                 "--loglevel", loglevel],
                cwd=ROOT, env={**os.environ, "RETROVUE_HOST": host}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_live(self, timeout=60):
        """Wait until this worker process has registered its host and heartbeats it."""
        from resources_app.models import EncodeHost

        def live():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log_path}")
            # `manage.py worker` execs Celery in place, so the registered pid is this process.
            return EncodeHost.objects.live().filter(name=self.host, pid=self.proc.pid).exists()

        wait_for(live, timeout=timeout, interval=0.2, what=f"encode host {self.host} online")

    def stop(self, timeout=20):
        """SIGTERM (the worker stops its supervisors and their FFmpeg), SIGKILL after `timeout`."""
        stop_process(self.proc, timeout)
        return self.proc.returncode


class Beat:
    """A real `celery beat` with the DatabaseScheduler (the schedule `migrate` wrote)."""

    def __init__(self, log_path, loglevel="INFO"):
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "retrovue", "beat",
                 "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                 "--schedule", str(Path(log_path).with_suffix(".schedule")), "--loglevel", loglevel],
                cwd=ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self):
        stop_process(self.proc, timeout=10)


def stop_process(proc, timeout=5):
    """SIGTERM a child we started, SIGKILL it after `timeout`; always reaps it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_ffmpeg(marker):
    """Kill any FFmpeg left over that works on the bench's files; returns how many there were."""
    left = ffmpeg_processes(marker)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            continue
    return len(left)


def udp_receiver(port, timeout=15.0):
    """A UDP socket bound to 127.0.0.1:`port`, ready before anything sends to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(timeout)
    return sock


def first_ts_datagram(sock):
    """Block until the first datagram; returns its perf_counter arrival time. It must be MPEG-TS."""
    data = sock.recv(65536)
    arrived = time.perf_counter()
    if not data or data[0] != TS_SYNC:
        raise RuntimeError(f"first datagram is not MPEG-TS (starts with {data[:4].hex() or 'nothing'})")
    return arrived


def summary(samples_ms):
    """(runs, median, min, max) of a list of milliseconds."""
    return len(samples_ms), statistics.median(samples_ms), min(samples_ms), max(samples_ms)


def table(headers, rows):
    """A plain-text table; the first column left-aligned, the others right-aligned."""
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def configure_isolated(data_dir, redis_url):
    """configure() in a benchmark's own data folder and Redis database (flushed like the default
    one), so benchmarks can run side by side. Sets this module's DATA_DIR and REDIS_URL first:
    configure() reads them when it runs."""
    global DATA_DIR, REDIS_URL
    DATA_DIR = Path(data_dir).resolve()
    REDIS_URL = redis_url
    configure()


def for_each_channel(channels, action, verb):
    """Clean-up: apply a channel service to each channel; a failure is reported, never raised."""
    for channel in channels:
        try:
            action(channel)
        except Exception as exc:  # noqa: BLE001 - clean-up goes on regardless
            print(f"warning: could not {verb} {channel}: {exc}", file=sys.stderr)
