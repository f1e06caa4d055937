"""The command builder's argv: a list, never a shell string, with the outputs the issue names."""
from pathlib import Path

import pytest

from channels_app.profiles import merged_sections
from channels_app.validation import validate_config
from streams_app import ffmpeg
from streams_app.progress import ProgressParser


def plan(quality="720p", playlist=(), **network):
    sections = validate_config(merged_sections(4, quality, {"network_settings": network} if network else {}))
    return ffmpeg.ChannelPlan(number=4, name="News; rm -rf /", playlist=tuple(playlist),
                              sections=sections, channel_dir=Path("/data/channels/4"))


def test_transcode_argv_tees_udp_and_hls():
    argv = ffmpeg.build_command(plan())
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    tee = argv[-1]
    assert tee.startswith("[f=mpegts:onfail=ignore:pcr_period=40]udp://127.0.0.1:5004?pkt_size=1316&ttl=16|")
    assert "hls_time=2" in tee and tee.endswith("/data/channels/4/hls/index.m3u8")
    assert argv[argv.index("-c:v") + 1] == "libx264"
    assert argv[argv.index("-g") + 1] == "60"  # a keyframe every 2 s segment
    assert "service_name=News; rm -rf /" in argv  # one argv element, never interpreted


def test_slate_when_playlist_is_empty():
    argv = ffmpeg.build_command(plan("copy"))
    graph = argv[argv.index("lavfi") + 2]
    assert graph.startswith("smptebars=size=1280x720") and "drawtext=textfile=" in graph
    assert "sine=frequency=1000:sample_rate=48000" in argv
    assert argv[argv.index("-c:v") + 1] == "libx264"  # a copy channel encodes its slate


def test_copy_mode_passes_media_through():
    argv = ffmpeg.build_command(plan("copy", playlist=["/media/a.mp4"]))
    assert argv[argv.index("-c:v") + 1] == "copy" and argv[argv.index("-c:a") + 1] == "copy"
    assert argv[argv.index("-stream_loop") + 1] == "-1"


def test_ipv6_destination_is_bracketed():
    argv = ffmpeg.build_command(plan(multicast_address="ff15::1", port=1234))
    assert "udp://[ff15::1]:1234?" in argv[-1]


def test_paths_that_would_break_filter_syntax_are_refused():
    bad = ffmpeg.ChannelPlan(number=1, name="x", playlist=(), sections=plan().sections,
                             channel_dir=Path("/data/a:b,c"))
    with pytest.raises(ffmpeg.UnsafePath):
        ffmpeg.build_command(bad)


def test_concat_list_escapes_quotes():
    assert ffmpeg.concat_list(["/m/it's.mp4"]) == "ffconcat version 1.0\nfile '/m/it'\\''s.mp4'\n"


def test_progress_parser_returns_one_block_per_period():
    parser = ProgressParser()
    lines = ["frame=50", "fps=25.00", "bitrate=1234.5kbits/s", "out_time_us=2000000",
             "drop_frames=0", "dup_frames=1", "speed=1.01x"]
    assert all(parser.feed(line) is None for line in lines)
    block = parser.feed("progress=continue")
    assert block["frame"] == 50 and block["fps"] == 25.0 and block["bitrate_kbps"] == 1234.5
    assert block["out_time_s"] == 2.0 and block["speed"] == 1.01 and block["dup_frames"] == 1
    assert parser.feed("bitrate=N/A") is None and parser.feed("progress=end")["bitrate_kbps"] is None
