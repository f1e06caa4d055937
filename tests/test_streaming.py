"""End to end through the real parts: API -> Celery (Redis) -> worker -> FFmpeg -> UDP/HLS,
with every output read back by ffprobe, and no FFmpeg left behind."""
import os
import signal
import statistics
import subprocess
import threading
import time

import pytest
from django.conf import settings

from channels_app.models import Channel
from resources_app.models import ResourceAllocation
from streams_app import lifecycle
from streams_app.hls import hls_dir
from streams_app.models import Alert, Stream

from .conftest import MEDIA, make_clip, wait_status
from .factories import channel_payload, loopback
from .helpers import UdpRecorder, capture, codecs, ffmpeg_processes, ffprobe, udp_socket, wait_for
from .tsanalysis import adts_frames, analyze

TEMPLATE = {
    "name": "Channel 1", "number": 1, "description": "Primary entertainment channel",
    "stream_settings": {"video_codec": "h264", "audio_codec": "aac", "bitrate": "5000k",
                        "resolution": "1920x1080", "frame_rate": 30},
    "quality_settings": {"preset": "medium", "crf": 23, "max_bitrate": "6000k", "buffer_size": "12000k"},
    "network_settings": {"multicast_address": "239.0.0.1", "port": 1234, "protocol": "udp"},
    "resource_limits": {"max_cpu_percent": 25, "max_memory_mb": 2048, "max_bandwidth_mbps": 10},
}


def our_ffmpeg():
    return ffmpeg_processes(str(settings.RETROVUE_DATA_DIR))


@pytest.mark.django_db(transaction=True)
def test_create_start_capture_stop_via_api(api, live_host, media, free_port, tmp_path):
    body = channel_payload(11, port=free_port, quality="copy", playlist=[str(media["clip"])])
    created = api.post("/api/channels", body, format="json")
    assert created.status_code == 201, created.data
    sock = udp_socket(free_port)
    started = api.post("/api/channels/11/start")
    assert started.status_code == 202 and started.data["status"] == "STARTING"
    cap = capture(sock, 3, tmp_path / "copy.ts")
    assert codecs(cap) == ["aac", "h264"]
    detail = api.get(f"/api/channels/{created.data['id']}").data
    assert detail["status"] == "RUNNING" and detail["host"] == live_host.host
    assert detail["config"]["stream_settings"]["video_codec"] == "copy"
    assert api.get("/api/streams/11/health").data["verdict"] in ("HEALTHY", "DEGRADED")
    wait_for(lambda: api.get("/api/streams/11/metrics").data["metrics"].get("frame"), what="progress")
    assert api.post("/api/channels/11/stop").status_code == 202
    wait_status(11, "STOPPED")
    wait_for(lambda: not our_ffmpeg(), timeout=5, what="FFmpeg gone")
    run = Stream.objects.get(channel__number=11)
    assert run.status == "STOPPED" and run.ended_at


