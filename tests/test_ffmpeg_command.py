"""The engine's argv builders: lists, never a shell string, with the outputs the issue names."""
from pathlib import Path

import pytest

from channels_app.profiles import merged_sections
from channels_app.timeline import Segment
from channels_app.validation import validate_config
from streams_app.playout import argv
from streams_app.playout.plan import ChannelPlan, UnsafePath
from streams_app.progress import ProgressParser


def plan(quality="720p", channel_dir="/data/channels/4", **network):
    sections = validate_config(merged_sections(4, quality, {"network_settings": network} if network else {}))
    return ChannelPlan(number=4, name="News; rm -rf /", sections=sections, channel_dir=Path(channel_dir))


def test_transcode_output_stage_encodes_raw_input_and_tees_udp_and_hls():
    command = argv.encoder_argv(plan(), audio_fd=7)
    assert isinstance(command, list) and all(isinstance(a, str) for a in command)
    tee = command[-1]
    assert tee.startswith("[f=mpegts:onfail=ignore:pcr_period=20:max_delay=100000:pes_payload_size=0"
                          ":mpegts_service_id=4:mpegts_transport_stream_id=1:mpegts_original_network_id=1"
                          ":mpegts_flags=+initial_discontinuity+nit]udp://127.0.0.1:5004?pkt_size=1316&ttl=16|")
    assert "hls_time=2" in tee and tee.endswith("/data/channels/4/hls/index.m3u8")
    assert command[command.index("-c:v") + 1] == "libx264"
    assert command[command.index("-g") + 1] == "60"  # a keyframe every 2 s segment
    assert "pipe:7" in command and command[command.index("-f") + 1] == "rawvideo"
    assert "service_name=News; rm -rf /" in command  # one argv element, never interpreted
    assert "service_provider=RetroVue" in command and "-crf" in command and "muxrate" not in tee


def test_cbr_encodes_at_a_constant_rate_into_a_constant_mux_rate():
    network = {"multicast_address": "127.0.0.1", "port": 5004, "mode": "cbr", "muxrate": "4000k",
               "service_id": 9, "provider_name": "A:B|C"}
    command = argv.encoder_argv(plan(**network), audio_fd=7)
    tee = command[-1]
    assert ":mpegts_service_id=9:" in tee and ":muxrate=4000000]udp://" in tee
    assert "service_provider=A:B|C" in command  # the name is an argv element, never a tee option
    assert "-crf" not in command
    assert [command[command.index(flag) + 1] for flag in ("-b:v", "-maxrate", "-bufsize")] == ["3000k"] * 3
    assert command[command.index("-x264-params") + 1] == "nal-hrd=cbr"


def test_copy_output_stage_passes_its_input_through():
    command = argv.passthrough_argv(plan("copy"))
    assert command[command.index("-c") + 1] == "copy" and "libx264" not in command


def test_one_slate_for_both_modes_with_literal_text():
    slate = Segment(None, None, "slate", None, 0.0)
    decoder = argv.decoder_argv(plan(), slate, frames=30, samples=48000, audio_fd=5)
    clip = argv.slate_clip_argv(plan("copy"), "/data/slate.mp4", 11)
    for command in (decoder, clip):
        graph = command[command.index("lavfi") + 2]
        assert graph.startswith("smptebars=size=") and "drawtext=textfile=" in graph
        assert ":expansion=none:" in graph  # %{...} in a channel's name is drawn, never run
        assert any(a.startswith("sine=frequency=1000:sample_rate=48000") for a in command)


def test_sources_are_opened_with_a_protocol_whitelist():
    program = Segment(None, None, "program", "/media/a.mp4", 12.5)
    for command in (argv.decoder_argv(plan(), program, 30, 48000, 5),
                    argv.reader_argv(plan("copy"), "/media/a.mp4", 12.5, 6.0)):
        assert command[command.index("-protocol_whitelist") + 1] == argv.SOURCE_PROTOCOLS
        assert command.index("-protocol_whitelist") < command.index("/media/a.mp4")
    assert "concat" not in argv.SOURCE_PROTOCOLS and "udp" not in argv.SOURCE_PROTOCOLS


def test_ipv6_destination_is_bracketed():
    command = argv.passthrough_argv(plan(multicast_address="ff15::1", port=1234))
    assert "udp://[ff15::1]:1234?" in command[-1]


def test_paths_that_would_break_filter_syntax_are_refused():
    with pytest.raises(UnsafePath):
        argv.encoder_argv(plan(channel_dir="/data/a:b,c"), audio_fd=5)


def test_progress_parser_returns_one_block_per_period():
    parser = ProgressParser()
    lines = ["frame=50", "fps=25.00", "bitrate=1234.5kbits/s", "out_time_us=2000000",
             "drop_frames=0", "dup_frames=1", "speed=1.01x"]
    assert all(parser.feed(line) is None for line in lines)
    block = parser.feed("progress=continue")
    assert block["frame"] == 50 and block["fps"] == 25.0 and block["bitrate_kbps"] == 1234.5
    assert block["out_time_s"] == 2.0 and block["speed"] == 1.01 and block["dup_frames"] == 1
    assert parser.feed("bitrate=N/A") is None and parser.feed("progress=end")["bitrate_kbps"] is None


HOSTILE_NAME = "%{e:st(0,0);while(lt(ld(0),1e9),st(0,ld(0)+1))} %{pts}"


def test_a_hostile_channel_name_on_the_slate_is_drawn_not_run(tmp_path):
    """The name that once spun FFmpeg at 92 % CPU and produced nothing: the slate is made at
    once and ffprobe reads it."""
    import subprocess
    import time

    hostile = ChannelPlan(number=4, name=HOSTILE_NAME, sections=plan("copy").sections, channel_dir=tmp_path)
    hostile.write_slate_text()
    out = tmp_path / "slate.mp4"
    started = time.monotonic()
    subprocess.run(argv.slate_clip_argv(hostile, out, 1), check=True, timeout=60, capture_output=True)
    assert time.monotonic() - started < 30
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                            "stream=nb_read_frames", "-of", "csv=p=0", str(out)], capture_output=True, text=True)
    assert int(probe.stdout.strip()) >= 25
