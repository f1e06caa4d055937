"""Tuner discovery: how Plex and Jellyfin find RetroVue's HDHomeRun tuner with no address typed.

`manage.py discovery` answers two UDP protocols, each reply unicast to whoever asked:
- HDHomeRun discovery (SiliconDust's libhdhomerun, port 65001): a packet is a big-endian type and
  payload length, tag-length-value pairs, then an Ethernet CRC32, little-endian. A discover
  request (its device types and id wildcards or ours) gets a reply with the device type, id,
  tuner count, base URL and lineup URL; anything else is ignored.
- SSDP (UPnP, port 1900): an M-SEARCH for any device, a root device, a MediaServer or our UDN
  gets LOCATION `<base>/device.xml`. NOTIFY (alive at start and every MAX_AGE / 3, byebye at
  exit) goes only to RETROVUE_SSDP_ANNOUNCE; unset, nothing is ever sent unasked.

Each responder's `handle(packet, addr)` returns the reply or None, so one step can be tested on
its own; DiscoveryServer owns the sockets and the loop. A bad packet is logged at debug and
dropped; nothing a client sends ends the loop.
"""
import ipaddress
import logging
import selectors
import socket
import struct
import time
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

from .iptv import device_udn, tuner_base_url, tuner_count
from .models import TunerDevice

log = logging.getLogger("retrovue.discovery")

# libhdhomerun's hdhomerun_pkt.h
TYPE_DISCOVER_REQ = 0x0002
TYPE_DISCOVER_RPY = 0x0003
TAG_DEVICE_TYPE = 0x01
TAG_DEVICE_ID = 0x02
TAG_TUNER_COUNT = 0x10
TAG_LINEUP_URL = 0x27
TAG_BASE_URL = 0x2A
TAG_MULTI_TYPE = 0x2D  # newer libhdhomerun asks for several device types in one tag
DEVICE_TYPE_TUNER = 0x00000001
WILDCARD = 0xFFFFFFFF

MEDIA_SERVER = "urn:schemas-upnp-org:device:MediaServer:1"
ROOT_DEVICE = "upnp:rootdevice"
# Jellyfin's SSDP discovery of HDHomeRun tuners looks for "HDHomeRun" in SERVER.
SERVER = "Linux/5 UPnP/1.0 HDHomeRun/1.0"
MAX_AGE = 1800
POLL_SECONDS = 0.5  # how soon a stop request is seen
MAX_DATAGRAM = 8192


class Malformed(ValueError):
    pass


# --- HDHomeRun discovery ------------------------------------------------------------------------

def crc(data):
    return struct.pack("<I", zlib.crc32(data))


def tlv(tag, value):
    """One tag-length-value; a length above 127 takes two bytes, its low seven bits first."""
    size = len(value)
    length = bytes([size]) if size < 0x80 else bytes([size & 0x7F | 0x80, size >> 7])
    return bytes([tag]) + length + value


def frame(packet_type, payload):
    head = struct.pack(">HH", packet_type, len(payload)) + payload
    return head + crc(head)


def unframe(packet):
    """(type, [(tag, value), ...]) of a whole packet; Malformed if its length, CRC or a TLV is off."""
    if len(packet) < 8:
        raise Malformed("shorter than a header and a CRC")
    packet_type, length = struct.unpack_from(">HH", packet)
    if len(packet) != length + 8:
        raise Malformed(f"payload length {length} in a packet of {len(packet)} bytes")
    if packet[-4:] != crc(packet[:-4]):
        raise Malformed("bad CRC")
    payload, pos, tags = packet[4:-4], 0, []
    while pos < len(payload):
        if pos + 2 > len(payload):
            raise Malformed("a tag without its length")
        tag, size = payload[pos], payload[pos + 1]
        pos += 2
        if size & 0x80:
            if pos >= len(payload):
                raise Malformed("a two-byte length cut short")
            size = size & 0x7F | payload[pos] << 7
            pos += 1
        if pos + size > len(payload):
            raise Malformed(f"tag 0x{tag:02x} longer than the payload")
        tags.append((tag, payload[pos:pos + size]))
        pos += size
    return packet_type, tags


def asks_for(tags, device_id):
    """Whether a discover request's device types and device id (absent: any) take in this tuner."""
    types, ids = [], []
    for tag, value in tags:
        if tag in (TAG_DEVICE_TYPE, TAG_MULTI_TYPE, TAG_DEVICE_ID):
            if not value or len(value) % 4 or (tag != TAG_MULTI_TYPE and len(value) != 4):
                return False
            (ids if tag == TAG_DEVICE_ID else types).extend(struct.unpack(f">{len(value) // 4}I", value))
    return ((not types or bool({DEVICE_TYPE_TUNER, WILDCARD} & set(types)))
            and (not ids or bool({device_id, WILDCARD} & set(ids))))


