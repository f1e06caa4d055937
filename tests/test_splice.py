"""The copy mode's splicer a step at a time: real MPEG-TS made with lavfi fed through a fake
reader; every rewritten packet is read back with the module's own field readers and with ffprobe."""
import subprocess
import threading
from fractions import Fraction

import pytest

from streams_app.playout.argv import READER_MUX
from streams_app.playout.copy import CopyMode
from streams_app.playout.plan import Format
from streams_app.playout.splice import BASE, CLOCK, PACKET, payload_offset, read_ts

FPS = 25


@pytest.fixture(scope="module")
def source_ts(tmp_path_factory):
    """2 s of H.264 (B-frames off, a keyframe a second) and AAC, muxed as a reader does."""
    path = tmp_path_factory.mktemp("splice") / "source.ts"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={FPS}",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-g", str(FPS),
                    "-c:a", "aac", *READER_MUX, "-f", "mpegts", str(path)],
                   check=True)
    return path.read_bytes()


class FakeReader:
    """Hands the file over in odd-sized pieces of whole packets, waiting between them."""

    def __init__(self, data, piece=PACKET * 37):
        self.data, self.piece = data, piece

    def chunks(self, stopped):
        for offset in range(0, len(self.data), self.piece):
            yield None
            yield bytearray(self.data[offset:offset + self.piece])


def copy_mode():
    mode = CopyMode.__new__(CopyMode)  # no output stage: the units are the result
    mode.fmt, mode.carried = Format(160, 120, Fraction(FPS)), (None, None)
    return mode


def pes_times(packets, stream_ids):
    """The DTS (or PTS where there is no DTS) of each PES whose stream id is in `stream_ids`."""
    found = []
    for offset in range(0, len(packets), PACKET):
        b = packets[offset:offset + PACKET]
        o = payload_offset(b)
        if b[1] & 0x40 and b[o:o + 3] == b"\x00\x00\x01" and b[o + 3] in stream_ids:
            found.append(read_ts(b, o + 14) if b[o + 7] >> 6 == 3 else read_ts(b, o + 9))
    return found


VIDEO, AUDIO = range(0xE0, 0xF0), range(0xC0, 0xE0)


def test_two_segments_are_spliced_onto_one_timeline(source_ts, tmp_path):
    mode, stopped = copy_mode(), threading.Event()
    first = [u for u in mode.units(FakeReader(source_ts), 0, 30, stopped) if u]
    second = [u for u in mode.units(FakeReader(source_ts), 30, 55, stopped) if u]
    frames = [u for u in first + second if u[1] is not None]
    assert len(frames) == 55  # exactly each slot's frames: 30 of the first, 25 of the second
    # each frame is due at its place on the channel's grid, whatever the source's timestamps
    assert [round(due * FPS) for due, _, _ in frames] == list(range(55))
    stream = b"".join(bytes(u[2]) for u in first + second)
    dts = pes_times(stream, VIDEO)
    assert dts == [BASE + k * CLOCK // FPS for k in range(55)]
    capture = tmp_path / "spliced.ts"
    capture.write_bytes(stream)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "packet=dts", "-of", "csv=p=0", str(capture)], capture_output=True, text=True)
    read = [int(line.strip(",")) for line in probe.stdout.split() if line.strip(",").isdigit()]
    assert len(read) == 55 and all(b - a == CLOCK // FPS for a, b in zip(read, read[1:]))
    # What the output stage does with it: passed through by FFmpeg, no packet taken as corrupt
    # (each PID's counter jump is marked) and every frame kept.
    passed = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "warning", "-f", "mpegts", "-i", str(capture),
                             "-map", "0", "-c", "copy", "-f", "mpegts", str(tmp_path / "passed.ts")],
                            capture_output=True, text=True)
    assert passed.returncode == 0 and "corrupt" not in passed.stderr, passed.stderr


