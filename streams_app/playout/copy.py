"""Copy mode: segments passed through without re-encoding, spliced into one output stage.

Each segment is read by its own `ffmpeg -ss IN -i SRC -c copy -f mpegts pipe:1` (a `Reader`);
the splicer (splice.py) rebases its timestamps onto the channel's timeline, and each PES is
written when its decode time comes. Gaps and the slate air a clip of the slate encoded once in
the channel's format (cached under the data folder), in pieces no longer than the clip.
"""
import hashlib
import os
import select
import subprocess
import threading
from datetime import timedelta

from django.conf import settings

from .. import process
from . import argv
from .modes import Mode, SourceProcess, write_all
from .splice import BASE, CLOCK, PACKET, Splice, discontinuity, payload_offset

READ_SIZE = 1 << 16
# Slate gaps air as pieces of at most this long, each the slate clip from its start.
SLATE_PIECE = timedelta(seconds=10)
SLATE_CLIP_SECONDS = 11
_slate_lock = threading.Lock()


class Reader(SourceProcess):
    """One segment as MPEG-TS, taken in chunks of whole packets (bytearrays to rewrite)."""

    def __init__(self, mode, argv_):
        super().__init__(mode, argv_)
        self.rest = b""  # the start of a packet whose end has not come yet

    def chunks(self, stopped):
        """Whole packets as they come, until the end of its output (or a stop); None while it
        keeps us waiting."""
        os.set_blocking(self.fd, False)
        while not stopped.is_set():
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:  # nothing yet: the pacer sends what it holds while we wait
                yield None
                select.select([self.fd], [], [], 0.1)
                continue
            if not data:
                return
            data = self.rest + data
            if data[0] != 0x47:  # never from FFmpeg's muxer; resynchronise if it happens
                sync = data.find(b"\x47")
                data = data[sync:] if sync >= 0 else b""
            whole = len(data) - len(data) % PACKET
            self.rest = data[whole:]
            if whole:
                yield bytearray(data[:whole])


