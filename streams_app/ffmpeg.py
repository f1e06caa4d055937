"""FFmpeg command builder: a channel's validated config in, an argv list out (never a shell).

One FFmpeg process per channel encodes once and fans out through the tee muxer to MPEG-TS over
UDP (pkt_size 1316, 7 TS packets per datagram) and to a rolling HLS window in the channel's folder.
A channel with an empty playlist plays a generated slate: colour bars, its name and number burnt
in, and a 1 kHz tone.
"""
import re
from dataclasses import dataclass
from pathlib import Path

from channels_app.profiles import AUDIO_SAMPLE_RATE
from channels_app.validation import AUDIO_CODECS, VIDEO_CODECS

# Paths end up inside FFmpeg filter and tee syntax, where : , ; [ ] | ' \ are special.
SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+-]+$")
X264_FAMILY = {"libx264", "libx265"}
HLS_SEGMENT_SECONDS = 2


class UnsafePath(ValueError):
    pass


def safe_path(path):
    text = str(path)
    if not SAFE_PATH.match(text):
        raise UnsafePath(f"'{text}' has characters FFmpeg filter syntax cannot take; use [A-Za-z0-9_./+-]")
    return text


@dataclass(frozen=True)
class ChannelPlan:
    """Everything the builder needs, resolved from the database and settings beforehand."""

    number: int
    name: str
    playlist: tuple
    sections: dict
    channel_dir: Path
    ffmpeg: str = "ffmpeg"
    scheduled: bool = False  # airs a schedule through the persistent playout encoder
    udp_ttl: int = 16
    hls_list_size: int = 6

    @property
    def playlist_file(self):
        return self.channel_dir / "playlist.ffconcat"

    @property
    def slate_text_file(self):
        return self.channel_dir / "slate.txt"

    @property
    def hls_dir(self):
        return self.channel_dir / "hls"


def concat_list(paths):
    """An ffconcat file for the playlist; quotes are escaped the way the concat demuxer reads them."""
    lines = ["ffconcat version 1.0"]
    lines += ["file '" + p.replace("'", "'\\''") + "'" for p in paths]
    return "\n".join(lines) + "\n"


def write_channel_files(plan):
    """Write the playlist and slate text the argv refers to; returns the folders it made."""
    plan.hls_dir.mkdir(parents=True, exist_ok=True)
    for old in plan.hls_dir.glob("*"):
        old.unlink(missing_ok=True)
    plan.playlist_file.write_text(concat_list(plan.playlist))
    plan.slate_text_file.write_text(f"{plan.number}  {plan.name}")


def udp_url(network, ttl):
    address = network["multicast_address"]
    host = f"[{address}]" if ":" in address else address
    return f"udp://{host}:{network['port']}?pkt_size=1316&ttl={network.get('ttl', ttl)}"


def input_args(plan):
    """Looped playlist through the concat demuxer, or the generated slate; paced at real time."""
    if plan.playlist:
        return (["-re", "-stream_loop", "-1", "-f", "concat", "-safe", "0",
                 "-i", safe_path(plan.playlist_file)], ["-map", "0:v:0", "-map", "0:a:0?"])
    stream = plan.sections["stream_settings"]
    size, rate = stream.get("resolution", "1280x720"), stream.get("frame_rate", 30)
    height = int(size.split("x")[1])
    video = (
        f"smptebars=size={size}:rate={rate},"
        f"drawtext=textfile={safe_path(plan.slate_text_file)}:fontcolor=white:fontsize={max(height // 12, 8)}"
        ":x=(w-tw)/2:y=h-th-h/10:box=1:boxcolor=black@0.6:boxborderw=10"
    )
    return (["-re", "-f", "lavfi", "-i", video,
             "-re", "-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate={AUDIO_SAMPLE_RATE}"],
            ["-map", "0:v:0", "-map", "1:a:0"])


def is_copy(plan):
    return bool(plan.playlist) and plan.sections["stream_settings"].get("video_codec") == "copy"