@dataclass(frozen=True)
class Tuner:
    """What discovery tells a client about this installation's tuner."""

    device_id: str
    base_url: str
    tuner_count: int

    @property
    def lineup_url(self):
        return f"{self.base_url}/lineup.json"

    @property
    def location(self):
        return f"{self.base_url}/device.xml"

    @property
    def udn(self):
        return device_udn(self.device_id)


def public_root(toward):
    """The web server's root as a client at `toward` reaches it: RETROVUE_PUBLIC_URL, else this
    host's address on the route to that client."""
    if settings.RETROVUE_PUBLIC_URL:
        return settings.RETROVUE_PUBLIC_URL
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((toward, 9))  # connecting a UDP socket sends nothing: it only picks the route
        local = probe.getsockname()[0]
    return f"http://{local}:{settings.RETROVUE_WEB_PORT}"


def current_tuner(toward):
    return Tuner(TunerDevice.current().device_id, tuner_base_url(public_root(toward)), tuner_count())


def discover_reply(tuner):
    payload = b"".join([
        tlv(TAG_DEVICE_TYPE, struct.pack(">I", DEVICE_TYPE_TUNER)),
        tlv(TAG_DEVICE_ID, bytes.fromhex(tuner.device_id)),
        tlv(TAG_TUNER_COUNT, bytes([min(tuner.tuner_count, 255)])),  # one byte on the wire
        tlv(TAG_BASE_URL, tuner.base_url.encode()),
        tlv(TAG_LINEUP_URL, tuner.lineup_url.encode()),
    ])
    return frame(TYPE_DISCOVER_RPY, payload)


class HdhrResponder:
    def handle(self, packet, addr):
        """The discover reply to `packet` from `addr`, or None."""
        try:
            packet_type, tags = unframe(packet)
        except Malformed as exc:
            log.debug("hdhomerun: ignored %d bytes from %s: %s", len(packet), addr[0], exc)
            return None
        if packet_type != TYPE_DISCOVER_REQ:
            log.debug("hdhomerun: ignored packet type 0x%04x from %s", packet_type, addr[0])
            return None
        tuner = current_tuner(addr[0])
        if not asks_for(tags, int(tuner.device_id, 16)):
            log.debug("hdhomerun: %s looks for another device", addr[0])
            return None
        return discover_reply(tuner)


# --- SSDP ---------------------------------------------------------------------------------------

def http_message(start, headers):
    lines = [start, *(f"{name}: {value}" for name, value in headers), "", ""]
    return "\r\n".join(lines).encode()


def parse_http_message(packet):
    """(start line, {HEADER: value}) of an HTTP-over-UDP message; Malformed if it is not one."""
    try:
        text = packet.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None
    start, *lines = text.split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, colon, value = line.partition(":")
            if not colon:
                raise Malformed(f"not a header: {line[:40]!r}")
            headers[name.strip().upper()] = value.strip()
    return start.strip(), headers


def usn(tuner, target):
    return tuner.udn if target == tuner.udn else f"{tuner.udn}::{target}"


def search_response(tuner, target):
    return http_message("HTTP/1.1 200 OK", [
        ("CACHE-CONTROL", f"max-age={MAX_AGE}"), ("EXT", ""), ("LOCATION", tuner.location),
        ("SERVER", SERVER), ("ST", target), ("USN", usn(tuner, target))])


def notify_messages(tuner, nts, host):
    """The NOTIFY messages (`nts` ssdp:alive or ssdp:byebye) for the MediaServer and the root device."""
    messages = []
    for target in (MEDIA_SERVER, ROOT_DEVICE):
        headers = [("HOST", host), ("NT", target), ("NTS", nts), ("USN", usn(tuner, target))]
        if nts == "ssdp:alive":
            headers += [("CACHE-CONTROL", f"max-age={MAX_AGE}"), ("LOCATION", tuner.location), ("SERVER", SERVER)]
        messages.append(http_message("NOTIFY * HTTP/1.1", headers))
    return messages


