"""The IPTV client surface read back by independent parsers: a strict M3U reader, lxml against
the real XMLTV DTD, JSON for the HDHomeRun endpoints, and ffprobe plus the independent TS
reader (continuity counters, PCR) on what two concurrent HTTP viewers of one channel receive."""
import re
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from lxml import etree

from channels_app.models import Channel, MediaAsset, Program, Schedule, TransitionRule
from channels_app.validation import AUDIO_CODECS, VIDEO_CODECS
from streams_app import hls, iptv, lifecycle
from streams_app.models import TunerDevice, new_device_id
from streams_app.viewers import HlsFollower, follow_hls

from .conftest import wait_status
from .factories import make_channel
from .helpers import codecs, ffmpeg_processes, ffprobe
from .tsanalysis import analyze

DTD = Path(__file__).parent / "data" / "xmltv.dtd"
ATTRIBUTE = re.compile(r'\s+([a-z-]+)="([^"]*)"')
EXTINF = re.compile(r'#EXTINF:(-?\d+)((?:\s+[a-z-]+="[^"]*")*),(.+)')
ENDPOINTS = ["/iptv/channels.m3u", "/iptv/xmltv.xml", "/iptv/channels/1.ts", "/discover.json",
             "/lineup.json", "/lineup_status.json", "/device.xml"]


def attributes(text):
    assert ATTRIBUTE.sub("", text) == "", f"not key=\"value\" pairs: {text!r}"
    return dict(ATTRIBUTE.findall(text))


def parse_m3u(text):
    """A strict extended-M3U reader: an #EXTM3U header, then #EXTINF + URL pairs, nothing else."""
    lines = text.splitlines()
    assert text.endswith("\n") and lines[0].startswith("#EXTM3U")
    header, body = attributes(lines[0][len("#EXTM3U"):]), lines[1:]
    assert len(body) % 2 == 0, "every #EXTINF needs its URL"
    entries = []
    for info, url in zip(body[::2], body[1::2]):
        match = EXTINF.fullmatch(info)
        assert match, f"bad #EXTINF line {info!r}"
        assert re.fullmatch(r"https?://\S+", url), f"bad URL line {url!r}"
        entries.append({"duration": int(match[1]), **attributes(match[2]), "name": match[3], "url": url})
    return header, entries


@pytest.mark.django_db
def test_m3u_lists_every_channel_with_guide_ids_and_absolute_stream_urls(client):
    make_channel(2, name="Two")
    make_channel(1, name='One, "the first"')
    response = client.get("/iptv/channels.m3u")
    assert response.status_code == 200 and response["Content-Type"].startswith("audio/x-mpegurl")
    header, entries = parse_m3u(response.content.decode())
    guide_url = "http://testserver/iptv/xmltv.xml"
    assert header == {"url-tvg": guide_url, "x-tvg-url": guide_url}
    assert entries == [
        {"duration": -1, "tvg-id": "retrovue.1", "tvg-name": "One, 'the first'", "tvg-chno": "1",
         "group-title": "RetroVue", "name": 'One\u201a "the first"',  # whole after the last comma
         "url": "http://testserver/iptv/channels/1.ts"},
        {"duration": -1, "tvg-id": "retrovue.2", "tvg-name": "Two", "tvg-chno": "2",
         "group-title": "RetroVue", "name": "Two", "url": "http://testserver/iptv/channels/2.ts"},
    ]
    guide = etree.fromstring(client.get(header["url-tvg"]).content)
    assert [c.get("id") for c in guide.iter("channel")] == [e["tvg-id"] for e in entries]


def xmltv_time(moment):
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S +0000")


