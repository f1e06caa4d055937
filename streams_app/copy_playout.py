"""Seamless playout for scheduled *copy* channels: one persistent output stage, no re-encode.

Why this mechanism: a copy channel passes pre-encoded media through, so the transcode engine's
trick (raw frames into one encoder whose clock is the frame count) is not available; and
restarting the output FFmpeg per program resets PCR and continuity counters and leaves a gap.
Here the channel's one output FFmpeg (the "output stage", `ffmpeg -f mpegts -i pipe:0 -c copy
-f tee ...`) reads a single MPEG-TS on stdin for as long as the channel runs. Each segment of the
timeline is read by its own short-lived FFmpeg (a `Reader`: `-ss IN -i SRC -c copy -f mpegts
pipe:1`), started two seconds before its boundary (pre-roll) so its start-up is paid while the
previous program still airs; its output waits in the pipe. The `CopyPacer` is a small TS splicer:
it takes the segment's packets from its first keyframe on, rewrites their PTS/DTS and PCR onto
the channel's own timeline (frame k of the channel at BASE + k/fps, exactly as the transcode
pacer counts frames), renumbers the continuity counters per PID so the output stage sees one
unbroken stream, passes exactly the slot's frames (and the audio up to the slot's end), and
writes each PES when its decode time comes on the monotonic clock. So boundaries fall on the
frame grid at their scheduled wall-clock time, timestamps never jump, and nothing is decoded.

Stream copy can only cut *in* at a keyframe. A segment that starts mid-file (a program's in-point,
a channel tuned in mid-program) starts at the keyframe at or before its in-point and still airs
exactly its slot's frames: content shifts by less than one GOP, timing does not. Schedules refuse
an explicit copy-mode in-point that is not on a keyframe (channels_app/schedules.py), so only a
late join shifts. Cutting *out* is on any frame (decode order; a source with B-frames may show a
reordered frame or two at an out-point that is not the end of the file). Gaps are filled by a
slate clip encoded once in the channel's format (cached under the data folder) and passed
through like any program.
"""
import fcntl
import hashlib
import logging
import os
import select
import subprocess
import threading
import time
from datetime import timedelta
from fractions import Fraction

from . import ffmpeg as builder
from . import process
from .playout import F_SETPIPE_SZ, Pacer, _write_all

log = logging.getLogger("retrovue.playout")

PACKET = 188
NULL_PID = 0x1FFF
WRAP = 1 << 33
HALF_WRAP = 1 << 32
CLOCK = 90000
# The channel's timeline starts here, so that DTS before PTS (B-frames) stays positive.
BASE = 10 * CLOCK
READ_SIZE = 1 << 16
# Slate gaps air as pieces of at most this long, each the slate clip from its start.
SLATE_PIECE = timedelta(seconds=10)
SLATE_CLIP_SECONDS = 11
# PES are written this far ahead of their decode time: the output stage's own latency (it passes
# a frame on once the audio interleaved with it has come).
LEAD_SECONDS = 0.06
_slate_lock = threading.Lock()


# --- MPEG-TS fields -----------------------------------------------------------------------------
def read_ts(b, o):
    return ((b[o] >> 1) & 7) << 30 | b[o + 1] << 22 | (b[o + 2] >> 1) << 15 | b[o + 3] << 7 | b[o + 4] >> 1


def write_ts(b, o, value):
    v = value % WRAP
    b[o] = (b[o] & 0xF1) | ((v >> 29) & 0x0E)
    b[o + 1] = (v >> 22) & 0xFF
    b[o + 2] = ((v >> 14) & 0xFE) | 1
    b[o + 3] = (v >> 7) & 0xFF
    b[o + 4] = ((v << 1) & 0xFE) | 1


def read_pcr_base(b):
    return b[6] << 25 | b[7] << 17 | b[8] << 9 | b[9] << 1 | b[10] >> 7


def write_pcr_base(b, value):
    v = value % WRAP
    b[6], b[7], b[8], b[9] = (v >> 25) & 0xFF, (v >> 17) & 0xFF, (v >> 9) & 0xFF, (v >> 1) & 0xFF
    b[10] = ((v & 1) << 7) | (b[10] & 0x7F)