class SsdpResponder:
    def handle(self, packet, addr):
        """The M-SEARCH response to `packet` from `addr`, or None (not a search, or not for us)."""
        try:
            start, headers = parse_http_message(packet)
        except Malformed as exc:
            log.debug("ssdp: ignored %d bytes from %s: %s", len(packet), addr[0], exc)
            return None
        if start != "M-SEARCH * HTTP/1.1" or headers.get("MAN", "").strip('"') != "ssdp:discover":
            return None  # NOTIFYs and responses of other devices: ordinary SSDP traffic
        target = headers.get("ST", "")
        if target not in ("ssdp:all", ROOT_DEVICE, MEDIA_SERVER) and not target.startswith("uuid:"):
            return None
        tuner = current_tuner(addr[0])
        if target.startswith("uuid:") and target != tuner.udn:
            return None
        return search_response(tuner, MEDIA_SERVER if target == "ssdp:all" else target)


def announce_target():
    """(host, port) of RETROVUE_SSDP_ANNOUNCE, or None: nothing is announced unless asked."""
    value = settings.RETROVUE_SSDP_ANNOUNCE.strip()
    if not value:
        return None
    host, _, port = value.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        if not 1 <= int(port) <= 65535:
            raise ValueError(port)
    except ValueError:
        raise ImproperlyConfigured(f"RETROVUE_SSDP_ANNOUNCE is '{value}': use an IPv4 host:port "
                                   "such as 239.255.255.250:1900") from None
    return host, int(port)


# --- The process --------------------------------------------------------------------------------

def bound_socket(address, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # other SSDP listeners may share the port
    sock.bind((address, port))
    return sock


class DiscoveryServer:
    """The HDHomeRun and SSDP sockets, the loop that answers them, and SSDP announcements."""

    def __init__(self, bind, hdhr_port, ssdp_port, announce=None):
        """A port another program holds leaves that protocol off (logged), so a busy port never
        stops what the process runs with (honcho ends every process when one exits); OSError
        if neither port is free."""
        self.listening, self.responders, self.ssdp = {}, {}, None
        for name, port, responder in (("HDHomeRun", hdhr_port, HdhrResponder()),
                                      ("SSDP", ssdp_port, SsdpResponder())):
            try:
                sock = bound_socket(bind, port)
            except OSError as exc:
                log.warning("discovery: %s is off, udp %s:%s: %s", name, bind, port, exc)
                continue
            self.listening[name], self.responders[sock] = "%s:%d" % sock.getsockname(), responder
            if name == "SSDP":
                self.ssdp = sock
        if not self.responders:
            raise OSError(f"neither udp {bind}:{hdhr_port} nor udp {bind}:{ssdp_port} is free")
        self.announce_to = announce if "SSDP" in self.listening else None
        self.stopping = False
        if self.announce_to and ipaddress.IPv4Address(announce[0]).is_multicast:
            # Announcing to the SSDP group means being on a real LAN: hear its M-SEARCHes too.
            membership = socket.inet_aton(announce[0]) + socket.inet_aton(bind)
            self.ssdp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)

    def serve(self):
        """Answer until stop(): alive now and every MAX_AGE / 3, byebye at the end."""
        next_alive = 0
        with selectors.DefaultSelector() as selector:
            for sock in self.responders:
                selector.register(sock, selectors.EVENT_READ)
            while not self.stopping:
                if time.monotonic() >= next_alive:
                    self.announce("ssdp:alive")
                    next_alive = time.monotonic() + MAX_AGE / 3
                for key, _ in selector.select(timeout=POLL_SECONDS):
                    self.answer(key.fileobj)
        self.announce("ssdp:byebye")
        self.close()

    def stop(self):
        self.stopping = True

    def close(self):
        for sock in self.responders:
            sock.close()

    def answer(self, sock):
        """Read one datagram from `sock` and send back its reply; returns the reply or None."""
        try:
            packet, addr = sock.recvfrom(MAX_DATAGRAM)
        except OSError as exc:  # e.g. an ICMP error for an earlier reply
            log.debug("discovery: receive failed: %s", exc)
            return None
        try:
            close_old_connections()  # a long-lived process: no connection kept past its age
            reply = self.responders[sock].handle(packet, addr)
            if reply:
                sock.sendto(reply, addr)
        except Exception:  # the database, the network: one client's request never ends the loop
            log.exception("discovery: no answer to %s", addr[0])
            return None
        return reply

    def announce(self, nts):
        """Send NOTIFY `nts` to RETROVUE_SSDP_ANNOUNCE (none without it); returns what was sent."""
        if not self.announce_to:
            return []
        host, port = self.announce_to
        try:
            close_old_connections()
            messages = notify_messages(current_tuner(host), nts, f"{host}:{port}")
            for message in messages:
                self.ssdp.sendto(message, self.announce_to)
        except Exception:
            log.exception("discovery: %s not announced", nts)
            return []
        return messages