def encoder(name, table, fallback):
    chosen = table[name]
    return chosen if chosen else fallback


def codec_args(plan):
    """Stream copy for copy-mode playlists; otherwise encode to the channel's settings."""
    stream, quality = plan.sections["stream_settings"], plan.sections["quality_settings"]
    if is_copy(plan):
        audio = AUDIO_CODECS[stream.get("audio_codec", "copy")]
        return ["-c:v", "copy"] + (["-c:a", "copy"] if audio is None else ["-c:a", audio, "-b:a", "128k"])
    # A copy channel with nothing to pass through encodes its slate with H.264/AAC.
    video = encoder(stream.get("video_codec", "h264"), VIDEO_CODECS, "libx264")
    audio = encoder(stream.get("audio_codec", "aac"), AUDIO_CODECS, "aac")
    rate = stream.get("frame_rate", 30)
    width, height = stream.get("resolution", "1280x720").split("x")
    gop = str(max(1, round(float(rate) * HLS_SEGMENT_SECONDS)))
    args = [
        "-vf", f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
               f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={rate}",
        "-c:v", video, "-pix_fmt", "yuv420p",
        "-g", gop, "-keyint_min", gop,
    ]
    if video in X264_FAMILY:
        args += ["-preset", quality.get("preset", "veryfast"), "-sc_threshold", "0"]
        if "crf" in quality:
            args += ["-crf", str(quality["crf"])]
        else:
            args += ["-b:v", stream.get("bitrate", "3000k")]
    else:
        args += ["-b:v", stream.get("bitrate", "3000k")]
    args += ["-maxrate", quality.get("max_bitrate", stream.get("bitrate", "3000k")),
             "-bufsize", quality.get("buffer_size", "6000k")]
    args += ["-c:a", audio, "-b:a", "128k", "-ar", str(AUDIO_SAMPLE_RATE), "-ac", "2"]
    return args


def output_args(plan):
    network = plan.sections["network_settings"]
    hls = (
        f"[f=hls:hls_time={HLS_SEGMENT_SECONDS}:hls_list_size={plan.hls_list_size}"
        f":hls_flags=delete_segments+independent_segments]{safe_path(plan.hls_dir / 'index.m3u8')}"
    )
    udp = f"[f=mpegts:onfail=ignore:pcr_period=40]{udp_url(network, plan.udp_ttl)}"
    return ["-metadata", "service_provider=RetroVue", "-metadata", f"service_name={plan.name}",
            "-f", "tee", f"{udp}|{hls}"]


def build_command(plan):
    inputs, maps = input_args(plan)
    return [
        plan.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning",
        "-progress", "pipe:1", "-stats_period", "0.5",
        *inputs, *maps, *codec_args(plan), *output_args(plan),
    ]


def playout_format(plan):
    from fractions import Fraction

    from .playout import Format

    stream = plan.sections["stream_settings"]
    width, height = stream.get("resolution", "1280x720").split("x")
    return Format(int(width), int(height), Fraction(str(stream.get("frame_rate", 30))))


def build_playout_command(plan, audio_fd):
    """The persistent encoder of a scheduled channel: raw frames on stdin, PCM on `audio_fd`.

    Low-latency settings keep each frame's packets leaving when it is written, so boundaries
    and switches show on the wire when they happen (x264 without lookahead, no mux delay)."""
    codecs = codec_args(plan)
    if "libx264" in codecs:
        codecs += ["-tune", "zerolatency"]
    return [
        plan.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning",
        "-progress", "pipe:1", "-stats_period", "0.5",
        *playout_format(plan).encoder_inputs(audio_fd), "-map", "0:v:0", "-map", "1:a:0",
        *codecs, "-max_interleave_delta", "40000", "-muxdelay", "0", "-muxpreload", "0",
        "-flush_packets", "1", *output_args(plan),
    ]


