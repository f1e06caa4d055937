"""The copy mode's splicer a step at a time: real MPEG-TS made with lavfi fed through a fake
reader; every rewritten packet is read back with the module's own field readers and with ffprobe."""
import subprocess
import threading
from fractions import Fraction

import pytest

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
                    "-c:a", "aac", "-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts", str(path)],
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
    mode.fmt, mode.last_audio_pts = Format(160, 120, Fraction(FPS)), None
    return mode


def video_dts(packets):
    found = []
    for offset in range(0, len(packets), PACKET):
        b = packets[offset:offset + PACKET]
        o = payload_offset(b)
        if b[1] & 0x40 and b[o:o + 3] == b"\x00\x00\x01" and 0xE0 <= b[o + 3] <= 0xEF:
            found.append(read_ts(b, o + 14) if b[o + 7] >> 6 == 3 else read_ts(b, o + 9))
    return found


def test_two_segments_are_spliced_onto_one_timeline(source_ts, tmp_path):
    mode, stopped = copy_mode(), threading.Event()
    first = [u for u in mode.units(FakeReader(source_ts), 0, 30, stopped) if u]
    second = [u for u in mode.units(FakeReader(source_ts), 30, 55, stopped) if u]
    frames = [u for u in first + second if u[1]]
    assert len(frames) == 55  # exactly each slot's frames: 30 of the first, 25 of the second
    # each frame is due at its place on the channel's grid, whatever the source's timestamps
    assert [round(due * FPS) for due, _, _ in frames] == list(range(55))
    stream = b"".join(bytes(u[2]) for u in first + second)
    dts = video_dts(stream)
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


def test_audio_never_steps_back_across_a_splice(source_ts):
    mode, stopped = copy_mode(), threading.Event()
    list(mode.units(FakeReader(source_ts), 0, 30, stopped))
    after_first = mode.last_audio_pts
    list(mode.units(FakeReader(source_ts), 30, 55, stopped))
    assert after_first is not None and mode.last_audio_pts > after_first
