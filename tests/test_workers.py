"""Encode workers dying: no FFmpeg outlives its worker, leases expire, channels move hosts."""
import signal
import time
from datetime import timedelta

import psutil
import pytest
from django.conf import settings
from django.utils import timezone

from channels_app.models import Channel
from resources_app.models import EncodeHost
from streams_app import lifecycle
from streams_app.models import Stream
from streams_app.signals import beat_schedule, ensure_beat_schedule

from .conftest import wait_status
from .factories import make_channel
from .helpers import UdpRecorder, capture, codecs, ffmpeg_processes, sweep_until, udp_socket, wait_for
from .tsanalysis import analyze


@pytest.fixture
def second_host(other_host):
    """Worker test-b takes new channels while test-a drains."""
    return other_host("test-b")


def running_channel(media, port, number):
    channel = make_channel(number, port=port, quality="copy", playlist=[str(media["clip"])])
    lifecycle.start_channel(channel)
    return wait_status(number, "RUNNING")


@pytest.mark.django_db(transaction=True)
def test_worker_sigkill_takes_ffmpeg_with_it_and_sweep_replaces(second_host, live_host, media,
                                                                 free_port, tmp_path):
    channel = running_channel(media, free_port, 21)
    assert channel.current_host == "test-b"
    pid = Stream.objects.get(channel=channel).pid
    second_host.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: not [p for p in ffmpeg_processes(str(settings.RETROVUE_DATA_DIR)) if p.pid == pid],
             timeout=2, interval=0.02, what="FFmpeg killed by the parent-death signal")
    assert time.monotonic() - killed_at < 1.0
    EncodeHost.objects.filter(name=live_host.host).update(state=EncodeHost.State.ONLINE)
    swept = sweep_until(lambda result: result["expired"])
    assert time.monotonic() - killed_at >= settings.RETROVUE_LEASE_TTL_SECONDS
    assert swept["expired"] == [Stream.objects.get(channel=channel, generation=1).pk]
    assert swept["replaced"] == [(str(channel.pk), f"re-placed on {live_host.host}")]
    moved = wait_status(21, "RUNNING")
    assert moved.current_host == live_host.host and moved.generation == 2
    assert Stream.objects.get(channel=channel, generation=1).status == "ERROR"
    sock = udp_socket(free_port)
    assert codecs(capture(sock, 2, tmp_path / "moved.ts")) == ["aac", "h264"]


@pytest.mark.django_db(transaction=True)
def test_a_frozen_worker_stops_publishing_before_its_channel_moves_and_never_after(second_host, live_host, media,
                                                                                   free_port, api):
    channel = running_channel(media, free_port, 23)
    old = Stream.objects.get(channel=channel)
    assert old.host == "test-b"
    recorder = UdpRecorder(free_port)
    time.sleep(1)
    worker = psutil.Process(second_host.proc.pid)
    worker.suspend()  # SIGSTOP: the worker's FFmpeg, in a session of its own, is not stopped
    frozen_at = time.monotonic()
    try:
        wait_for(lambda: api.get("/api/channels/23").data["status"] == "UNKNOWN", timeout=3,
                 interval=0.05, what="the channel's status in doubt before its lease expires")
        assert api.get("/api/streams/23/health").data["verdict"] == "UNKNOWN"
        EncodeHost.objects.filter(name=live_host.host).update(state=EncodeHost.State.ONLINE)
        swept = sweep_until(lambda result: result["replaced"])
        assert swept["expired"] == [old.pk]
        assert wait_status(23, "RUNNING").current_host == live_host.host
        time.sleep(2)
    finally:
        worker.resume()
    resumed_at = time.monotonic()
    wait_for(lambda: not psutil.pid_exists(old.pid) or psutil.Process(old.pid).status() == psutil.STATUS_ZOMBIE,
             timeout=5, interval=0.05, what="the frozen host's FFmpeg killed once it resumed")
    time.sleep(2)
    recorder.stop()
    spans = recorder.publishers()
    assert len(spans) == 2, spans
    (old_first, old_last), (new_first, new_last) = sorted(spans.values())
    # The frozen host's output starved at once; its lease ran out before the sweep could move the
    # channel; it never sent again, not even when it resumed.
    assert old_last - frozen_at < settings.RETROVUE_FENCE_MARGIN_SECONDS, old_last - frozen_at
    assert old_last < new_first and old_last < resumed_at
    assert new_last > resumed_at + 1.5  # the new host publishes on
    # A receiver's analyser sees one output end and the next begin, announced: no counter or
    # PCR fault, as there would be with two publishers interleaved.
    report = analyze(b"".join(recorder.datagrams))
    assert (report.cc_errors, report.pcr_backwards, report.pcr_jumps, report.announced) == (0, 0, 0, 1), report
    run = Stream.objects.get(pk=old.pk)
    assert run.status == "ERROR" and "lease lapsed" in run.status_reason and "fenced" in run.status_reason
    assert run.ended_at < timezone.now() - timedelta(seconds=3)  # when it stopped, not when it resumed


@pytest.mark.django_db(transaction=True)
def test_worker_sigterm_stops_ffmpeg_and_releases_its_lease(second_host, live_host, media, free_port):
    channel = running_channel(media, free_port, 22)
    assert channel.current_host == "test-b"
    second_host.stop(timeout=10)
    run = Stream.objects.get(channel=channel)
    assert run.status == "STOPPED" and run.status_reason == "host test-b shut down"
    assert EncodeHost.objects.get(name="test-b").state == EncodeHost.State.OFFLINE
    assert Channel.objects.get(pk=channel.pk).status == "STOPPED"
    assert not [p for p in ffmpeg_processes(str(settings.RETROVUE_DATA_DIR)) if p.pid == run.pid]
    EncodeHost.objects.filter(name=live_host.host).update(state=EncodeHost.State.ONLINE)
    swept = sweep_until(lambda result: result["replaced"])
    assert swept["replaced"] == [(str(channel.pk), f"re-placed on {live_host.host}")]
    assert wait_status(22, "RUNNING").current_host == live_host.host


@pytest.mark.django_db
def test_beat_schedule_is_created_idempotently():
    from django.apps import apps
    from django_celery_beat.models import PeriodicTask

    ensure_beat_schedule(apps.get_app_config("streams_app"))
    ensure_beat_schedule(apps.get_app_config("streams_app"))
    task = PeriodicTask.objects.get(name="retrovue: sweep stream leases")
    assert task.task == "streams.sweep_leases"
    assert task.interval.every == settings.RETROVUE_LEASE_SWEEP_SECONDS
    # streams_app's and resources_app's loops, and notifications_app's delivery pass
    assert PeriodicTask.objects.filter(name__startswith="retrovue:").count() == len(beat_schedule()) + 1