# --- scheduled copy mode ------------------------------------------------------------------------
def is_copy_playout(plan):
    """A scheduled channel whose video is passed through: played by `copy_playout`."""
    return plan.scheduled and plan.sections["stream_settings"].get("video_codec") == "copy"


def copy_audio_args(plan):
    """Audio as the copy channel airs it: copied, or encoded to the channel's codec."""
    audio = AUDIO_CODECS[plan.sections["stream_settings"].get("audio_codec", "copy")]
    return ["-c:a", "copy"] if audio is None else ["-c:a", audio, "-b:a", "128k", "-ar", str(AUDIO_SAMPLE_RATE), "-ac", "2"]


def copy_reader_argv(plan, source, in_point, seconds, has_audio=True):
    """One segment of a copy channel as MPEG-TS on stdout, video passed through.

    Stream copy can only start at a keyframe: with `-ss` FFmpeg starts at the keyframe at or
    before `in_point` (and drops what precedes it). Timestamps are whatever the source has; the
    pacer rebases them onto the channel's timeline. No muxing delay (the PCR is the DTS) and the
    video PES length written where it fits, so the output stage can pass a frame on as soon as it
    has it instead of waiting for the next one. It reads a second more than the slot (`seconds`)
    and ends: it exits while its output still waits in the pipe, well before its boundary."""
    seek = ["-ss", f"{in_point:.6f}"] if in_point > 0 else []
    inputs = [*seek, "-t", f"{seconds + 1:.3f}", "-i", source]
    maps = ["-map", "0:v:0", "-map", "0:a:0"]
    audio = copy_audio_args(plan)
    if not has_audio:  # only when the channel encodes audio: silence in the channel's codec
        inputs += ["-f", "lavfi", "-i", f"anullsrc=r={AUDIO_SAMPLE_RATE}:cl=stereo"]
        maps = ["-map", "0:v:0", "-map", "1:a:0", "-shortest"]
    return [plan.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *inputs, *maps,
            "-c:v", "copy", *audio, "-muxdelay", "0", "-muxpreload", "0",
            "-omit_video_pes_length", "0", "-f", "mpegts", "pipe:1"]


def slate_clip_argv(plan, fmt, path, seconds):
    """The copy channel's slate, encoded once in the channel's format (H.264 at its size and
    rate, a keyframe a second, no B-frames, AAC 48 kHz stereo) so that it can be passed
    through like any program."""
    size, rate = f"{fmt.width}x{fmt.height}", str(fmt.fps)
    gop = str(max(1, round(float(fmt.fps))))
    video = (f"smptebars=size={size}:rate={rate},"
             f"drawtext=textfile={safe_path(plan.slate_text_file)}:fontcolor=white:"
             f"fontsize={max(fmt.height // 12, 8)}:x=(w-tw)/2:y=h-th-h/10:box=1:boxcolor=black@0.6:boxborderw=10")
    return [plan.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate={AUDIO_SAMPLE_RATE}",
            "-t", f"{seconds:g}", "-map", "0:v:0", "-map", "1:a:0",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-bf", "0",
            "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
            "-c:a", "aac", "-b:a", "128k", "-ar", str(AUDIO_SAMPLE_RATE), "-ac", "2", "-f", "mp4", safe_path(path)]


def build_copy_playout_command(plan):
    """The persistent output stage of a scheduled copy channel: one MPEG-TS on stdin, spliced
    program after program by the copy pacer (continuous timestamps and continuity counters),
    passed through to the channel's outputs without re-encoding. Nothing to probe for long: the
    pacer feeds in real time, so the first PAT/PMT and keyframe say all there is."""
    return [
        plan.ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning",
        "-progress", "pipe:1", "-stats_period", "0.5",
        "-f", "mpegts", "-probesize", "1000000", "-analyzeduration", "200000", "-i", "pipe:0",
        "-map", "0:v:0", "-map", "0:a:0", "-c", "copy",
        "-max_interleave_delta", "40000", "-muxdelay", "0", "-muxpreload", "0",
        "-flush_packets", "1", *output_args(plan),
    ]
