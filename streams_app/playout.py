"""Seamless playout: one persistent encoder per channel, fed program after program.

Why this mechanism: restarting the output FFmpeg at each program resets PCR and continuity
counters and leaves a gap while it starts, which receivers show as a stall. Here the channel's
one output FFmpeg (the "encoder") reads raw video on stdin and PCM audio on a second pipe, whose
timestamps are the frame and sample counts, so they run on without a break whatever is fed.
Each segment of the timeline is decoded by its own short-lived FFmpeg (a `Decoder`),
normalised to the channel's size, rate and audio format and trimmed to exactly the frames and
samples of its slot; it is started a couple of seconds before its boundary (pre-roll), so its
start-up cost is paid while the previous program still airs. The `Pacer` writes frame k (and
the audio belonging to it) at origin + k/fps on the monotonic clock: boundaries land on the
scheduled wall-clock time to the frame, and a switch request cuts over at the next frame once
the new decoder has its first frame ready.
"""
import fcntl
import logging
import os
import select
import subprocess
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

from channels_app.profiles import AUDIO_SAMPLE_RATE

from . import process

log = logging.getLogger("retrovue.playout")

F_SETPIPE_SZ = 1031
SAMPLE_RATE = AUDIO_SAMPLE_RATE
AUDIO_BYTES_PER_SAMPLE = 4  # s16le, stereo
PREROLL_SECONDS = 2.0


@dataclass(frozen=True)
class Format:
    width: int
    height: int
    fps: Fraction

    @property
    def frame_bytes(self):
        return self.width * self.height * 3 // 2  # yuv420p

    def samples_before(self, frame):
        """Audio samples that belong before video frame `frame` (exact over any length)."""
        return int(frame * SAMPLE_RATE / self.fps)

    def encoder_inputs(self, audio_fd):
        """Raw inputs need no probing; probing would wait on one pipe while we write the other."""
        raw = ["-probesize", "32", "-analyzeduration", "0", "-thread_queue_size", "64"]
        return ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{self.width}x{self.height}",
                "-framerate", str(self.fps), *raw, "-i", "pipe:",
                "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "2", *raw, "-i", f"pipe:{audio_fd}"]


def big_pipe(size=1 << 20):
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, size)
    except OSError:
        pass  # the system limit is lower: a smaller buffer only means less read-ahead
    return read_fd, write_fd


def decoder_argv(ffmpeg, segment, fmt, frames, samples, audio_fd, has_audio=True, slate_text=None):
    """Decode one segment to exactly `frames` raw frames (stdout) and `samples` PCM samples
    (`audio_fd`): scaled and padded to the channel's size, at its rate, the last frame held and
    silence added if the source runs short."""
    size, rate = f"{fmt.width}x{fmt.height}", str(fmt.fps)
    pcm = "aformat=sample_fmts=s16:channel_layouts=stereo"
    # Every generated source ends a little after the slot: an endless one would keep FFmpeg
    # pulling it and never drain the other chain.
    bound = f"{float(frames / fmt.fps) + 1:.3f}"
    if segment.source:
        inputs = ["-ss", f"{segment.in_point:.3f}", "-i", segment.source,
                  "-f", "lavfi", "-i", f"anullsrc=r={SAMPLE_RATE}:cl=stereo:d={bound}"]
        video = (f"[0:v:0]scale={fmt.width}:{fmt.height}:force_original_aspect_ratio=decrease,"
                 f"pad={fmt.width}:{fmt.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={rate},format=yuv420p,"
                 f"tpad=stop_mode=clone:stop_duration={bound}[v]")
        audio = (f"[0:a:0]aresample={SAMPLE_RATE},{pcm}[src];[src][1:a]concat=n=2:v=0:a=1,"
                 if has_audio else "[1:a]") + f"atrim=end_sample={samples}[a]"
    else:
        text = (f",drawtext=textfile={slate_text}:fontcolor=white:fontsize={max(fmt.height // 12, 8)}"
                ":x=(w-tw)/2:y=h-th-h/10:box=1:boxcolor=black@0.6:boxborderw=10") if slate_text else ""
        inputs = ["-f", "lavfi", "-i", f"smptebars=size={size}:rate={rate}:d={bound}{text},format=yuv420p",
                  "-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate={SAMPLE_RATE}:d={bound}"]
        video = "[0:v:0]null[v]"
        audio = f"[1:a]{pcm},atrim=end_sample={samples}[a]"
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *inputs,
            "-filter_complex", f"{video};{audio}",
            "-map", "[v]", "-frames:v", str(frames), "-f", "rawvideo", "pipe:1",
            "-map", "[a]", "-ac", "2", "-f", "s16le", f"pipe:{audio_fd}"]