@pytest.mark.django_db(transaction=True)
def test_product_template_streams_h264_aac_at_its_resolution(api, live_host, media, free_port, tmp_path):
    """The product template verbatim, but for a loopback destination (tests never multicast)."""
    body = {**TEMPLATE, "network_settings": loopback(free_port), "playlist": [str(media["clip"])]}
    assert api.post("/api/channels", body, format="json").status_code == 201
    sock = udp_socket(free_port)
    api.post("/api/channels/1/start")
    cap = capture(sock, 4, tmp_path / "template.ts")
    streams = {s["codec_type"]: s for s in ffprobe(cap)["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (1920, 1080)


@pytest.mark.django_db(transaction=True)
def test_empty_playlist_plays_a_slate_over_udp_and_hls(api, live_host, free_port, tmp_path, client):
    body = channel_payload(12, port=free_port, quality="480p")
    assert api.post("/api/channels", body, format="json").status_code == 201
    sock = udp_socket(free_port)
    api.post("/api/channels/12/start")
    cap = capture(sock, 3, tmp_path / "slate.ts")
    video = [s for s in ffprobe(cap)["streams"] if s["codec_type"] == "video"][0]
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 854, 480)
    playlist = wait_for(lambda: (r := client.get("/hls/12/index.m3u8")).status_code == 200 and r,
                        timeout=10, what="HLS playlist")
    text = playlist.content.decode()
    segment = [line for line in text.splitlines() if line.endswith(".ts")][0]
    seg = client.get(f"/hls/12/{segment}")
    assert seg.status_code == 200 and seg["Content-Type"] == "video/mp2t"
    (tmp_path / "seg.ts").write_bytes(b"".join(seg.streaming_content))
    assert codecs(tmp_path / "seg.ts") == ["aac", "h264"]
    assert client.get("/hls/12/../../etc.m3u8").status_code == 404
    # FFmpeg reports no bitrate for a tee output: the supervisor measures it on the HLS window.
    reported = wait_for(lambda: api.get("/api/streams/12/metrics").data["metrics"].get("bitrate_kbps"),
                        timeout=10, what="output bitrate")
    probed = int(ffprobe(tmp_path / "seg.ts", "-show_format")["format"]["bit_rate"]) / 1000
    assert probed / 3 < reported < probed * 3, (reported, probed)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("quality", ["copy", "480p"])
def test_a_missing_file_airs_the_slate_and_an_alert_names_it(quality, api, live_host, media, free_port, tmp_path):
    from streams_app.models import Alert

    doomed = media["clip"].parent / f"doomed-{quality}.mp4"
    doomed.write_bytes(media["clip"].read_bytes())
    body = channel_payload(13, port=free_port, quality=quality, playlist=[str(doomed)])
    assert api.post("/api/channels", body, format="json").status_code == 201
    doomed.unlink()
    sock = udp_socket(free_port)
    api.post("/api/channels/13/start")
    channel = wait_status(13, "RUNNING", timeout=20)
    cap = capture(sock, 3, tmp_path / "slate.ts")
    assert codecs(cap) == ["aac", "h264"]  # the slate, never silence
    alert = wait_for(lambda: Alert.objects.filter(channel=channel, kind="SOURCE_FAILED").first(),
                     what="an alert naming the file")
    assert str(doomed) in alert.message and "No such file or directory" in alert.message


@pytest.mark.django_db(transaction=True)
def test_encoder_missing_from_this_ffmpeg_build_ends_in_error(api, live_host, free_port):
    body = channel_payload(14, port=free_port, quality="480p", stream_settings={"video_codec": "h264_nvenc"})
    assert api.post("/api/channels", body, format="json").status_code == 201
    api.post("/api/channels/14/start")
    channel = wait_status(14, "ERROR")
    assert "ffmpeg could not start" in channel.status_reason
    wait_for(lambda: not ResourceAllocation.objects.filter(channel=channel).exists(),
             what="the failed run's reservation released")
    assert api.get("/api/streams/14/health").data["verdict"] == "FAILED"


@pytest.mark.django_db(transaction=True)
def test_ffmpeg_crash_is_restarted_in_place(api, live_host, media, free_port, tmp_path):
    body = channel_payload(15, port=free_port, quality="copy", playlist=[str(media["clip"])])
    api.post("/api/channels", body, format="json")
    sock = udp_socket(free_port)
    api.post("/api/channels/15/start")
    wait_status(15, "RUNNING")
    first = Stream.objects.get(channel__number=15).pid
    sock.close()
    recorder = UdpRecorder(free_port)
    time.sleep(1)
    os.kill(first, signal.SIGKILL)
    run = wait_for(lambda: (s := Stream.objects.get(channel__number=15)).pid != first
                   and s.status == "RUNNING" and s, what="a new FFmpeg running")
    assert run.restart_count == 1
    time.sleep(2)
    recorder.stop()
    assert len(recorder.publishers()) == 2  # the killed output, then the new one
    capture = tmp_path / "across.ts"
    capture.write_bytes(b"".join(recorder.datagrams))
    assert codecs(capture) == ["aac", "h264"]
    # The new output flags each PID's first packet: its counters and time base start again,
    # announced, so a receiver counts no error.
    report = analyze(capture.read_bytes())
    assert (report.cc_errors, report.pcr_backwards, report.pcr_jumps, report.announced) == (0, 0, 0, 1), report
    assert len(our_ffmpeg()) == 1


@pytest.mark.django_db(transaction=True)
def test_restart_endpoint_replaces_ffmpeg_in_place(api, live_host, media, free_port):
    body = channel_payload(16, port=free_port, quality="copy", playlist=[str(media["clip"])])
    api.post("/api/channels", body, format="json")
    api.post("/api/channels/16/start")
    wait_status(16, "RUNNING")
    first = Stream.objects.get(channel__number=16).pid
    assert api.post("/api/streams/16/restart").status_code == 202
    wait_for(lambda: Stream.objects.get(channel__number=16).pid != first, what="restarted FFmpeg")
    assert Stream.objects.filter(channel__number=16).count() == 1  # same run, same host


@pytest.mark.django_db(transaction=True)
def test_stale_generation_fences_the_supervisor(api, live_host, media, free_port):
    body = channel_payload(17, port=free_port, quality="copy", playlist=[str(media["clip"])])
    api.post("/api/channels", body, format="json")
    api.post("/api/channels/17/start")
    wait_status(17, "RUNNING")
    Channel.objects.filter(number=17).update(generation=99)  # another host took the channel over
    wait_for(lambda: Stream.objects.get(channel__number=17).status == "STOPPED", what="fenced run")
    assert Stream.objects.get(channel__number=17).status_reason == "superseded"
    wait_for(lambda: not our_ffmpeg(), timeout=5, what="FFmpeg gone")


class DiskFiller:
    """Keeps the file system of `folder` full (takes back whatever is freed) until stopped."""

    def __init__(self, folder):
        self.path, self.running = folder / "filler", True
        self.thread = threading.Thread(target=self.fill, daemon=True)
        self.thread.start()

    def fill(self):
        with open(self.path, "ab", buffering=0) as sink:
            while self.running:
                try:
                    sink.write(b"\0" * 4096)
                except OSError:  # full: wait for the next segment the muxer rotates out
                    time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join()
        self.path.unlink()


def served_segments(client, number):
    """Every segment the channel's served playlist lists, as served: (name, bytes)."""
    playlist = client.get(f"/hls/{number}/index.m3u8")
    if playlist.status_code != 200:
        return []
    names = [line for line in playlist.content.decode().splitlines() if line.endswith(".ts")]
    got = [(name, client.get(f"/hls/{number}/{name}")) for name in names]
    return [(name, b"".join(r.streaming_content)) for name, r in got if r.status_code == 200]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(os.geteuid() != 0, reason="a disk that fills is a small tmpfs mounted for the test: needs root")
def test_a_full_disk_under_hls_is_detected_never_served_and_recovers(api, client, live_host, media, free_port,
                                                                     tmp_path):
    folder = hls_dir(17)
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], check=True)
    try:
        api.post("/api/channels", channel_payload(17, port=free_port, quality="copy", playlist=[str(media["clip"])]),
                 format="json")
        api.post("/api/channels/17/start")
        channel = wait_status(17, "RUNNING")
        wait_for(lambda: len(served_segments(client, 17)) >= 2, timeout=15, what="an HLS window")
        filler = DiskFiller(folder)
        try:
            alert = wait_for(lambda: Alert.objects.filter(channel=channel, kind="OUTPUT_FAILED", cleared_at=None).first(),
                             timeout=10, interval=0.2, what="an OUTPUT_FAILED alert")
            assert "HLS output failing" in alert.message
            health = api.get("/api/streams/17/health").data
            assert health["verdict"] == "DEGRADED" and any("HLS output failing" in r for r in health["reasons"])
            for _ in range(20):  # what players get meanwhile: whole segments or nothing
                for name, data in served_segments(client, 17):
                    assert data and len(data) % 188 == 0, f"{name} served with {len(data)} bytes"
                time.sleep(0.2)
        finally:
            filler.stop()
        wait_for(lambda: not Alert.objects.filter(channel=channel, kind="OUTPUT_FAILED", cleared_at=None).exists(),
                 timeout=15, interval=0.2, what="the alert cleared once the disk has room")
        # The leg may have been restarted to recover: its first beats may still read as starting.
        wait_for(lambda: api.get("/api/streams/17/health").data["verdict"] == "HEALTHY", timeout=10,
                 interval=0.5, what="the verdict HEALTHY again")
        (tmp_path / "newest.ts").write_bytes(served_segments(client, 17)[-1][1])
        assert codecs(tmp_path / "newest.ts") == ["aac", "h264"]
    finally:
        Channel.objects.filter(number=17).exists() and lifecycle.stop_channel(Channel.objects.get(number=17))
        wait_for(lambda: not our_ffmpeg(), timeout=15, what="the channel stopped")
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.mark.django_db(transaction=True)
def test_hls_goes_on_across_a_restart_and_a_crash(api, client, live_host, media, free_port):
    """RFC 8216 6.2.1-6.2.2 as a player sees it: the media sequence only grows, a name always means
    the same segment, a discontinuity (and its sequence) where timestamps start again, never an
    end tag while the channel runs; once stopped, the window says it has ended."""
    api.post("/api/channels", channel_payload(18, port=free_port, quality="copy", playlist=[str(media["clip"])]),
             format="json")
    api.post("/api/channels/18/start")
    wait_status(18, "RUNNING")
    wait_for(lambda: len(served_segments(client, 18)) >= 2, timeout=15, what="an HLS window")
    names, sequences, discontinuities = {}, [], []
    began, restarted, crashed = time.monotonic(), False, False
    while time.monotonic() - began < 11:
        text = client.get("/hls/18/index.m3u8").content.decode()
        assert "#EXT-X-ENDLIST" not in text, text
        lines = text.splitlines()
        sequence = int(next(line for line in lines if line.startswith("#EXT-X-MEDIA-SEQUENCE:")).split(":")[1])
        discontinuities.append(int(next(line for line in lines
                                        if line.startswith("#EXT-X-DISCONTINUITY-SEQUENCE:")).split(":")[1])
                               + sum(line == "#EXT-X-DISCONTINUITY" for line in lines))
        sequences.append(sequence)
        for offset, name in enumerate(line for line in lines if line.endswith(".ts")):
            assert names.setdefault(name, sequence + offset) == sequence + offset, f"{name} reused: {text}"
        if not restarted and time.monotonic() - began > 2.5:
            assert api.post("/api/streams/18/restart").status_code == 202
            restarted = True
        if not crashed and time.monotonic() - began > 6.5:
            os.kill(Stream.objects.get(channel__number=18).pid, signal.SIGKILL)
            crashed = True
        time.sleep(0.25)
    assert Stream.objects.get(channel__number=18).restart_count == 2
    assert sequences == sorted(sequences) and sequences[-1] > sequences[0]
    # Each output start adds a discontinuity, counted whether still listed or slid out.
    assert discontinuities == sorted(discontinuities) and discontinuities[-1] >= discontinuities[0] + 2
    lifecycle.stop_channel(Channel.objects.get(number=18))
    wait_status(18, "STOPPED")
    assert client.get("/hls/18/index.m3u8").content.decode().endswith("#EXT-X-ENDLIST\n")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("quality", ["copy", "480p"])