def has_pcr(b):
    return b[3] & 0x20 and b[4] >= 7 and b[5] & 0x10


def payload_offset(b):
    return 5 + b[4] if b[3] & 0x20 else 4


# --- the output ---------------------------------------------------------------------------------
class Output:
    """The output stage's stdin: one transport stream with continuity counters that run on
    whatever reader the packets came from. Writes are batched until the pacer waits."""

    def __init__(self, fd):
        self.fd = fd
        self.cc = {}
        self.buffer = bytearray()

    def put(self, packet):
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        if packet[3] & 0x10:  # payload: the counter advances
            cc = (self.cc.get(pid, 15) + 1) & 0x0F
            self.cc[pid] = cc
        else:  # adaptation field only: the counter stays
            cc = self.cc.get(pid, 0)
        packet[3] = (packet[3] & 0xF0) | cc
        self.buffer += packet
        if len(self.buffer) >= READ_SIZE:
            self.flush()

    def flush(self):
        if self.buffer:
            _write_all(self.fd, self.buffer)
            self.buffer = bytearray()


# --- one segment --------------------------------------------------------------------------------
class Splice:
    """One segment's packets placed on the channel's timeline: frames [start, end).

    `feed(packet)` rewrites a packet in place and returns the DTS (on the channel's timeline)
    at which it is due, `True` for a packet that goes out with what precedes it, or None for a
    packet that is dropped. `frame_start` is set when the packet begins a video frame that will
    air (the pacer's moment for boundaries and switches)."""

    def __init__(self, fmt, start, end, last_audio_pts=None):
        self.fmt, self.start, self.end = fmt, start, end
        self.pts_start, self.pts_end = pts_of(fmt, start), pts_of(fmt, end)
        self.delta = None  # channel PTS - source PTS, fixed at the first keyframe
        self.reference = None  # a source timestamp to unwrap the others against
        self.frames = 0  # video frames passed
        self.video_done = self.audio_done = False
        self.keep = {}  # pid -> whether the PES in progress on it is passed
        self.pes_pids = set()
        self.last_audio_pts = last_audio_pts  # audio never steps back across a splice
        self.frame_start = False

    @property
    def done(self):
        return self.video_done and self.audio_done

    def unwrap(self, raw):
        if self.reference is None:
            self.reference = raw
        return self.reference + ((raw - self.reference + HALF_WRAP) % WRAP) - HALF_WRAP

    def feed(self, b):
        self.frame_start = False
        pid = ((b[1] & 0x1F) << 8) | b[2]
        if pid == NULL_PID:
            return None
        pusi, has_payload = b[1] & 0x40, b[3] & 0x10
        o = payload_offset(b)
        if pusi and has_payload and o + 14 <= PACKET and b[o] == 0 and b[o + 1] == 0 and b[o + 2] == 1:
            self.pes_pids.add(pid)
            due = self.pes_start(b, o)
            self.keep[pid] = due is not None
        elif pid not in self.pes_pids:  # PSI (PAT, PMT, SDT): passed while the segment airs
            return None if self.video_done else True
        elif not has_payload:  # adaptation only (a PCR): passed with the frames
            due = True if self.delta is not None and not self.video_done else None
        else:
            due = True if self.keep.get(pid) else None
        if due is not None and has_pcr(b):
            write_pcr_base(b, self.unwrap(read_pcr_base(b)) + self.delta)
        return due

    def pes_start(self, b, o):
        """The verdict on a new PES: its DTS on the channel's timeline if it airs, else None."""
        stream_id, flags = b[o + 3], b[o + 7] >> 6
        if not flags & 2:
            return None
        pts = self.unwrap(read_ts(b, o + 9))
        dts = self.unwrap(read_ts(b, o + 14)) if flags == 3 else pts
        if 0xE0 <= stream_id <= 0xEF:  # video: one frame per PES
            if self.delta is None:
                # FFmpeg's stream copy starts at a keyframe: the segment's first frame.
                self.delta = self.pts_start - pts
            if self.frames >= self.end - self.start:
                self.video_done = True
                # The reader interleaves by DTS: a second past the end, no audio of the slot is
                # still to come (a source whose audio ends early would otherwise be read to EOF).
                if dts + self.delta >= self.pts_end + CLOCK:
                    self.audio_done = True
                return None
            self.frames += 1
            self.frame_start = True
        else:  # audio: up to the slot's end, never before the first frame or an earlier sample
            if self.delta is None:
                return None
            channel_pts = pts + self.delta
            if channel_pts >= self.pts_end:
                self.audio_done = True
                return None
            if channel_pts < self.pts_start or (self.last_audio_pts is not None
                                                and channel_pts <= self.last_audio_pts):
                return None
            self.last_audio_pts = channel_pts
        write_ts(b, o + 9, pts + self.delta)
        if flags == 3:
            write_ts(b, o + 14, dts + self.delta)
        return dts + self.delta


