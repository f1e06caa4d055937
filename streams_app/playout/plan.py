"""What a run of a channel is built from: its plan (config, folders, FFmpeg) and its frame grid.

Resolved from the database once per start or restart (`channel_plan` in the supervisor), so a
restart always airs the configuration as it is now."""
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from channels_app.profiles import AUDIO_SAMPLE_RATE

# Paths end up inside FFmpeg filter and tee syntax, where : , ; [ ] | ' \ are special.
SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")
AUDIO_BYTES_PER_SAMPLE = 4  # s16le, stereo


class UnsafePath(ValueError):
    pass


def safe_path(path):
    text = str(path)
    if not SAFE_PATH.match(text):
        raise UnsafePath(f"'{text}' has characters FFmpeg filter syntax cannot take; use [A-Za-z0-9_./+-]")
    return text


@dataclass(frozen=True)
class Format:
    """The channel's frame grid: frame k airs at origin + k/fps; audio samples follow it."""

    width: int
    height: int
    fps: Fraction

    @property
    def frame_bytes(self):
        return self.width * self.height * 3 // 2  # yuv420p

    @property
    def size(self):
        return f"{self.width}x{self.height}"

    def samples_before(self, frame):
        """Audio samples that belong before video frame `frame` (exact over any length)."""
        return int(frame * AUDIO_SAMPLE_RATE / self.fps)

    def audio_bytes(self, frame):
        """PCM bytes that belong to frame `frame`."""
        return (self.samples_before(frame + 1) - self.samples_before(frame)) * AUDIO_BYTES_PER_SAMPLE


@dataclass(frozen=True)
class ChannelPlan:
    """Everything the engine needs, resolved from the database and settings beforehand."""

    number: int
    name: str
    sections: dict
    channel_dir: Path
    ffmpeg: str = "ffmpeg"
    udp_ttl: int = 16
    hls_list_size: int = 6
    hls_start: int = 0  # the media sequence number of the run's first HLS segment
    cgroup_procs: tuple = ()  # the control groups every process of the run joins (confinement.py)

    @property
    def stream(self):
        return self.sections["stream_settings"]

    @property
    def copy(self):
        """Video passed through as it is (copy mode) rather than encoded (transcode mode)."""
        return self.stream.get("video_codec") == "copy"

    @property
    def fmt(self):
        width, height = self.stream.get("resolution", "1280x720").split("x")
        return Format(int(width), int(height), Fraction(str(self.stream.get("frame_rate", 30))))

    @property
    def slate_text_file(self):
        return self.channel_dir / "slate.txt"

    @property
    def hls_dir(self):
        return self.channel_dir / "hls"

    def write_slate_text(self):
        """The text the slate draws (literally: a file, never expanded)."""
        self.channel_dir.mkdir(parents=True, exist_ok=True)
        self.slate_text_file.write_text(f"{self.number}  {self.name}")