def test_pcr_every_40_ms_and_every_pes_before_its_decode_time(quality, api, client, live_host, media, free_port,
                                                              tmp_path):
    """TR 101 290 1.3a (PCR repetition) and the T-STD's first rule (a PES arrives before its
    decode time) on every output: a UDP capture, what an HTTP TS viewer receives, and each HLS
    segment as served."""
    api.post("/api/channels", channel_payload(19, port=free_port, quality=quality, playlist=[str(media["clip"])]),
             format="json")
    sock = udp_socket(free_port)
    api.post("/api/channels/19/start")
    wait_status(19, "RUNNING", timeout=20)
    outputs = {"udp": capture(sock, 3, tmp_path / "timing.ts").read_bytes(), "http ts": http_ts(client, 19, 3)}
    outputs.update((f"hls {name}", data) for name, data in served_segments(client, 19))
    assert len(outputs) >= 4 and all(outputs.values())
    for output, data in outputs.items():
        report = analyze(data)
        margins = report.delivery_margins()
        assert report.cc_errors == 0 and report.dts_order_faults() == 0, output
        assert report.longest_pcr_interval() <= 0.040 + 0.001, (output, report.longest_pcr_interval())
        assert margins and min(margins.values()) >= 0.010, (output, margins)


def http_ts(client, number, seconds):
    """What an HTTP TS viewer of the channel receives over `seconds`."""
    response = client.get(f"/iptv/channels/{number}.ts")
    assert response.status_code == 200
    received, end = [], time.monotonic() + seconds
    for chunk in response.streaming_content:
        received.append(chunk)
        if time.monotonic() > end:
            break
    response.close()
    return b"".join(received)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("quality", ["copy", "480p"])
