"""Reservations across real encode workers: fill a host, spill to the next, refuse when all are
full, kill a host and see its reservations released and its channels re-placed, and drain a
host with --migrate."""
import signal

import pytest
from django.conf import settings

from channels_app import services
from resources_app import services as resources
from resources_app.models import EncodeHost, ResourceAllocation
from retrovue.errors import DoesNotFit
from streams_app import lifecycle
from streams_app import services as streams
from streams_app.models import Stream

from .conftest import start_worker, wait_status
from .factories import make_channel
from .helpers import capture, codecs, ffmpeg_processes, sweep_until, udp_socket, wait_for

# Two channels of 90 % of a core fit on a 2-core host (180 of 200), a third does not.
NEED = {"max_cpu_percent": 90, "max_memory_mb": 256, "max_bandwidth_mbps": 10}


@pytest.fixture
def host_b(live_host):
    """Worker test-b beside test-a, both taking channels."""
    worker = start_worker("test-b")
    wait_for(lambda: EncodeHost.objects.live().filter(name="test-b").exists(), timeout=30,
             what="test-b online")
    yield worker
    worker.stop()


def copy_channel(media, number, port):
    return make_channel(number, port=port, quality="copy", playlist=[str(media["clip"])], resource_limits=NEED)


def hosts_of(numbers):
    return {n: ResourceAllocation.objects.get(channel__number=n).host.name for n in numbers}


@pytest.mark.django_db(transaction=True)
def test_fill_spill_refuse_then_a_killed_host_releases_and_replaces(live_host, host_b, media, free_port,
                                                                     tmp_path):
    for number in (41, 42, 43, 44):
        lifecycle.start_channel(copy_channel(media, number, free_port + number))
        wait_status(number, "RUNNING")
    placed = hosts_of((41, 42, 43, 44))
    assert sorted(placed.values()) == ["test-a", "test-a", "test-b", "test-b"]  # spread
    with pytest.raises(DoesNotFit) as refused:
        lifecycle.start_channel(copy_channel(media, 45, free_port + 45))
    assert set(refused.value.details["shortfall"]) == {"test-a", "test-b"}
    assert "CPU needs 90%, 20% free of 200%" in str(refused.value)
    assert services.get_channel(45).status == "STOPPED"

    on_a = sorted(n for n, h in placed.items() if h == "test-a")
    on_b = sorted(n for n, h in placed.items() if h == "test-b")
    lifecycle.stop_channel(services.get_channel(on_a[0]))  # the supervisor releases at the end
    wait_status(on_a[0], "STOPPED")
    wait_for(lambda: not ResourceAllocation.objects.filter(channel__number=on_a[0]).exists(),
             what="the stopped channel's reservation released")

    b_pids = set(Stream.objects.filter(host="test-b", status="RUNNING").values_list("pid", flat=True))
    host_b.proc.send_signal(signal.SIGKILL)
    wait_for(lambda: not b_pids & {p.pid for p in ffmpeg_processes(str(settings.RETROVUE_DATA_DIR))},
             timeout=3, what="test-b's FFmpeg gone with it")
    swept = sweep_until(lambda result: result["expired"])
    assert len(swept["expired"]) == 2
    assert not ResourceAllocation.objects.filter(host__name="test-b").exists()
    outcomes = dict(swept["replaced"])
    assert sorted(outcomes.values()) == ["no host", "re-placed on test-a"]
    moved = next(n for n in on_b if outcomes[str(services.get_channel(n).pk)] != "no host")
    stuck = next(n for n in on_b if n != moved)
    assert wait_status(moved, "RUNNING").current_host == "test-a"
    assert hosts_of((moved,)) == {moved: "test-a"}
    reason = services.get_channel(stuck).status_reason
    assert services.get_channel(stuck).status == "ERROR" and "does not fit" in reason
    assert ResourceAllocation.objects.filter(host__name="test-a").count() == 2
    sock = udp_socket(free_port + moved)
    assert codecs(capture(sock, 2, tmp_path / "moved.ts")) == ["aac", "h264"]


@pytest.mark.django_db(transaction=True)
def test_drain_with_migrate_moves_channels_one_by_one(live_host, host_b, media, free_port):
    for number in (51, 52):
        lifecycle.start_channel(copy_channel(media, number, free_port + number))
        wait_status(number, "RUNNING")
    source = hosts_of((51,))[51]
    target = "test-b" if source == "test-a" else "test-a"
    resources.drain_host(source, migrate=True)
    on_source = Stream.objects.filter(host=source, status="RUNNING").count()
    moves = []
    for _ in range(on_source):
        step = wait_for(lambda: (done := streams.migrate_step())["moved"] and done,
                        timeout=15, what="a migration step")
        moves += step["moved"]
        assert len(step["moved"]) == 1  # one at a time
    assert all(f"-> {target}" in move for move in moves)
    for number in (51, 52):
        assert wait_status(number, "RUNNING").current_host == target
    wait_for(lambda: not Stream.objects.filter(host=source, status__in=Stream.ACTIVE).exists(),
             what="nothing left on the drained host")
    assert streams.migrate_step() == {"moved": [], "waiting": [], "stuck": []}
    assert set(hosts_of((51, 52)).values()) == {target}