class Decoder:
    """One segment's frames and samples, produced ahead of its air time."""

    def __init__(self, ffmpeg, segment, fmt, frames, samples, has_audio=True, slate_text=None):
        self.segment, self.fmt, self.frames = segment, fmt, frames
        self.audio_read, audio_write = big_pipe(1 << 18)
        argv = decoder_argv(ffmpeg, segment, fmt, frames, samples, audio_write, has_audio, slate_text)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, pass_fds=(audio_write,), bufsize=0,
                                     start_new_session=True,
                                     # Decoders run ahead of air time: let the encoder go first.
                                     preexec_fn=process.die_with_parent(niceness=5))
        os.close(audio_write)
        try:
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass

    def ready(self):
        """True once the first frame is waiting in the pipe (the decoder has started)."""
        return bool(select.select([self.proc.stdout], [], [], 0)[0])

    def read_frame(self):
        return _read_exact(self.proc.stdout.fileno(), self.fmt.frame_bytes)

    def read_audio(self, nbytes):
        return _read_exact(self.audio_read, nbytes)

    def close(self):
        process.discard(self.proc)
        os.close(self.audio_read)


def _read_exact(fd, nbytes):
    """`nbytes` from a pipe, or None if it ends first (the decoder died or ran short)."""
    chunks, wanted = [], nbytes
    while wanted:
        chunk = os.read(fd, wanted)
        if not chunk:
            return None
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


@dataclass
class Entry:
    """A segment placed on the frame grid: frames [start, end) from its decoder."""

    segment: object
    start: int
    end: int
    decoder: Decoder