def test_a_looping_playlist_loses_no_frame_at_its_loop_points(quality, api, live_host, free_port, tmp_path):
    """Across three loop points of a 2 s clip, every video frame is one frame period after the
    one before and every audio PES starts where the AAC frames of the one before end (the PES
    timestamps and ADTS headers of a capture): nothing lost, nothing overlapping, where the clip
    starts again."""
    clip = make_clip(MEDIA / "loop-2s.mp4", 2)
    small = {} if quality == "copy" else {"stream_settings": {"resolution": "320x180", "frame_rate": 25}}
    api.post("/api/channels", channel_payload(20, port=free_port, quality=quality, playlist=[str(clip)], **small),
             format="json")
    sock = udp_socket(free_port)
    api.post("/api/channels/20/start")
    wait_status(20, "RUNNING", timeout=20)
    capture_bytes = capture(sock, 7, tmp_path / "loop.ts").read_bytes()
    report = analyze(capture_bytes)
    assert report.cc_errors == 0 and report.announced == 0
    times = {}
    for _, pid, dts in report.pes_starts:
        times.setdefault(pid, []).append(dts)
    steps = {pid: [b - a for a, b in zip(found, found[1:])] for pid, found in times.items()}
    video, audio = sorted(steps, key=lambda pid: -statistics.median(steps[pid]))
    assert len(times[video]) >= 6 * 25
    assert all(abs(step - 1 / 25) < 0.0005 for step in steps[video]), steps[video]
    # From the first loop point on (the capture opens with the output stage's own start, which is
    # not what this test is about: a frame missing there is in the closing note of 2026-11-27).
    frames = [(dts, count) for dts, count in adts_frames(capture_bytes, audio) if dts >= times[audio][0] + 1.5]
    late = [(round(dts, 4), count, round((after - dts) * 1000, 1)) for (dts, count), (after, _) in zip(frames, frames[1:])
            if abs(after - dts - count * 1024 / 48000) >= 0.0005]
    assert sum(count for _, count in frames) >= 5 * 46 and all(count for _, count in frames)
    assert not late, late
