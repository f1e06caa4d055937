"""A channel programmed only by rules airs through the real engine as a hand-written schedule
does: the rule-built programs start on their planned times, with no gap at their boundaries
(colours on the UDP capture tell which airs when). Filler is rows of the same schedule, aired
the same way; that padding lands exactly on its boundaries is test_builder's (pad boundaries
are whole minutes of the wall clock, which a test of seconds cannot wait for)."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app import services
from channels_app.models import Program
from library_app import builder, collections
from streams_app import lifecycle

from .conftest import wait_status
from .helpers import UdpRecorder
from .test_playout import BOUNDARY_GAP, FPS, colour_clip, frame_colours, runs
from .tsanalysis import analyze, frame_arrivals
from .factories import make_channel

LEAD = timedelta(seconds=4)  # the rules take over this far ahead: the channel is up by then


@pytest.mark.django_db(transaction=True)
def test_a_rule_built_schedule_airs_its_programs_on_time(live_host, free_port, tmp_path, settings):
    """Episodes red, green and blue (4 s each), in order, again and again: the planned
    starts are the aired ones, to the tolerance of the hand-written schedules' tests."""
    settings.RETROVUE_PROGRAMMING_HOURS = 1  # 900 programs of seconds each, not 48 h of them
    episodes = [colour_clip("red-4s", "red", 4, 440), colour_clip("lime-4s", "lime", 4, 660),
                colour_clip("blue-4s", "blue", 4, 880)]
    collections.create_collection({"name": "episodes", "items": [episode.pk for episode in episodes]})
    channel = make_channel(44, port=free_port, quality="480p", stream_settings={"resolution": "320x240",
                                                                                "frame_rate": FPS},
                           quality_settings={"preset": "ultrafast"})
    begin = timezone.now() + LEAD
    builder.set_programming(channel, {"timezone": "UTC",
                                      "default": {"collection": "episodes", "order": "chronological"}},
                            now=begin)
    planned = list(Program.objects.filter(schedule=services.get_channel(44).current_schedule, start__gte=begin)
                   .order_by("start")[:5])
    assert [p.asset_id for p in planned] == [episode.pk for episode in episodes * 2][:5], planned
    mono_begin = time.monotonic() + (begin - timezone.now()).total_seconds()
    recorder = UdpRecorder(free_port)
    lifecycle.start_channel(services.get_channel(44))
    wait_status(44, "RUNNING", timeout=15)
    time.sleep(max(0.0, mono_begin + 12.5 - time.monotonic()))  # red, green, blue, red
    recorder.stop()
    capture = tmp_path / "rules.ts"
    capture.write_bytes(b"".join(recorder.datagrams))
    report = analyze(capture.read_bytes())
    assert report.cc_errors == 0 and report.pcr_jumps == 0 and report.pcr_backwards == 0
    sequence = runs(frame_colours(capture))
    colours = [colour for colour, _, _ in sequence]
    first = colours.index("red")
    assert colours[first:first + 4] == ["red", "green", "blue", "red"], sequence
    arrivals = frame_arrivals(recorder.datagrams, recorder.arrivals)
    for (colour, frames, index), program in zip(sequence[first:first + 3], planned):
        assert abs(frames - program.duration_s * FPS) <= 1, f"{colour} aired {frames} frames"
        on_air = mono_begin + (program.start - begin).total_seconds()
        assert abs(arrivals[index] - on_air) < 0.1, f"{colour} off its planned start by {arrivals[index] - on_air:.3f}s"
        gap = recorder.max_gap(on_air - 0.5, on_air + 0.5)
        assert gap <= BOUNDARY_GAP, f"{gap * 1000:.0f} ms without a datagram where {colour} began"
