"""The three everyday operations on every kind of channel, through the one engine, with real
parts: a switch, a live change of what the channel airs, and a restart that applies a changed
configuration. Programs are solid colours, so the UDP capture tells what aired (signalstats)."""
import time

import pytest
from django.utils import timezone

from channels_app import services
from channels_app.models import Channel
from channels_app.schedules import switch_channel
from streams_app import lifecycle
from streams_app.models import Stream

from .conftest import MEDIA, make_clip, wait_status
from .factories import make_channel
from .helpers import UdpRecorder, ffprobe, wait_for
from .test_playout import FPS, colour_clip, frame_colours, runs
from .tsanalysis import analyze, frame_arrivals

MODES = {"transcode": "480p", "copy": "copy"}


def playlist_channel(port, number, playlist, mode):
    fast = {"quality_settings": {"preset": "ultrafast"}} if mode == "transcode" else {}
    return make_channel(number, port=port, quality=MODES[mode], playlist=[asset.source for asset in playlist],
                        stream_settings={"resolution": "320x240", "frame_rate": FPS}, **fast)


def airing_red(api, port, number, mode):
    """A running playlist channel of red, recorded from its start: (blue, recorder, its run's pid)."""
    red, blue = colour_clip("red", "red", 6, 440), colour_clip("blue", "blue", 6, 880)
    playlist_channel(port, number, [red], mode)
    recorder = UdpRecorder(port)
    api.post(f"/api/channels/{number}/start")
    wait_status(number, "RUNNING", timeout=20)
    return blue, recorder, Stream.objects.get(channel__number=number).pid


def record(recorder, seconds, tmp_path, name):
    time.sleep(seconds)
    recorder.stop()
    capture = tmp_path / f"{name}.ts"
    capture.write_bytes(b"".join(recorder.datagrams))
    report = analyze(capture.read_bytes())
    assert report.cc_errors == 0 and report.pcr_backwards == 0 and report.pcr_jumps == 0
    return capture


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["playlist", "slate"])
def test_a_switch_airs_within_a_second_on_playlist_and_slate_channels(kind, mode, live_host, free_port, tmp_path):
    red, blue = colour_clip("red", "red", 6, 440), colour_clip("blue", "blue", 6, 880)
    number = {"playlist": 61, "slate": 62}[kind] * 10 + list(MODES).index(mode)
    channel = playlist_channel(free_port, number, [red] if kind == "playlist" else [], mode)
    recorder = UdpRecorder(free_port)
    lifecycle.start_channel(channel)
    wait_status(number, "RUNNING", timeout=20)
    time.sleep(1)
    asked = time.monotonic()
    switch_channel(services.get_channel(number), blue.pk)
    capture = record(recorder, 3, tmp_path, "switch")
    sequence = runs(frame_colours(capture))
    colours = [colour for colour, _, _ in sequence]
    assert "blue" in colours, sequence
    before = "red" if kind == "playlist" else "other"  # the slate is colour bars
    assert colours[colours.index("blue") - 1] == before, sequence
    blue_at = frame_arrivals(recorder.datagrams, recorder.arrivals)[sequence[colours.index("blue")][2]]
    assert blue_at - asked < 1.0, f"the switch took {blue_at - asked:.2f}s"
    assert Stream.objects.get(channel_id=channel.pk).restart_count == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", MODES)
def test_a_new_playlist_airs_from_the_next_segment_without_a_restart(mode, api, live_host, free_port, tmp_path):
    number = 630 + list(MODES).index(mode)
    blue, recorder, pid = airing_red(api, free_port, number, mode)
    changed = api.put(f"/api/channels/{number}/config", {"playlist": [blue.source]}, format="json")
    assert changed.status_code == 200, changed.data
    assert changed.data["restart_required"] is False and changed.data["applied_live"] == ["playlist"]
    # The first boundary the engine has not prepared yet: at most a pre-roll plus a red loop away.
    boundary = Channel.objects.get(number=number).playlist_started_at
    assert 2.0 < (boundary - timezone.now()).total_seconds() <= 6 + 3
    capture = record(recorder, (boundary - timezone.now()).total_seconds() + 3, tmp_path, "playlist")
    sequence = runs(frame_colours(capture))
    colours = [colour for colour, _, _ in sequence]
    assert colours[-1] == "blue" and colours[-2] == "red", sequence  # red ends its segment, then blue
    assert sequence[-1][1] >= 2 * FPS  # blue from its boundary on
    run = Stream.objects.get(channel__number=number)
    assert (run.pid, run.restart_count) == (pid, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["playlist", "slate"])
