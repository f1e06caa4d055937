"""On-demand channels through the real worker: no FFmpeg until a viewer tunes its TS or HLS URL,
the tune starts it, the viewer gets its bytes, and beat stops it once nobody watches. Viewer
sessions count the tunes."""
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from channels_app.models import Channel, ViewerSession
from streams_app import tuning

from .conftest import wait_status
from .factories import make_channel
from .helpers import codecs, ffmpeg_processes, wait_for


def channel_ffmpeg(number):
    return ffmpeg_processes(settings.RETROVUE_DATA_DIR / "channels" / str(number))


def first_bytes(response, seconds):
    """(seconds to the first chunk, whole TS packets read for `seconds` after it)."""
    began, chunks = time.monotonic(), []
    stream = iter(response.streaming_content)
    chunks.append(next(stream))
    first = time.monotonic() - began
    while time.monotonic() - began < first + seconds:
        chunks.append(next(stream))
    body = b"".join(chunks)
    return first, body[:len(body) - len(body) % 188]


@pytest.mark.django_db(transaction=True)
def test_a_tune_starts_an_on_demand_channel_and_beat_stops_it_when_nobody_watches(
        live_host, media, free_port, client, tmp_path):
    channel = make_channel(71, quality="copy", playlist=[str(media["clip"])], on_demand=True, port=free_port)
    lineup = client.get("/lineup.json").json()
    assert [entry["GuideNumber"] for entry in lineup] == ["71"], "tunable while stopped"
    assert channel_ffmpeg(71) == []

    response = client.get("/iptv/channels/71.ts", REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 200
    waited, body = first_bytes(response, 2)
    print(f"tune to first byte: {waited * 1000:.0f} ms")
    assert waited < 3 and body[0] == 0x47 and body[188] == 0x47
    capture = tmp_path / "tuned.ts"
    capture.write_bytes(body)
    assert codecs(capture) == ["aac", "h264"]
    assert Channel.objects.get(pk=channel.pk).status == "RUNNING" and len(channel_ffmpeg(71)) == 1
    session = ViewerSession.objects.get(channel=channel)
    assert (session.kind, session.client, session.ended_at) == ("ts", "192.0.2.10", None)
    response.close()  # the viewer hangs up
    assert ViewerSession.objects.get(pk=session.pk).ended_at is not None

    # Watched a moment ago: beat leaves it; nobody for the idle time: beat stops it.
    assert tuning.stop_idle_on_demand() == []
    later = timezone.now() + timedelta(seconds=settings.RETROVUE_ON_DEMAND_IDLE_SECONDS + 1)
    assert tuning.stop_idle_on_demand(now=later) == [71]
    wait_status(71, "STOPPED")
    wait_for(lambda: channel_ffmpeg(71) == [], what="no FFmpeg once stopped")

    # HLS tunes too: the playlist request starts it and answers with its first window.
    playlist = client.get("/hls/71/index.m3u8", HTTP_USER_AGENT="ExoPlayer")
    assert playlist.status_code == 200 and "#EXTINF" in playlist.content.decode()
    assert ViewerSession.objects.filter(channel=channel, kind="hls", client__endswith="ExoPlayer").count() == 1
    assert tuning.viewer_figures(timezone.now() - timedelta(days=1))[channel.pk].tune_ins == 2
    assert tuning.stop_idle_on_demand(now=later + timedelta(minutes=2)) == [71]
    wait_status(71, "STOPPED")
    wait_for(lambda: channel_ffmpeg(71) == [], what="no FFmpeg once stopped")


@pytest.mark.django_db(transaction=True)
def test_a_stopped_channel_that_is_not_on_demand_is_not_started_by_a_viewer(client):
    make_channel(72, port=5072)
    assert client.get("/iptv/channels/72.ts").status_code == 503
    assert Channel.objects.get(number=72).desired_state == "STOPPED"
    assert not ViewerSession.objects.exists()
    assert client.get("/lineup.json").json() == []


@pytest.mark.django_db(transaction=True)
def test_on_demand_is_set_through_the_api_and_the_cli_and_refuses_what_is_not_a_boolean(api):
    from .factories import channel_payload
    from .test_cli import retrovue

    refused = api.post("/api/channels", channel_payload(74, port=5074, on_demand="yes"), format="json")
    assert refused.status_code == 400 and list(refused.json()) == ["on_demand"]
    assert not Channel.objects.filter(number=74).exists()
    created = api.post("/api/channels", channel_payload(74, port=5074, on_demand=True), format="json")
    assert created.status_code == 201 and created.json()["on_demand"] is True
    changed = api.put("/api/channels/74/config", {"on_demand": False}, format="json").json()
    assert changed["on_demand"] is False
    done = retrovue("channel", "create", "Channel 75", "--number", "75", "--on-demand",
                    "--output", "udp://127.0.0.1:5075")
    assert done.returncode == 0, done.stderr
    assert Channel.objects.get(number=75).on_demand
    done = retrovue("channel", "configure", "75", "--on-demand", "off")
    assert done.returncode == 0 and not Channel.objects.get(number=75).on_demand
