"""The copy mode's TS splicer: segments' packets placed on the channel's own timeline.

From a segment's first keyframe on, its PTS/DTS and PCR are rewritten onto the channel's timeline
(frame k at BASE + k/fps, as the transcode mode counts frames), each PID's continuity-counter jump
is marked, and the frames shown within the slot pass (its audio up to the slot's end, following
the last audio frame aired without a gap: at most half a frame off its pictures). Stream
copy cuts *in* only at a keyframe, the one at or before the in-point: content shifts by less than
a GOP, timing does not. With B-frames, frames come in decode order and are shown in another:
a frame is passed only if it is shown within the slot, the first one shown after it ends the
segment's video (later ones in decode order may refer to it), leading frames of an open GOP
(shown before the keyframe, referring to the GOP before) are dropped, and a segment whose first
decode time would not come after the last one aired starts as many frames later as it takes
(more reordering than the segment before). So across every splice DTS strictly increases, each
PTS is used once, all on the frame grid; at most a few frames at a cut hold the last picture.
"""
import re
from fractions import Fraction

PACKET = 188
NULL_PID = 0x1FFF
WRAP = 1 << 33
HALF_WRAP = 1 << 32
CLOCK = 90000
# The channel's timeline starts here, so that DTS before PTS (B-frames) stays positive.
BASE = 10 * CLOCK
# The longest audio frame aired (AC-3: 1536 samples at 48 kHz): a segment's audio is moved at
# most this much to follow the last frame aired without a gap (a switch may leave more).
MAX_AUDIO_FRAME = 2880


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


def pts_of(fmt, frame):
    """Frame `frame` of the channel on its 90 kHz timeline."""
    return BASE + int(Fraction(frame) * CLOCK / fmt.fps)


def discontinuity(packet):
    """An adaptation-field-only packet to send before a PID's first packet from a new segment:
    its discontinuity indicator tells the output stage's demuxer that the counter jumps, and it
    carries the counter the packet continues from, so no packet of the segment is renumbered."""
    cc = (packet[3] - 1 if packet[3] & 0x10 else packet[3]) & 0x0F
    return bytes([0x47, packet[1] & 0x1F, packet[2], 0x20 | cc, 183, 0x80]) + b"\xff" * 182


def plain_run(pids):
    """A regex over packet headers (bytes 1-3 of each packet, side by side) matching a run of
    packets that are only payload of a PES in progress on `pids`: nothing in them is read or
    changed, so the splicer passes them whole."""
    headers = b"|".join(re.escape(bytes([pid >> 8, pid & 0xFF])) + b"[\x10-\x1f]" for pid in sorted(pids))
    return re.compile(b"(?:" + headers + b")+") if pids else None


class Splice:
    """One segment's packets placed on the channel's timeline: frames [start, end).

    `feed(packet)` rewrites a packet in place and returns the DTS (on the channel's timeline)
    at which it is due, `True` for a packet that goes out with what precedes it, or None for a
    packet that is dropped. `frame` is the channel frame index a packet that begins an airing
    video frame is shown at, else None (the pacer's moment for boundaries and switches)."""

    def __init__(self, fmt, start, end, audio_end=None, last_video_dts=None):
        self.fmt, self.start, self.end = fmt, start, end
        self.pts_start, self.pts_end = pts_of(fmt, start), pts_of(fmt, end)
        self.delta = None  # channel PTS - source PTS, fixed at the first keyframe
        self.reference = None  # a source timestamp to unwrap the others against
        self.video_done = self.audio_done = False
        self.keep = {}  # pid -> whether the PES in progress on it is passed
        self.plain = None  # plain_run() of the PIDs kept now
        self.marked = set()  # PIDs whose counter jump is marked
        self.pes_pids = set()
        # Carried from splice to splice: where the last audio frame aired ends (the next one may not
        # start before it) and the last video DTS (the next is after it).
        self.audio_end, self.last_video_dts = audio_end, last_video_dts
        self.audio_seen = None  # the PTS of the last audio PES read: frames are one per PES
        self.audio_shift = None  # ticks this segment's audio is delayed by (fixed at its first frame)
        self.frame = None

    def carried(self):
        return self.audio_end, self.last_video_dts

    @property
    def done(self):
        return self.video_done and self.audio_done

    def unwrap(self, raw):
        if self.reference is None:
            self.reference = raw
        return self.reference + ((raw - self.reference + HALF_WRAP) % WRAP) - HALF_WRAP

    def feed(self, b):
        self.frame = None
        pid = ((b[1] & 0x1F) << 8) | b[2]
        if pid == NULL_PID:
            return None
        pusi, has_payload = b[1] & 0x40, b[3] & 0x10
        o = payload_offset(b)
        if pusi and has_payload and o + 14 <= PACKET and b[o] == 0 and b[o + 1] == 0 and b[o + 2] == 1:
            self.pes_pids.add(pid)
            due = self.pes_start(b, o)
            if self.keep.get(pid) != (due is not None):
                self.keep[pid] = due is not None
                self.plain = plain_run({p for p, kept in self.keep.items() if kept})
                if due is not None:  # passed again after a dropped PES: its counter jump is marked too
                    self.marked.discard(pid)
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
        video = 0xE0 <= stream_id <= 0xEF  # one frame per PES, in decode order
        if video and self.delta is None:
            # FFmpeg's stream copy starts at a keyframe: the first frame shown in the slot, or
            # as few frames later as put its decode time after the last one aired.
            shift = 0
            while self.last_video_dts is not None and \
                    dts + pts_of(self.fmt, self.start + shift) - pts <= self.last_video_dts:
                shift += 1
            self.delta = pts_of(self.fmt, self.start + shift) - pts
        if self.delta is None:
            return None  # audio before the first frame
        pts, dts = pts + self.delta, dts + self.delta
        if video:
            if self.video_done or pts >= self.pts_end:
                self.video_done = True
                # The reader interleaves by DTS: a second past the end, no audio of the slot is
                # still to come (a source whose audio ends early would otherwise be read to EOF).
                if dts >= self.pts_end + CLOCK:
                    self.audio_done = True
                return None
            if pts < self.pts_start or (self.last_video_dts is not None and dts <= self.last_video_dts):
                return None
            self.last_video_dts = dts
            self.frame = round((pts - BASE) * self.fmt.fps / CLOCK)
        else:  # audio: up to the slot's end, never before the first frame or over the last one aired
            step, self.audio_seen = (pts - self.audio_seen if self.audio_seen is not None else 0), pts
            if pts < self.pts_start:
                return None
            if self.audio_shift is None:
                # Audio frames do not end on video frames: this segment's audio starts where the
                # last frame aired ends (at most half a frame early or late against its pictures)
                # rather than leaving a hole or losing a frame.
                gap = self.audio_end - pts if self.audio_end is not None else 0
                self.audio_shift = gap if abs(gap) <= MAX_AUDIO_FRAME else 0
            pts, dts = pts + self.audio_shift, dts + self.audio_shift
            if pts + step // 2 >= self.pts_end:  # mostly past the slot: so the shifts never add up
                self.audio_done = True
                return None
            if self.audio_end is not None and pts < self.audio_end:
                return None
            self.audio_end = pts + max(1, step)
        write_ts(b, o + 9, pts)
        if flags == 3:
            write_ts(b, o + 14, dts)
        return dts