def test_a_restart_applies_the_configuration_as_it_is_now(kind, api, live_host, free_port, tmp_path):
    red = colour_clip("red", "red", 6, 440)
    number = 640 + ["playlist", "slate"].index(kind)
    playlist_channel(free_port, number, [red] if kind == "playlist" else [], "transcode")
    api.post(f"/api/channels/{number}/start")
    wait_status(number, "RUNNING", timeout=20)
    changed = api.put(f"/api/channels/{number}/config", {"stream_settings": {"resolution": "160x120"}},
                      format="json")
    assert changed.data["restart_required"] is True and changed.data["restart_for"] == ["stream_settings"]
    recorder = UdpRecorder(free_port)
    assert api.post(f"/api/streams/{number}/restart").status_code == 202
    wait_for(lambda: Stream.objects.get(channel__number=number).restart_count == 1, what="the restart")
    wait_status(number, "RUNNING", timeout=20)
    time.sleep(1.0)  # what the old run still sent has arrived by now
    recorder.datagrams.clear()
    recorder.arrivals.clear()
    capture = tmp_path / "restarted.ts"
    time.sleep(2)
    recorder.stop()
    capture.write_bytes(b"".join(recorder.datagrams))
    video = [s for s in ffprobe(capture)["streams"] if s["codec_type"] == "video"][0]
    assert (video["width"], video["height"]) == (160, 120)
    assert Stream.objects.filter(channel__number=number).count() == 1  # the same run, restarted in place


@pytest.mark.django_db(transaction=True)
def test_a_copy_playlist_airs_in_its_sources_format_across_loop_points(live_host, media, free_port, tmp_path):
    """No format in the config: the frame grid is the files' own (25 fps), so timestamps run on
    across each loop point of a 2 s file, read packet by packet from an independent capture."""
    clip = make_clip(MEDIA / "loop-25fps.mp4", 2)
    channel = make_channel(650, port=free_port, quality="copy", playlist=[str(clip)])
    recorder = UdpRecorder(free_port)
    lifecycle.start_channel(channel)
    wait_status(650, "RUNNING", timeout=20)
    capture = record(recorder, 5, tmp_path, "loop")
    packets = ffprobe(capture, "-select_streams", "v:0", "-show_entries", "packet=dts")["packets"]
    dts = [int(p["dts"]) for p in packets if "dts" in p]
    assert len(dts) > 75 and all(b > a for a, b in zip(dts, dts[1:])), "video DTS not increasing"
    steps = {b - a for a, b in zip(dts, dts[1:])}
    assert steps == {90000 // 25}, f"DTS steps {sorted(steps)[:5]}: not one 25 fps frame each"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", MODES)
def test_a_schedule_put_on_a_running_playlist_channel_airs_from_its_next_segment(mode, api, live_host, free_port,
                                                                                 tmp_path):
    number = 660 + list(MODES).index(mode)
    blue, recorder, pid = airing_red(api, free_port, number, mode)
    put = api.put(f"/api/channels/{number}/schedule", {"loop": True, "programs": [{"asset": blue.pk}]},
                  format="json")
    assert put.status_code == 200, put.data
    capture = record(recorder, 6 + 3, tmp_path, "schedule")  # red ends within 6 s, then blue
    colours = [colour for colour, _, _ in runs(frame_colours(capture))]
    # blue (joined where the schedule's clock is) right after red's segment, then the slate
    assert "blue" in colours and colours[colours.index("blue") - 1] == "red", colours
    run = Stream.objects.get(channel__number=number)
    assert (run.pid, run.restart_count) == (pid, 0)