@pytest.mark.django_db
def test_xmltv_guide_is_valid_against_the_dtd_and_lists_what_airs(client):
    now = timezone.now()
    news = make_channel(1, name='News & "More" <24/7>')
    make_channel(2, name="Slate")
    show = MediaAsset.objects.create(source="/m/show.mp4", title="Show", duration_s=1800)
    untitled = MediaAsset.objects.create(source="/m/late.mp4", duration_s=600)
    filler = MediaAsset.objects.create(source="/m/filler.mp4", title="Intermission", duration_s=30)
    schedule = Schedule.objects.create(channel=news)
    Program.objects.create(schedule=schedule, position=0, asset=show, start=now - timedelta(minutes=10),
                           title="Tom & Jerry <Live>\x07", description='Cat "and" mouse')
    Program.objects.create(schedule=schedule, position=1, asset=untitled, start=now + timedelta(hours=2))
    TransitionRule.objects.create(schedule=schedule, fill=TransitionRule.Fill.FILLER, filler=filler)
    Channel.objects.filter(pk=news.pk).update(current_schedule=schedule)

    response = client.get("/iptv/xmltv.xml")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/xml")
    doc = etree.fromstring(response.content, etree.XMLParser(resolve_entities=False, no_network=True))
    dtd = etree.DTD(str(DTD))
    assert dtd.validate(doc), dtd.error_log.filter_from_errors()
    assert doc.get("generator-info-name") == "RetroVue"
    assert {c.get("id"): [d.text for d in c.iter("display-name")] for c in doc.iter("channel")} == {
        "retrovue.1": ['News & "More" <24/7>', "1"], "retrovue.2": ["Slate", "2"]}
    listing = [(p.get("channel"), p.findtext("title"), p.findtext("desc"), p.get("start"), p.get("stop"))
               for p in doc.iter("programme")]
    assert all(re.fullmatch(r"\d{14} \+0000", time) for entry in listing for time in entry[3:])
    # The current programme keeps its real start; the filler's 30 s loops show as one programme;
    # an untitled programme is shown under the channel's name; unscheduled channel 2 is one block.
    assert [entry[:4] for entry in listing[:-1]] == [
        ("retrovue.1", "Tom & Jerry <Live>", 'Cat "and" mouse', xmltv_time(now - timedelta(minutes=10))),
        ("retrovue.1", "Intermission", None, xmltv_time(now + timedelta(minutes=20))),
        ("retrovue.1", 'News & "More" <24/7>', None, xmltv_time(now + timedelta(hours=2))),
        ("retrovue.1", "Intermission", None, xmltv_time(now + timedelta(hours=2, minutes=10))),
    ]
    assert listing[-1][:3] == ("retrovue.2", "Slate", None)
    assert listing[-1][3] <= xmltv_time(now) and listing[-1][4] >= xmltv_time(now + timedelta(hours=24))
    assert all(a[4] == b[3] for a, b in zip(listing[:3], listing[1:4])), "back to back"


@pytest.mark.django_db
def test_hdhomerun_discover_lineup_and_status(client, settings):
    make_channel(1, name="One")
    make_channel(7, name="Seven", quality="480p")
    make_channel(9, name="Off")  # stopped for good: not on the lineup
    Channel.objects.filter(number=1).update(desired_state="RUNNING", status="STARTING")
    Channel.objects.filter(number=7).update(desired_state="STOPPED", status="RUNNING")  # airs until it stops
    discover = client.get("/discover.json").json()
    assert discover == {
        # Not an HDTC model: Jellyfin would ask a transcoding tuner for ?transcode=internet540.
        "FriendlyName": "RetroVue", "Manufacturer": "Silicondust", "ModelNumber": "HDHR5-4US",
        "FirmwareName": "hdhomerun5_atsc", "FirmwareVersion": discover["FirmwareVersion"],
        "DeviceID": discover["DeviceID"], "DeviceAuth": discover["DeviceAuth"],
        "BaseURL": "http://testserver", "LineupURL": "http://testserver/lineup.json", "TunerCount": 3}
    assert re.fullmatch(r"[0-9A-F]{8}", discover["DeviceID"])
    assert client.get("/discover.json").json()["DeviceID"] == discover["DeviceID"], "stable"
    settings.SECRET_KEY = "another key"  # the id is the installation's own, not a function of the key
    assert client.get("/discover.json").json()["DeviceID"] == discover["DeviceID"]
    assert libhdhomerun_validates(int(discover["DeviceID"], 16)), "Plex validates the check digit"
    TunerDevice.objects.all().delete()  # another installation: another random id
    assert client.get("/discover.json").json()["DeviceID"] != discover["DeviceID"]
    assert client.get(discover["LineupURL"]).json() == [
        {"GuideNumber": "1", "GuideName": "One", "VideoCodec": "H264", "AudioCodec": "AAC", "HD": 1,
         "URL": "http://testserver/iptv/channels/1.ts"},
        {"GuideNumber": "7", "GuideName": "Seven", "VideoCodec": "H264", "AudioCodec": "AAC", "HD": 0,
         "URL": "http://testserver/iptv/channels/7.ts"}]
    assert client.get("/lineup_status.json").json() == {
        "ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"]}
    settings.RETROVUE_TUNER_COUNT = 4
    assert client.get("/discover.json").json()["TunerCount"] == 4