class Pacer(threading.Thread):
    """Writes frame k and its audio to the encoder at origin + k/fps, segment after segment.

    `upcoming(at)` returns the timeline from wall-clock time `at` (its first segment starts
    there); `make_decoder(segment, frames, samples)` starts a Decoder; `poll_switch()` returns
    a segment to cut to now, or None. Stops on `stop()` or when the encoder goes away.
    """

    def __init__(self, fmt, video_fd, audio_fd, upcoming, make_decoder, poll_switch=lambda: None,
                 origin=None, switch_poll_seconds=0.2, lead_seconds=0.0):
        super().__init__(name="pacer", daemon=True)
        self.fmt, self.video_fd, self.audio_fd = fmt, video_fd, audio_fd
        self.upcoming, self.make_decoder, self.poll_switch = upcoming, make_decoder, poll_switch
        self.origin = origin  # wall-clock time of frame 0 (aware datetime)
        # Frames are written this much ahead of their air time: the encoder's own latency.
        self.lead = lead_seconds
        self.preroll = int(PREROLL_SECONDS * fmt.fps)
        self.switch_every = max(1, int(switch_poll_seconds * fmt.fps))
        self.stopped = threading.Event()
        self.frame = 0
        self.current = self.following = self.switching = None  # an Entry, then two futures
        self.aired = []  # (frame, segment) of each cut, for reports and tests
        self.error = None

    def stop(self):
        self.stopped.set()

    def close(self):
        """After the encoder is gone: let the thread end, then close our ends of its pipes."""
        self.join(timeout=5)
        for fd in (self.video_fd, self.audio_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def time_at(self, frame):
        from datetime import timedelta

        return self.origin + timedelta(seconds=float(frame / self.fmt.fps))

    def frame_at(self, moment):
        return round((moment - self.origin).total_seconds() * self.fmt.fps)

    def entry(self, segment, start, end=None):
        end = max(start + 1, self.frame_at(segment.end) if end is None else end)
        samples = self.fmt.samples_before(end) - self.fmt.samples_before(start)
        return Entry(segment, start, end, self.make_decoder(segment, end - start, samples))

    def next_entry(self, frame):
        """The segment airing from frame `frame` on. The timeline is asked from half a frame
        earlier and a segment that ends on this frame skipped: boundaries are rounded to the
        frame grid, and asking at the frame's exact time could return the last sliver of the
        segment that just ended (aired as a one-frame segment, the next one then not pre-rolled)."""
        from datetime import timedelta

        segments = self.upcoming(self.time_at(frame) - timedelta(seconds=float(1 / (2 * self.fmt.fps))))
        segment = next((s for s in segments if self.frame_at(s.end) > frame), segments[-1])
        return self.entry(segment, frame)

    def run(self):
        try:
            self.play()
        except (BrokenPipeError, OSError) as exc:
            self.error = exc
            if not self.stopped.is_set():
                log.warning("pacer stopped: %s", exc)
        finally:
            for entry in self.entries():
                entry.decoder.close()

    def entries(self):
        pending = [f.result() for f in (self.following, self.switching) if f and f.done() and not f.exception()]
        return [e for e in [self.current, *pending] if e]

    def prepare_switch(self):
        segment = self.poll_switch()
        if segment is None:
            return None
        return self.entry(segment, 0, max(1, round(segment.duration_s * self.fmt.fps)))

    def play(self):
        """The frame loop. Only writes happen here: decoders are started and the database is
        read on the helper thread (`prepare`), so a fork or a query never delays a frame."""
        from concurrent.futures import ThreadPoolExecutor

        from django.utils import timezone

        self.origin = self.origin or timezone.now()
        clock = time.monotonic()
        fps, frame_bytes = self.fmt.fps, self.fmt.frame_bytes
        prepare = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playout-prepare")
        self.current, self.following, self.switching = self.next_entry(0), None, None
        self.aired.append((0, self.current.segment))
        video = bytes(frame_bytes)
        try:
            while not self.stopped.is_set():
                k = self.frame
                if k >= self.current.end:
                    prepare.submit(self.current.decoder.close)
                    self.current = self.following.result() if self.following else self.next_entry(k)
                    self.following = None
                    self.aired.append((k, self.current.segment))
                if self.following is None and self.current.end - k <= self.preroll:
                    self.following = prepare.submit(self.next_entry, self.current.end)
                if self.switching is None and k % self.switch_every == 0:
                    self.switching = prepare.submit(self.prepare_switch)
                if self.switching and self.switching.done():
                    self.take_switch(k, prepare)
                video = self.current.decoder.read_frame() or video  # a short source holds its last frame
                audio_bytes = (self.fmt.samples_before(k + 1) - self.fmt.samples_before(k)) * AUDIO_BYTES_PER_SAMPLE
                audio = self.current.decoder.read_audio(audio_bytes) or bytes(audio_bytes)
                delay = clock + float(k / fps) - self.lead - time.monotonic()
                if delay > 0:
                    self.stopped.wait(delay)
                # Audio first: its timestamps are sample counts, so order does not touch sync,
                # and the encoder never waits on a part-filled audio packet while we wait on it.
                _write_all(self.audio_fd, audio)
                _write_all(self.video_fd, video)
                self.frame = k + 1
        finally:
            prepare.shutdown(wait=True)

    def take_switch(self, k, prepare):
        """A switch that was polled: nothing asked (poll again later) or a decoder to cut to
        at frame k once its first frame is ready; the schedule resumes after it."""
        if self.switching.exception():
            log.warning("switch not taken: %s", self.switching.exception())
            self.switching = None
            return
        entry = self.switching.result()
        if entry is None:
            self.switching = None
            return
        if not entry.decoder.ready():
            return
        prepare.submit(self.current.decoder.close)
        if self.following:
            prepare.submit(self.following.result().decoder.close)
        frames = entry.end - entry.start
        self.current = Entry(entry.segment, k, k + frames, entry.decoder)
        self.following = self.switching = None
        self.aired.append((k, self.current.segment))


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
