"""Live thumbnails for the dashboards, cut on demand from a channel's newest finished HLS segment.

The channel's pipeline is left alone: one short FFmpeg reads a segment the channel already
wrote, at most once per MAX_AGE_SECONDS per channel however many dashboards poll, and writes
the JPEG next to the channel's other runtime files.
"""
import os
import subprocess
import threading
import time
from collections import defaultdict

from django.conf import settings

from .hls import HLS_FILE, channel_dir, hls_dir

MAX_AGE_SECONDS = 3.0
WIDTH = 320
FFMPEG_TIMEOUT_SECONDS = 10
_locks = defaultdict(threading.Lock)  # one extraction per channel at a time


def newest_segment(number):
    """The last segment the channel's playlist lists: complete, unlike the one being written."""
    try:
        lines = (hls_dir(number) / "index.m3u8").read_text().splitlines()
    except OSError:
        return None
    names = [line.strip() for line in lines if HLS_FILE.match(line.strip())]
    for name in reversed(names):
        path = hls_dir(number) / name
        if path.exists():
            return path
    return None


def _fresh(path):
    try:
        return time.time() - path.stat().st_mtime < MAX_AGE_SECONDS
    except OSError:
        return False


def thumbnail(number):
    """Path of a recent JPEG of the channel's picture, or None while it publishes no segment."""
    target = channel_dir(number) / "thumbnail.jpg"
    with _locks[number]:
        if _fresh(target):
            return target
        segment = newest_segment(number)
        if segment is None:
            return None
        partial = target.with_name("thumbnail.part.jpg")
        try:
            done = subprocess.run(
                [settings.RETROVUE_FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(segment),
                 "-frames:v", "1", "-vf", f"scale={WIDTH}:-2", "-f", "image2", str(partial)],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            done = None
        if done is not None and done.returncode == 0 and partial.exists():
            os.replace(partial, target)
        return target if target.exists() else None