def test_every_codec_a_channel_may_use_has_its_hdhomerun_lineup_name():
    by_encoder = {"libx264": "H264", "h264_nvenc": "H264", "h264_vaapi": "H264", "h264_qsv": "H264",
                  "libx265": "HEVC", "hevc_nvenc": "HEVC", "mpeg2video": "MPEG2", None: "H264"}  # copy: H.264
    assert {codec: iptv.video_codec_name(codec) for codec in VIDEO_CODECS} == {
        codec: by_encoder[encoder] for codec, encoder in VIDEO_CODECS.items()}
    assert set(iptv.AUDIO_CODEC_NAMES) == set(AUDIO_CODECS)


@pytest.mark.django_db
def test_token_gate_covers_every_endpoint_and_rides_along_in_generated_urls(client, settings):
    settings.RETROVUE_IPTV_TOKEN = "s3cret"
    make_channel(1, name="One")
    Channel.objects.update(desired_state="RUNNING")
    for path in ENDPOINTS:
        assert client.get(path).status_code == 403, path
        assert client.get(path, {"token": "wrong"}).status_code == 403, path
        assert client.get(path.replace("/iptv/", "/").replace("/", "/iptv/t/wrong/", 1)).status_code == 403, path
    assert client.post("/lineup.post", {"scan": "start"}).status_code == 403
    assert client.get("/iptv/channels/1.ts", {"token": "s3cret"}).status_code == 503  # ?token= still works
    header, entries = parse_m3u(client.get("/iptv/channels.m3u", {"token": "s3cret"}).content.decode())
    # In the path: a client appending its own query (Jellyfin's ?transcode=) keeps the token.
    assert header["url-tvg"] == "http://testserver/iptv/t/s3cret/xmltv.xml"
    assert entries[0]["url"] == "http://testserver/iptv/t/s3cret/channels/1.ts"
    assert client.get(header["url-tvg"]).status_code == 200
    assert client.get(entries[0]["url"], {"transcode": "internet540"}).status_code == 503  # past the gate
    discover = client.get("/iptv/t/s3cret/discover.json").json()
    assert discover["BaseURL"] == "http://testserver/iptv/t/s3cret"
    assert discover["LineupURL"] == "http://testserver/iptv/t/s3cret/lineup.json"
    assert client.get(discover["LineupURL"]).json()[0]["URL"] == entries[0]["url"]
    for path in ("/discover.json", "/lineup_status.json", "/device.xml", "/channels.m3u"):
        assert client.get(discover["BaseURL"] + path).status_code == 200, path
    assert client.post(discover["BaseURL"] + "/lineup.post?scan=start").status_code == 200


@pytest.mark.django_db
def test_device_xml_describes_the_tuner_as_a_upnp_media_server(client):
    device_id = client.get("/discover.json").json()["DeviceID"]
    response = client.get("/device.xml")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/xml")
    doc = etree.fromstring(response.content, etree.XMLParser(resolve_entities=False, no_network=True))
    upnp = "{urn:schemas-upnp-org:device-1-0}"
    assert doc.tag == f"{upnp}root" and doc.findtext(f"{upnp}URLBase") == "http://testserver"
    assert [doc.findtext(f"{upnp}specVersion/{upnp}{part}") for part in ("major", "minor")] == ["1", "0"]
    device = {child.tag.removeprefix(upnp): child.text for child in doc.find(f"{upnp}device")}
    udn = device.pop("UDN")
    assert device == {"deviceType": "urn:schemas-upnp-org:device:MediaServer:1", "friendlyName": "RetroVue",
                      "manufacturer": "Silicondust", "modelName": "HDHR5-4US", "modelNumber": "HDHR5-4US",
                      "serialNumber": device_id}
    assert udn.startswith("uuid:") and str(uuid.UUID(udn[5:])) == udn[5:]
    assert etree.fromstring(client.get("/device.xml").content).findtext(f".//{upnp}UDN") == udn, "stable"
    TunerDevice.objects.all().delete()  # another installation: another UDN
    assert etree.fromstring(client.get("/device.xml").content).findtext(f".//{upnp}UDN") != udn


@pytest.mark.django_db
def test_lineup_post_answers_plex_s_scan_requests_with_an_empty_200():
    plex = Client(enforce_csrf_checks=True)  # Plex has no CSRF token to send
    for scan in ("start", "abort"):
        response = plex.post(f"/lineup.post?scan={scan}&source=Cable")
        assert (response.status_code, response.content) == (200, b"")
    assert plex.get("/lineup.post?scan=start").status_code == 405


@pytest.mark.django_db
def test_stream_answers_404_for_an_unknown_channel_and_503_for_a_stopped_one(client):
    make_channel(1, name="One")
    assert client.get("/iptv/channels/9.ts").status_code == 404
    stopped = client.get("/iptv/channels/1.ts")
    assert stopped.status_code == 503 and b"STOPPED" in stopped.content