def pts_of(fmt, frame):
    """Frame `frame` of the channel on its 90 kHz timeline."""
    return BASE + int(Fraction(frame) * CLOCK / fmt.fps)


class Reader:
    """One segment read by its own FFmpeg as MPEG-TS, started ahead of its air time; what it
    reads waits in its pipe until the pacer takes it."""

    def __init__(self, argv, fmt, frames):
        self.fmt, self.frames = fmt, frames
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, start_new_session=True,
                                     preexec_fn=process.die_with_parent(niceness=5))
        self.fd = self.proc.stdout.fileno()
        try:
            fcntl.fcntl(self.fd, F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        self.data, self.pos = b"", 0
        self.eof = False

    def ready(self):
        """True once the reader has output waiting (it has started)."""
        return self.pos + PACKET <= len(self.data) or bool(select.select([self.fd], [], [], 0)[0])

    def buffered(self):
        return self.pos + PACKET <= len(self.data)

    def packet(self, stopped):
        """The next 188-byte packet (a bytearray to rewrite), or None at the end (or on stop)."""
        while self.pos + PACKET > len(self.data):
            if self.eof or stopped.is_set():
                return None
            if not select.select([self.fd], [], [], 0.1)[0]:
                continue
            chunk = os.read(self.fd, READ_SIZE)
            if not chunk:
                self.eof = True
                continue
            self.data = self.data[self.pos:] + chunk
            self.pos = 0
            if self.data[0] != 0x47:  # never from FFmpeg's muxer; resynchronise if it happens
                sync = self.data.find(b"\x47")
                self.data = self.data[sync:] if sync >= 0 else b""
        packet = bytearray(self.data[self.pos:self.pos + PACKET])
        self.pos += PACKET
        return packet

    def close(self):
        process.discard(self.proc)


class CopyPacer(Pacer):
    """Splices segment after segment into the output stage, each PES at its decode time.

    Same timeline, pre-roll and switch handling as the transcode `Pacer` (its `upcoming`,
    `poll_switch`; `make_decoder(segment, frames, samples)` returns a `Reader` here)."""

    def __init__(self, fmt, out_fd, upcoming, make_reader, poll_switch=lambda: None, origin=None,
                 switch_poll_seconds=0.2, lead_seconds=0.0):
        super().__init__(fmt, out_fd, None, upcoming, make_reader, poll_switch, origin=origin,
                         switch_poll_seconds=switch_poll_seconds, lead_seconds=lead_seconds)
        self.output = Output(out_fd)
        self.closing = threading.Lock()
        self.splice = None
        self.short = []  # (segment, frames aired, frames scheduled) of segments that ran short

    def close(self):
        self.join(timeout=5)
        self.close_output()

    def close_output(self):
        """End of input for the output stage, so that it finishes its outputs and exits."""
        with self.closing:
            fd, self.video_fd = self.video_fd, None
            if fd is not None:
                os.close(fd)

    def begin(self, entry):
        last = self.splice.last_audio_pts if self.splice else None
        self.current, self.splice = entry, Splice(self.fmt, entry.start, entry.end, last)
        self.frame = entry.start
        self.aired.append((entry.start, entry.segment))

    def play(self):
        from concurrent.futures import ThreadPoolExecutor

        from django.utils import timezone

        self.origin = self.origin or timezone.now()
        clock = time.monotonic() - self.lead
        prepare = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copy-prepare")
        self.following = self.switching = None
        self.begin(self.next_entry(0))
        try:
            while not self.stopped.is_set():
                reader = self.current.decoder
                if not reader.buffered():
                    self.output.flush()  # never hold packets while the reader keeps us waiting
                packet = reader.packet(self.stopped)
                if packet is None or self.splice.done:
                    if packet is None and self.stopped.is_set():
                        break
                    self.next_segment(prepare)
                    continue
                due = self.splice.feed(packet)
                if due is None:
                    continue
                if self.splice.frame_start:
                    k = self.current.start + self.splice.frames - 1
                    self.frame = k
                    if self.at_frame(k, prepare):  # cut to a switch: this frame does not air
                        continue
                if due is not True:
                    delay = clock + (due - BASE) / CLOCK - time.monotonic()
                    if delay > 0:
                        self.output.flush()
                        if self.stopped.wait(delay):
                            break
                self.output.put(packet)
            self.output.flush()
        finally:
            prepare.shutdown(wait=True)
            self.close_output()

    def next_segment(self, prepare):
        """The segment ended (its frames aired, or its source ran out): the next one airs at its
        place on the frame grid, pre-rolled if it could be."""
        entry = self.current
        scheduled = entry.end - entry.start
        if self.splice.frames < scheduled:
            self.short.append((entry.segment, self.splice.frames, scheduled))
            log.warning("copy playout: %s ran short: %d of %d frames", entry.segment.source or "slate",
                        self.splice.frames, scheduled)
        prepare.submit(entry.decoder.close)
        following = self.following.result() if self.following else self.next_entry(entry.end)
        self.following = None
        self.begin(following)

    def at_frame(self, k, prepare):
        """At the start of frame k: pre-roll the next segment, poll for a switch, and cut to a
        switch whose reader has output. True if the cut was made."""
        if self.following is None and self.current.end - k <= self.preroll:
            self.following = prepare.submit(self.next_entry, self.current.end)
        if self.switching is None and k % self.switch_every == 0:
            self.switching = prepare.submit(self.prepare_switch)
        if self.switching is None or not self.switching.done():
            return False
        if self.switching.exception():
            log.warning("switch not taken: %s", self.switching.exception())
            self.switching = None
            return False
        entry = self.switching.result()
        if entry is None:
            self.switching = None
            return False
        if not entry.decoder.ready():
            return False
        prepare.submit(self.current.decoder.close)
        if self.following:
            prepare.submit(self.following.result().decoder.close)
        self.following = self.switching = None
        frames = entry.end - entry.start
        self.begin(type(entry)(entry.segment, k, k + frames, entry.decoder))
        return True


def slate_clip(plan, fmt):
    """The copy channel's slate as a clip in its format, encoded once and cached by format and
    text under the data folder; its path."""
    from django.conf import settings

    text = plan.slate_text_file.read_text() if plan.slate_text_file.exists() else ""
    key = hashlib.sha1(f"{fmt.width}x{fmt.height}/{fmt.fps}/{text}".encode()).hexdigest()[:16]
    folder = settings.RETROVUE_DATA_DIR / "slates"
    path = folder / f"slate-{fmt.width}x{fmt.height}-{key}.mp4"
    with _slate_lock:
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}.mp4"
            argv = builder.slate_clip_argv(plan, fmt, partial, SLATE_CLIP_SECONDS)
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  preexec_fn=process.die_with_parent(niceness=5), timeout=120)
            if done.returncode != 0:
                partial.unlink(missing_ok=True)
                raise RuntimeError(f"slate clip not made: {done.stderr.strip()[-300:]}")
            partial.rename(path)
    return path