class CopyMode(Mode):
    slate_piece = SLATE_PIECE
    # A cut in decode order can leave the last few frames of a slot unshown (B-frames).
    held_frames = 16
    # It passes a frame on once the audio interleaved with it has come.
    lead = 0.06

    def __init__(self, plan, **options):
        super().__init__(plan, **options)
        self.copies_audio = plan.stream.get("audio_codec", "copy") == "copy"
        self.fd = None
        self.buffer = bytearray()  # units written, sent when the pacer waits (or 64 KB gathered)
        self.carried = (None, None)  # what one splice hands the next (Splice.carried)
        self.slate = None

    def spawn_output(self, spawn):
        run = spawn(argv.passthrough_argv(self.plan))
        self.fd = os.dup(run.proc.stdin.fileno())
        run.proc.stdin.close()
        self.fds = [self.fd]
        # The slate clip is made once per format; make it now rather than at the first gap.
        threading.Thread(target=self.slate_path, name="copy-slate", daemon=True).start()
        return run

    def slate_path(self):
        if self.slate is None:
            self.slate = slate_clip(self.plan)
        return self.slate

    def open(self, segment, frames):
        if segment.source:
            source, in_point = segment.source, segment.in_point
            has_audio = self.copies_audio or self.has_audio(segment)
        else:
            source, in_point, has_audio = str(self.slate_path()), 0.0, True
        seconds = float(frames / self.fmt.fps)
        return Reader(self, argv.reader_argv(self.plan, source, in_point, seconds, has_audio))

    def units(self, reader, start, end, stopped):
        """The slot's packets, a unit from each PES that is due to the next: (its DTS in
        seconds, or None for what goes out at once; the frame index it begins, or None; the packets).
        Only a packet that starts a PES, carries an adaptation field or belongs to a PID not
        passed now is looked at one by one; runs of the others pass whole, untouched. What the
        next segment's splice carries on from (`carried`) is taken once a unit has been taken:
        a unit the pacer drops (a switch cuts in before it) is not counted as aired."""
        splice = Splice(self.fmt, start, end, *self.carried)
        unit, due, frame = bytearray(), None, None
        for chunk in reader.chunks(stopped):
            if chunk is None:
                if unit:
                    state = splice.carried()
                    yield due, frame, unit
                    self.carried = state
                    unit, due, frame = bytearray(), None, None
                yield None
                continue
            headers = bytearray(len(chunk) // PACKET * 3)  # bytes 1-3 of each packet
            headers[0::3], headers[1::3], headers[2::3] = chunk[1::PACKET], chunk[2::PACKET], chunk[3::PACKET]
            view, at = memoryview(chunk), 0
            while at < len(headers) and not splice.done:
                run = splice.plain.match(headers, at) if splice.plain else None
                if run:
                    unit += view[at // 3 * PACKET:run.end() // 3 * PACKET]
                    at = run.end()
                    continue
                packet = view[at // 3 * PACKET:at // 3 * PACKET + PACKET]
                at += 3
                state = splice.carried()  # all the units before this packet's
                verdict = splice.feed(packet)
                if verdict is None:
                    continue
                if verdict is not True:  # a PES due at its DTS: a new unit
                    if unit:
                        yield due, frame, unit
                        self.carried = state
                    unit, due, frame = bytearray(), (verdict - BASE) / CLOCK, splice.frame
                pid = ((packet[1] & 0x1F) << 8) | packet[2]
                if pid not in splice.marked:
                    splice.marked.add(pid)
                    unit += discontinuity(packet)
                unit += packet
            if splice.done:
                break
        if unit:
            state = splice.carried()
            yield due, frame, unit
            self.carried = state

    def ahead(self, before, unit):
        """A frame's PES over 64 KB (a keyframe at a few Mbit/s) carries no length: the output
        stage's demuxer knows it whole only when the next PES on its PID starts. After such a
        frame, the next one's first packet (after a counter-jump marker, at a splice) goes out at
        once, not a frame period later. (Not after others: a frame passed on early would wait in
        the output stage's interleaving for its audio.)"""
        at = first_pes_packet(before) if before else None
        if at is None or before[at + payload_offset(before[at:at + PACKET]) + 4:][:2] != b"\x00\x00":
            return 0
        at = first_pes_packet(unit)
        return 0 if at is None else at + PACKET

    def write(self, packets):
        self.buffer += packets
        if len(self.buffer) >= READ_SIZE:
            self.flush()

    def flush(self):
        if self.buffer:
            write_all(self.fd, self.buffer)
            self.buffer = bytearray()


def first_pes_packet(unit):
    """Where the first packet that starts a PES (of a unit's first two) begins, or None."""
    for at in range(0, min(len(unit), 2 * PACKET), PACKET):
        packet = unit[at:at + PACKET]
        o = payload_offset(packet)
        if packet[1] & 0x40 and packet[o:o + 3] == b"\x00\x00\x01":
            return at
    return None


def slate_clip(plan):
    """The copy channel's slate as a clip in its format, encoded once and cached by format and
    text under the data folder; its path."""
    fmt = plan.fmt
    text = plan.slate_text_file.read_text() if plan.slate_text_file.exists() else ""
    key = hashlib.sha1(f"{fmt.size}/{fmt.fps}/{text}".encode()).hexdigest()[:16]
    folder = settings.RETROVUE_DATA_DIR / "slates"
    path = folder / f"slate-{fmt.size}-{key}.mp4"
    with _slate_lock:
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}.mp4"
            done = subprocess.run(argv.slate_clip_argv(plan, partial, SLATE_CLIP_SECONDS),
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  preexec_fn=process.die_with_parent(niceness=5), timeout=120)
            if done.returncode != 0:
                partial.unlink(missing_ok=True)
                raise RuntimeError(f"slate clip not made: {done.stderr.strip()[-300:]}")
            partial.rename(path)
    return path