@pytest.mark.parametrize("slots", [[(0, 30), (30, 55)], [(k * 50, k * 50 + 50) for k in range(12)]])
def test_audio_runs_on_across_splices_without_a_frame_lost_or_overlapping(source_ts, slots):
    """A loop point (or any boundary): each segment's audio follows the last frame aired,
    so the channel's audio timeline has no hole and no overlap, and over a dozen loops of a
    2 s clip (94 AAC frames for 2 s of pictures) it stays within half a frame of them."""
    mode, stopped = copy_mode(), threading.Event()
    stream = b"".join(bytes(u[2]) for start, end in slots
                      for u in mode.units(FakeReader(source_ts), start, end, stopped) if u)
    pts = pes_times(stream, AUDIO)
    frame = 1024 * CLOCK // 48000
    assert pts[0] == BASE and [b - a for a, b in zip(pts, pts[1:])] == [frame] * (len(pts) - 1)
    last_slot_end = BASE + slots[-1][1] * CLOCK // FPS
    assert abs(pts[-1] + frame - last_slot_end) <= frame / 2  # the audio ends with the pictures, give or take


def reader_ts(tmp_path, name, x264, seek=0.0):
    """What a copy reader gives for a 3 s source encoded with `x264` options, from `seek` s."""
    source = tmp_path / f"{name}.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={FPS}",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3",
                    "-c:v", "libx264", "-preset", "veryfast", "-g", str(FPS), *x264,
                    "-c:a", "aac", str(source)], check=True)
    out = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-ss", str(seek), "-i", str(source),
                          "-c", "copy", *READER_MUX, "-f", "mpegts", "pipe:1"], capture_output=True, check=True)
    return out.stdout


def video_timestamps(path):
    """(pts, dts) of every video packet of a capture, as ffprobe reads them, in stream order."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts,dts",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    return [tuple(int(v) for v in line.split(",")[:2]) for line in out.split()]


def splice_slots(sources, slots, tmp_path):
    """Splice [(source, start, end)] as the pacer would; checks each slot's frames; the capture."""
    mode, stopped = copy_mode(), threading.Event()
    units = []
    for name, start, end in slots:
        mine = [u for u in mode.units(FakeReader(sources[name]), start, end, stopped) if u]
        shown = sorted(u[1] for u in mine if u[1] is not None)
        assert shown and start <= shown[0] < start + 4 and shown[-1] < end and len(set(shown)) == len(shown), \
            (name, shown)
        assert (end - start) - len(shown) <= CopyMode.held_frames
        units += mine
    capture = tmp_path / "spliced.ts"
    capture.write_bytes(b"".join(bytes(u[2]) for u in units))
    return capture


def test_b_frames_open_and_closed_gops_splice_with_dts_rising_and_each_pts_once(tmp_path):
    sources = {
        "closed": reader_ts(tmp_path, "closed", ["-bf", "3"]),
        # from a keyframe that is not an IDR: leading B-frames refer to the GOP before it
        "open": reader_ts(tmp_path, "open", ["-bf", "3", "-x264-params", "open-gop=1"], seek=1.0),
        "plain": reader_ts(tmp_path, "plain", ["-bf", "0"]),
    }
    # Slots end mid-GOP and change between sources with and without B-frames.
    closed = [("closed", 0, 30), ("plain", 30, 47), ("closed", 47, 70), ("closed", 70, 83), ("plain", 83, 100)]
    mixed = [("closed", 0, 30), ("open", 30, 47), ("plain", 47, 70), ("closed", 70, 83), ("open", 83, 100)]
    for slots in (closed, mixed):
        capture = splice_slots(sources, slots, tmp_path)
        stamps = video_timestamps(capture)
        dts = [d for _, d in stamps]
        pts = [p for p, _ in stamps]
        assert all(b > a for a, b in zip(dts, dts[1:])), "DTS not strictly increasing"
        assert len(set(pts)) == len(pts), "a PTS used twice"
        assert all(d <= p for p, d in stamps)
        passed = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "warning", "-y", "-i", str(capture),
                                 "-map", "0", "-c", "copy", "-f", "mpegts", str(tmp_path / "passed.ts")],
                                capture_output=True, text=True)
        assert passed.returncode == 0 and not passed.stderr.strip(), passed.stderr
    # Closed GOPs (libx264's default) decode without a complaint across every splice. An open
    # GOP entered at a keyframe that is not an IDR decodes with errors until its next IDR
    # (references the stream never had): stream copy cannot mend that.
    capture = splice_slots(sources, closed, tmp_path)
    decoded = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "warning", "-i", str(capture), "-map", "0:v",
                              "-f", "null", "-"], capture_output=True, text=True)
    assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr
