"""Tuner discovery read back independently: HDHomeRun replies parsed by a transcription of
libhdhomerun's reader (CRC by zlib, its TLV lengths), SSDP by a plain header split; then the
real `manage.py discovery` on loopback ports, sent the exact datagrams Jellyfin and Plex send.
Nothing here sends to a multicast group: the announce target is a loopback port the test owns."""
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import zlib

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from channels_app.models import Channel
from streams_app import discovery
from streams_app.iptv import device_udn
from streams_app.models import TunerDevice

from .conftest import database_url
from .factories import make_channel

# HdHomerunHost.DiscoverDevices (Jellyfin): device type and id wildcards.
JELLYFIN_DISCOVER = bytes([0, 2, 0, 12, 1, 4, 255, 255, 255, 255, 2, 4, 255, 255, 255, 255, 115, 204, 125, 143])
# libhdhomerun's discover as Plex (and hdhomerun_config) send it: tuners, any id.
PLEX_DISCOVER = bytes.fromhex("0002000c0104000000010204ffffffff4e507f35")
PLEX_SEARCH = (b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 3\r\n'
               b"ST: urn:schemas-upnp-org:device:MediaServer:1\r\n\r\n")
ALL_SEARCH = (b'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n'
              b"ST: ssdp:all\r\nUSER-AGENT: Jellyfin/10 UPnP/1.0\r\n\r\n")
PUBLIC = "http://192.0.2.7:8000"
CLIENT = ("127.0.0.1", 40000)


def read_packet(packet):
    """libhdhomerun's hdhomerun_pkt_open_frame and read_tlv, transcribed: (type, {tag: value})."""
    assert zlib.crc32(packet[:-4]) == struct.unpack("<I", packet[-4:])[0], "CRC"
    packet_type, length = struct.unpack(">HH", packet[:4])
    payload, tags = packet[4:-4], {}
    assert len(payload) == length
    while payload:
        tag, size, payload = payload[0], payload[1], payload[2:]
        if size & 0x80:
            size, payload = (size & 0x7F) | (payload[0] << 7), payload[1:]
        tags[tag], payload = payload[:size], payload[size:]
    return packet_type, tags


def request(*tlvs, packet_type=0x0002):
    payload = b"".join(bytes([tag, len(value)]) + value for tag, value in tlvs)
    head = struct.pack(">HH", packet_type, len(payload)) + payload
    return head + struct.pack("<I", zlib.crc32(head))


def u32(value):
    return struct.pack(">I", value)


def headers_of(message):
    start, *lines = message.decode().split("\r\n")
    assert message.endswith(b"\r\n\r\n")
    return start, {name.upper(): value.strip() for name, _, value in (line.partition(":") for line in lines if line)}


@pytest.fixture
def tuner(db, settings):
    settings.RETROVUE_PUBLIC_URL = PUBLIC
    make_channel(1)
    make_channel(2)
    return TunerDevice.current().device_id


def test_the_packets_of_jellyfin_and_plex_are_whole_discover_requests():
    for packet in (JELLYFIN_DISCOVER, PLEX_DISCOVER):
        assert discovery.unframe(packet) == (0x0002, [(0x01, packet[6:10]), (0x02, b"\xff" * 4)])


def test_jellyfin_and_plex_discover_requests_get_the_tuner_and_its_urls(tuner):
    for packet in (JELLYFIN_DISCOVER, PLEX_DISCOVER):
        packet_type, tags = read_packet(discovery.HdhrResponder().handle(packet, CLIENT))
        assert packet_type == 0x0003
        assert tags == {0x01: u32(1), 0x02: bytes.fromhex(tuner), 0x10: bytes([2]),
                        0x2A: PUBLIC.encode(), 0x27: f"{PUBLIC}/lineup.json".encode()}


def test_a_request_is_answered_only_when_it_asks_for_a_tuner_with_this_id_or_any(tuner):
    ours, other = int(tuner, 16), int(tuner, 16) ^ 0x10
    answered = {
        "type and id": request((1, u32(1)), (2, u32(ours))),
        "type only (newer libhdhomerun leaves out a wildcard id)": request((1, u32(0xFFFFFFFF))),
        "several types, a tuner among them": request((0x2D, u32(5) + u32(1))),
    }
    ignored = {
        "another id": request((1, u32(1)), (2, u32(other))),
        "storage devices": request((1, u32(5)), (2, u32(0xFFFFFFFF))),
        "several types, no tuner": request((0x2D, u32(5) + u32(7))),
        "an id of the wrong size": request((1, u32(1)), (2, b"\x01\x02")),
        "a reply (another tuner's, or our own echoed)": request((1, u32(1)), packet_type=0x0003),
    }
    responder = discovery.HdhrResponder()
    for what, packet in answered.items():
        assert responder.handle(packet, CLIENT), what
    for what, packet in ignored.items():
        assert responder.handle(packet, CLIENT) is None, what


def test_malformed_packets_are_ignored_and_logged_at_debug(tuner, caplog):
    bad_crc = JELLYFIN_DISCOVER[:-1] + bytes([JELLYFIN_DISCOVER[-1] ^ 1])
    cut_tlv = request((1, u32(1)))[:-4][:-2]
    cut_tlv = cut_tlv[:2] + struct.pack(">H", len(cut_tlv) - 4) + cut_tlv[4:]
    packets = [b"", b"\x00\x02", bad_crc, JELLYFIN_DISCOVER[:-1], JELLYFIN_DISCOVER + b"\x00",
               cut_tlv + struct.pack("<I", zlib.crc32(cut_tlv)), os.urandom(300), PLEX_SEARCH]
    log = logging.getLogger("retrovue.discovery")
    log.addHandler(caplog.handler)  # the "retrovue" logger does not propagate to the root
    try:
        with caplog.at_level(logging.DEBUG, logger="retrovue.discovery"):
            assert [discovery.HdhrResponder().handle(packet, CLIENT) for packet in packets] == [None] * len(packets)
    finally:
        log.removeHandler(caplog.handler)
    assert len(caplog.records) == len(packets) and {r.levelno for r in caplog.records} == {logging.DEBUG}


def test_long_urls_take_libhdhomerun_s_two_byte_lengths(tuner, settings):
    settings.RETROVUE_PUBLIC_URL = "http://tuner.example:8000/" + "x" * 150
    _, tags = read_packet(discovery.HdhrResponder().handle(JELLYFIN_DISCOVER, CLIENT))
    assert tags[0x2A] == settings.RETROVUE_PUBLIC_URL.encode() and tags[0x10] == bytes([2])


def test_the_advertised_urls_carry_the_token_and_the_tuner_count_its_setting(tuner, settings, client):
    settings.RETROVUE_IPTV_TOKEN = "s3cret"
    settings.RETROVUE_TUNER_COUNT = 300
    _, tags = read_packet(discovery.HdhrResponder().handle(JELLYFIN_DISCOVER, CLIENT))
    assert tags[0x2A] == f"{PUBLIC}/iptv/t/s3cret".encode()
    assert tags[0x27] == f"{PUBLIC}/iptv/t/s3cret/lineup.json".encode()
    assert tags[0x10] == bytes([255]), "one byte on the wire"
    assert client.get("/iptv/t/s3cret/discover.json").json()["TunerCount"] == 300


def test_without_a_public_url_the_base_is_this_host_s_address_toward_the_client(tuner, settings):
    settings.RETROVUE_PUBLIC_URL = ""
    settings.RETROVUE_WEB_PORT = 8123
    _, tags = read_packet(discovery.HdhrResponder().handle(PLEX_DISCOVER, CLIENT))
    assert tags[0x2A] == b"http://127.0.0.1:8123"


def test_ssdp_searches_for_us_get_a_unicast_response_pointing_at_device_xml(tuner):
    udn = device_udn(tuner)
    responder = discovery.SsdpResponder()
    media_server = "urn:schemas-upnp-org:device:MediaServer:1"
    for target, usn in [(media_server, f"{udn}::{media_server}"), ("upnp:rootdevice", f"{udn}::upnp:rootdevice"),
                        (udn, udn)]:
        search = PLEX_SEARCH.replace(b"urn:schemas-upnp-org:device:MediaServer:1", target.encode())
        start, headers = headers_of(responder.handle(search, CLIENT))
        assert start == "HTTP/1.1 200 OK"
        assert headers == {"CACHE-CONTROL": "max-age=1800", "EXT": "", "LOCATION": f"{PUBLIC}/device.xml",
                           "SERVER": headers["SERVER"], "ST": target, "USN": usn}
        assert "HDHomeRun" in headers["SERVER"]
    assert headers_of(responder.handle(ALL_SEARCH, CLIENT))[1]["ST"] == "urn:schemas-upnp-org:device:MediaServer:1"


def test_ssdp_ignores_other_targets_other_messages_and_garbage(tuner):
    responder = discovery.SsdpResponder()
    ignored = [
        PLEX_SEARCH.replace(b"urn:schemas-upnp-org:device:MediaServer:1", b"urn:dial-multiscreen-org:service:dial:1"),
        PLEX_SEARCH.replace(b"urn:schemas-upnp-org:device:MediaServer:1", f"uuid:{uuid.uuid4()}".encode()),
        PLEX_SEARCH.replace(b'MAN: "ssdp:discover"\r\n', b""),
        b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n",
        b"\xff\xfe garbage", b"M-SEARCH * HTTP/1.1\r\nno colon here\r\n\r\n", b"",
    ]
    assert [responder.handle(packet, CLIENT) for packet in ignored] == [None] * len(ignored)


def test_notify_alive_and_byebye_for_the_media_server_and_the_root_device(tuner):
    found = discovery.current_tuner("127.0.0.1")
    alive = [headers_of(m) for m in discovery.notify_messages(found, "ssdp:alive", "127.0.0.1:1900")]
    assert [(start, h["NT"], h["NTS"], h["USN"], h["LOCATION"]) for start, h in alive] == [
        ("NOTIFY * HTTP/1.1", nt, "ssdp:alive", f"{found.udn}::{nt}", f"{PUBLIC}/device.xml")
        for nt in ("urn:schemas-upnp-org:device:MediaServer:1", "upnp:rootdevice")]
    byebye = [headers_of(m)[1] for m in discovery.notify_messages(found, "ssdp:byebye", "127.0.0.1:1900")]
    assert [(h["NT"], h["NTS"], "LOCATION" in h) for h in byebye] == [
        ("urn:schemas-upnp-org:device:MediaServer:1", "ssdp:byebye", False), ("upnp:rootdevice", "ssdp:byebye", False)]


def test_nothing_is_announced_unless_an_announce_target_is_set(tuner, settings):
    assert settings.RETROVUE_SSDP_ANNOUNCE == "" and discovery.announce_target() is None
    server = discovery.DiscoveryServer("127.0.0.1", 0, 0)
    try:
        assert server.announce("ssdp:alive") == [] and server.announce("ssdp:byebye") == []
    finally:
        server.close()
    for wrong in ("239.255.255.250", "tuner.lan:1900", "127.0.0.1:0", "127.0.0.1:x"):
        settings.RETROVUE_SSDP_ANNOUNCE = wrong
        with pytest.raises(ImproperlyConfigured):
            discovery.announce_target()


def test_a_busy_port_leaves_its_protocol_off_and_the_other_one_on(tuner):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        server = discovery.DiscoveryServer("127.0.0.1", 0, taken, announce=("127.0.0.1", taken))
        try:
            assert list(server.listening) == ["HDHomeRun"] and server.announce_to is None
        finally:
            server.close()
        with pytest.raises(OSError, match="neither"):
            discovery.DiscoveryServer("127.0.0.1", taken, taken)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exchange(sock, packet, port):
    sock.sendto(packet, ("127.0.0.1", port))
    return sock.recvfrom(8192)


@pytest.mark.django_db(transaction=True)
def test_the_discovery_process_answers_jellyfin_and_plex_on_loopback_and_says_byebye_on_sigterm():
    make_channel(3)
    Channel.objects.update(desired_state="RUNNING")
    device_id = TunerDevice.current().device_id
    hdhr_port, ssdp_port = free_udp_port(), free_udp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as announced, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        announced.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        announced.settimeout(20)
        client.settimeout(5)
        env = {**os.environ, "DATABASE_URL": database_url(django_settings.DATABASES["default"]),
               "RETROVUE_DISCOVERY_BIND": "127.0.0.1", "RETROVUE_HDHR_DISCOVER_PORT": str(hdhr_port),
               "RETROVUE_SSDP_PORT": str(ssdp_port), "RETROVUE_PUBLIC_URL": PUBLIC,
               "RETROVUE_SSDP_ANNOUNCE": "127.0.0.1:%d" % announced.getsockname()[1]}
        proc = subprocess.Popen([sys.executable, "manage.py", "discovery"], cwd=django_settings.BASE_DIR, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            alive = [headers_of(announced.recvfrom(8192)[0])[1] for _ in range(2)]  # it is up
            assert {h["NTS"] for h in alive} == {"ssdp:alive"}
            for packet in (JELLYFIN_DISCOVER, PLEX_DISCOVER):
                reply, sender = exchange(client, packet, hdhr_port)
                assert sender == ("127.0.0.1", hdhr_port)
                assert read_packet(reply)[1][0x02] == bytes.fromhex(device_id)
            for garbage in (b"", os.urandom(64), JELLYFIN_DISCOVER[:-1]):
                client.sendto(garbage, ("127.0.0.1", hdhr_port))
                client.sendto(garbage, ("127.0.0.1", ssdp_port))
            for search in (PLEX_SEARCH, ALL_SEARCH):
                reply, sender = exchange(client, search, ssdp_port)
                assert sender == ("127.0.0.1", ssdp_port)
                assert headers_of(reply)[1]["LOCATION"] == f"{PUBLIC}/device.xml"
            assert read_packet(exchange(client, PLEX_DISCOVER, hdhr_port)[0])[0] == 0x0003, "still answering"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err.decode()
            assert time.monotonic() - started < 3 and b"Traceback" not in err
            byebye = [headers_of(announced.recvfrom(8192)[0])[1] for _ in range(2)]
            assert {h["NTS"] for h in byebye} == {"ssdp:byebye"}
            assert b"SSDP on udp 127.0.0.1:%d" % ssdp_port in out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
