"""A UDP output whose route disappears: the channel goes on on HLS, says so (OUTPUT_FAILED, a
DEGRADED verdict) and gets its UDP leg back by a restart once the route returns.

The receiver is a host of the test's own: a network namespace at the far end of a veth pair.
The route "disappears" as an unreachable route to that host, so nothing is ever sent elsewhere
(a route deleted outright would let the datagrams take the default route)."""
import os
import shutil
import subprocess
import sys
import time

import pytest

from streams_app import lifecycle
from streams_app.hls import channel_dir, next_sequence, window
from streams_app.models import Alert, AsRunEntry, Stream

from .conftest import wait_status
from .factories import make_channel
from .helpers import wait_for

RECEIVER = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], int(sys.argv[2])))
with open(sys.argv[3], "w", buffering=1) as out:
    while True:
        sock.recv(65536)
        out.write(f"{time.monotonic():.4f}\\n")
"""


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def far_host(tmp_path):
    """(address, arrivals file) of a UDP receiver in a network namespace of the test's own."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and iproute2 to make a network namespace")
    name, subnet = f"rvleg{os.getpid()}", f"10.213.{os.getpid() % 250}"
    try:
        ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot make a network namespace: {exc.stderr.decode().strip()}")
    receiver = None
    try:
        ip("link", "add", f"{name}a", "type", "veth", "peer", "name", f"{name}b")
        ip("link", "set", f"{name}b", "netns", name)
        ip("addr", "add", f"{subnet}.1/30", "dev", f"{name}a")
        ip("link", "set", f"{name}a", "up")
        ip("-n", name, "addr", "add", f"{subnet}.2/30", "dev", f"{name}b")
        ip("-n", name, "link", "set", f"{name}b", "up")
        arrivals = tmp_path / "arrivals"
        receiver = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", RECEIVER,
                                     f"{subnet}.2", "5500", str(arrivals)])
        yield f"{subnet}.2", arrivals
    finally:
        if receiver:
            receiver.kill()
            receiver.wait()
        subprocess.run(["ip", "route", "del", "unreachable", f"{subnet}.2/32"], capture_output=True)
        subprocess.run(["ip", "link", "del", f"{name}a"], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def received_between(arrivals, start, end):
    return sum(start <= float(line) < end for line in arrivals.read_text().split())


@pytest.mark.django_db(transaction=True)
def test_a_udp_output_that_loses_its_route_airs_on_hls_and_is_restored_when_it_returns(
        live_host, media, far_host, settings):
    address, arrivals = far_host
    settings.RETROVUE_LOOPBACK_ONLY = False  # the far host is the test's own namespace
    channel = make_channel(61, quality="copy", playlist=[str(media["clip"])],
                           network_settings={"multicast_address": address, "port": 5500, "protocol": "udp"})
    lifecycle.start_channel(channel)
    wait_status(61, "RUNNING")
    time.sleep(1)
    first = Stream.objects.get(channel=channel)
    cut = time.monotonic()
    assert received_between(arrivals, cut - 1, cut) > 20, "the far host receives the channel"
    ip("route", "add", "unreachable", f"{address}/32")

    alert = wait_for(lambda: Alert.objects.filter(channel=channel, kind=Alert.Kind.OUTPUT_FAILED,
                                                  cleared_at=None).first(), timeout=5, what="OUTPUT_FAILED")
    assert "UDP output failing: No route to host" in alert.message
    health = wait_for(lambda: (h := Stream.objects.get(pk=first.pk).health_metrics).get("output_problem") and h,
                      what="the lost leg in the run's health")
    assert "UDP output failing" in health["output_problem"]
    hls = channel_dir(61) / "hls"
    segments = next_sequence(window(hls))
    time.sleep(3)  # the route stays away: HLS goes on, no restart is tried
    assert next_sequence(window(hls)) >= segments + 2, "HLS kept airing"
    assert Stream.objects.get(pk=first.pk).pid == first.pid
    restored_at = time.monotonic()
    assert received_between(arrivals, cut + 0.5, restored_at) == 0

    ip("route", "del", "unreachable", f"{address}/32")
    wait_for(lambda: Stream.objects.get(pk=first.pk).pid != first.pid, timeout=5, what="a restart for the UDP leg")
    wait_status(61, "RUNNING")
    wait_for(lambda: not Alert.objects.filter(channel=channel, kind=Alert.Kind.OUTPUT_FAILED, cleared_at=None).exists(),
             timeout=5, what="OUTPUT_FAILED cleared")
    time.sleep(1)
    assert received_between(arrivals, restored_at, time.monotonic()) > 20, "the far host receives it again"
    assert Stream.objects.get(pk=first.pk).restart_count == 1
    gap = AsRunEntry.objects.get(channel=channel, kind=AsRunEntry.Kind.INTERRUPTION)
    assert gap.note == "the output stage restarted" and gap.duration_s < 1
    lifecycle.stop_channel(channel)
    wait_status(61, "STOPPED")