def publish(folder, first, segments):
    """Write segment files, then the playlist listing them (as FFmpeg's hls muxer does);
    a segment given as None is listed but already rotated out (deleted)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
    for name, data in segments.items():
        if data is None:
            (folder / name).unlink(missing_ok=True)
        else:
            (folder / name).write_bytes(data)
        lines += ["#EXTINF:2.000000,", name]
    (folder / "index.m3u8").write_text("\n".join(lines) + "\n")


def ts(label):
    """A stand-in segment: whole TS packets carrying `label`."""
    return label.encode().ljust(188, b"\xff")


def test_follow_hls_joins_at_the_newest_segments_then_follows_the_window(tmp_path):
    publish(tmp_path, 0, {f"index{n}.ts": ts(f"s{n}") for n in range(4)})
    stream = follow_hls(tmp_path, poll=0.01, idle=0.5)
    assert next(stream) == ts("s2") + ts("s3")  # the newest two at once
    publish(tmp_path, 2, {f"index{n}.ts": ts(f"s{n}") for n in range(2, 5)})
    assert next(stream) == ts("s4")
    for old in tmp_path.glob("*.ts"):  # a fresh start clears the window (hls.begin_output)
        old.unlink()
    publish(tmp_path, 0, {"index0.ts": ts("restarted")})  # numbering starts over
    assert next(stream) == ts("restarted")
    publish(tmp_path, 0, {"index0.ts": ts("restarted"), "index1.ts": None, "index2.ts": ts("r2")})
    assert next(stream) == ts("r2")
    began = time.monotonic()
    assert list(stream) == [] and time.monotonic() - began >= 0.5, "ends after `idle` without segments"


def test_a_viewer_that_started_the_channel_follows_the_new_output_never_the_old_window(tmp_path):
    publish(tmp_path, 5, {"index5.ts": ts("old")})
    (tmp_path / hls.STARTS).write_text("5\n")
    follower = HlsFollower(tmp_path, idle=10, after_starts=1)
    assert follower.step() == b""  # the old run's window is never sent
    for old in [*tmp_path.glob("*.ts"), tmp_path / "index.m3u8"]:  # the new output stage begins
        old.unlink()
    with open(tmp_path / hls.STARTS, "a") as starts:
        starts.write("6\n")
    assert follower.step() == b""  # its first segment is not written yet
    publish(tmp_path, 6, {"index6.ts": ts("new")})
    assert follower.step() == ts("new")


def test_a_segment_whose_write_failed_is_never_passed_on(tmp_path):
    """A full disk leaves an empty or cut segment: viewers and players never get it, nor what
    follows it until the window has slid past it."""
    follower = HlsFollower(tmp_path, idle=10)
    publish(tmp_path, 0, {"index0.ts": ts("s0"), "index1.ts": ts("s1")})
    assert follower.step() == ts("s0") + ts("s1")
    publish(tmp_path, 0, {"index0.ts": ts("s0"), "index1.ts": ts("s1"), "index2.ts": b"", "index3.ts": ts("s3")[:100],
                          "index4.ts": ts("s4")})
    assert follower.step() == b""
    assert hls.served_window(tmp_path)[1][-1][1] == "index1.ts"
    publish(tmp_path, 4, {"index4.ts": ts("s4"), "index5.ts": ts("s5")})
    assert follower.step() == ts("s4") + ts("s5")
    served = hls.playlist_text(tmp_path, hls.served_window(tmp_path), live=True)
    assert "#EXT-X-MEDIA-SEQUENCE:4" in served and served.endswith("index4.ts\n#EXTINF:2.000000,\nindex5.ts\n")


def watch(url, seconds):
    """What an HTTP client receives from `url` in `seconds`, whole TS packets only; then it hangs up."""
    chunks, end = [], time.monotonic() + seconds
    with urllib.request.urlopen(url, timeout=15) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "video/mp2t"
        while time.monotonic() < end:
            chunks.append(response.read1(65536))
    body = b"".join(chunks)
    return body[:len(body) - len(body) % 188]


@pytest.mark.django_db(transaction=True)
def test_two_http_viewers_share_the_channel_pipeline(live_host, live_server, media, free_port, tmp_path):
    channel = make_channel(21, name="Live", quality="480p", playlist=[str(media["clip"])],
                           network_settings={"multicast_address": "127.0.0.1", "port": free_port,
                                             "protocol": "udp"})
    lifecycle.start_channel(channel)
    wait_status(21, "RUNNING", timeout=30)
    url = f"{live_server.url}/iptv/channels/21.ts"
    with ThreadPoolExecutor(2) as pool:
        viewers = [pool.submit(watch, url, 6) for _ in range(2)]
        time.sleep(3)
        publishers = ffmpeg_processes(settings.RETROVUE_DATA_DIR / "channels" / "21")
        assert len(publishers) == 1, "one FFmpeg publishes the channel, whoever watches"
        bodies = [viewer.result(timeout=30) for viewer in viewers]
    for number, body in enumerate(bodies):
        path = tmp_path / f"viewer{number}.ts"
        path.write_bytes(body)
        assert codecs(path) == ["aac", "h264"]
        assert float(ffprobe(path, "-show_format")["format"]["duration"]) > 4
        report = analyze(body)  # the segments run on: no counter jump, PCR never steps back or leaps
        assert (report.cc_errors, report.pcr_backwards, report.pcr_jumps) == (0, 0, 0)
    first, second = bodies
    assert first[:188 * 100] in second or second[:188 * 100] in first, "the same segments, not copies"


def libhdhomerun_validates(device_id):
    """hdhomerun_discover_validate_device_id, transcribed: all eight nibbles XOR to zero, every
    other one mapped through its lookup table."""
    table = [0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB, 0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0]
    checksum = 0
    for shift in (28, 20, 12, 4):
        checksum ^= table[(device_id >> shift) & 0xF]
    for shift in (24, 16, 8, 0):
        checksum ^= (device_id >> shift) & 0xF
    return checksum == 0


@pytest.mark.parametrize("attempt", range(50))
def test_new_device_ids_pass_libhdhomerun_s_check_and_a_typo_fails_it(attempt):
    device_id = int(new_device_id(), 16)
    assert libhdhomerun_validates(device_id)
    assert not libhdhomerun_validates(device_id ^ (1 << (4 * (attempt % 8))))  # one digit off
