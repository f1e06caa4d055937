"""Failover against real processes: FFmpeg killed or frozen, restart policies, Redis and the
database going away. Outages are measured on the UDP output by an independent receiver."""
import os
import signal
import time

import pytest
from django.conf import settings
from django.utils import timezone

from channels_app.models import Channel
from resources_app.models import ResourceAllocation
from streams_app import lifecycle
from streams_app.models import Alert, AsRunEntry, MetricSample, Stream

from .conftest import database_url, wait_status
from .factories import make_channel
from .helpers import TcpProxy, UdpRecorder, ffmpeg_processes, sweep_until, wait_for
from .testenv import BROKER, REDIS


def start(media, port, number, **failover):
    channel = make_channel(number, port=port, quality="copy", playlist=[str(media["clip"])],
                           failover_settings=failover)
    lifecycle.start_channel(channel)
    return wait_status(number, "RUNNING")


def run_of(channel):
    return Stream.objects.get(channel_id=channel.pk, generation=Channel.objects.get(pk=channel.pk).generation)


def new_pid(channel, old, timeout=10):
    return wait_for(lambda: (pid := run_of(channel).pid) != old and pid, timeout=timeout,
                    interval=0.02, what="a new FFmpeg")


def open_alert(channel, kind):
    return Alert.objects.filter(channel_id=channel.pk, kind=kind, cleared_at=None).first()


@pytest.mark.django_db(transaction=True)
def test_ffmpeg_sigkill_output_back_within_a_second(live_host, media, free_port):
    channel = start(media, free_port, 31)
    recorder = UdpRecorder(free_port)
    time.sleep(1)
    pid = run_of(channel).pid
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    new_pid(channel, pid)
    time.sleep(1.5)
    recorder.stop()
    outage = recorder.max_gap(killed - 0.2, time.monotonic())
    assert outage < 1.0, f"output was silent for {outage:.2f}s"
    gap = AsRunEntry.objects.get(channel_id=channel.pk, kind="interruption")
    print(f"silence at the receiver {outage * 1000:.0f} ms, in the as-run log {gap.duration_s * 1000:.0f} ms")
    # Its ends are the exit and the first progress of the output stages, as their processes tell
    # them: within two frames (25 fps) of the silence an independent receiver heard.
    assert gap.note == "the output stage restarted" and abs(gap.duration_s - outage) <= 0.08
    assert run_of(channel).restart_count == 1
    assert wait_status(31, "RUNNING")


@pytest.mark.django_db(transaction=True)
def test_frozen_ffmpeg_is_a_stall_killed_and_restarted(live_host, media, free_port):
    channel = start(media, free_port, 32)
    recorder = UdpRecorder(free_port)
    time.sleep(1)
    pid = run_of(channel).pid
    frozen = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    new_pid(channel, pid, timeout=settings.RETROVUE_STALL_SECONDS + 5)
    assert wait_for(lambda: open_alert(channel, Alert.Kind.STALL) or
                    Alert.objects.filter(channel_id=channel.pk, kind=Alert.Kind.STALL).exists(),
                    what="a STALL alert")
    wait_status(32, "RUNNING")
    time.sleep(1)
    recorder.stop()
    outage = recorder.max_gap(frozen, time.monotonic())
    assert outage < settings.RETROVUE_STALL_SECONDS + 1.0, f"silent for {outage:.2f}s"
    assert not [p for p in ffmpeg_processes(str(settings.RETROVUE_DATA_DIR)) if p.pid == pid]
    wait_for(lambda: open_alert(channel, Alert.Kind.STALL) is None, what="STALL cleared once running")


@pytest.mark.django_db(transaction=True)
def test_restart_loop_ends_in_error_with_alert_until_an_operator_restarts_it(live_host, media, free_port):
    channel = start(media, free_port, 33, max_restart_attempts=1)
    pid = run_of(channel).pid
    os.kill(pid, signal.SIGKILL)
    pid = new_pid(channel, pid)
    wait_status(33, "RUNNING")
    os.kill(pid, signal.SIGKILL)
    failed = wait_status(33, "ERROR")
    assert failed.status_reason.startswith("gave up after 1 restart attempts")
    alert = open_alert(channel, Alert.Kind.RESTART_LOOP)
    assert alert and alert.severity == Alert.Severity.CRITICAL
    assert lifecycle.restart_failed_channels(only_due=True) == {}  # beat leaves a channel that gave up
    assert lifecycle.restart_failed_channels() == {33: "STARTING"}
    wait_status(33, "RUNNING")
    assert open_alert(channel, Alert.Kind.RESTART_LOOP) is None


@pytest.mark.django_db(transaction=True)
def test_auto_restart_off_leaves_a_crash_in_error(live_host, media, free_port):
    channel = start(media, free_port, 34, auto_restart=False)
    os.kill(run_of(channel).pid, signal.SIGKILL)
    failed = wait_status(34, "ERROR")
    assert "auto_restart is off" in failed.status_reason
    assert lifecycle.restart_failed_channels() == {}


@pytest.mark.django_db(transaction=True)
def test_restart_delay_is_honoured_while_the_lease_stays_fresh(live_host, media, free_port):
    """The first restart is at once; one after a restart that did not hold waits the delay."""
    channel = start(media, free_port, 35, restart_delay_seconds=2)
    first = run_of(channel).pid
    killed = time.monotonic()
    os.kill(first, signal.SIGKILL)
    pid = new_pid(channel, first)
    assert time.monotonic() - killed < 1.0
    wait_status(35, "RUNNING")
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    waiting = wait_status(35, "STARTING")
    assert waiting.status_reason.startswith("restarting after: ffmpeg exited")
    time.sleep(1.6)
    assert (timezone.now() - run_of(channel).heartbeat_at).total_seconds() < settings.RETROVUE_LEASE_TTL_SECONDS
    new_pid(channel, pid)
    assert time.monotonic() - killed >= 2.0
    wait_status(35, "RUNNING")


# These stop the session's private Redis as the broker; on RabbitMQ (the machine's own, which a
# test does not stop) they have no outage to cause.
redis_broker_only = pytest.mark.skipif(BROKER != "redis", reason="the broker is RabbitMQ: no private Redis to stop")


@pytest.mark.django_db(transaction=True)
@redis_broker_only
def test_redis_outage_does_not_touch_running_streams(live_host, media, free_port):
    channel = start(media, free_port, 36)
    pid = run_of(channel).pid
    recorder = UdpRecorder(free_port)
    REDIS.stop()
    try:
        down = time.monotonic()
        time.sleep(4)
        assert recorder.max_gap(down, time.monotonic()) < 0.5, "output paused while Redis was away"
    finally:
        REDIS.start()
    recorder.stop()
    assert run_of(channel).pid == pid and wait_status(36, "RUNNING")
    # The worker reconnects and takes new work; stopping is a database change and just works.
    second = make_channel(37, port=free_port + 1, quality="copy", playlist=[str(media["clip"])])
    wait_for(lambda: lifecycle.start_channel(second), timeout=20, what="a start after Redis returned")
    wait_status(37, "RUNNING", timeout=40)
    lifecycle.stop_channel(channel)
    wait_status(36, "STOPPED")


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
                    reason="a database outage is cut at the TCP level: needs PostgreSQL")
def test_database_outage_keeps_ffmpeg_running_and_reconciles(other_host, media, free_port):
    db = settings.DATABASES["default"]
    proxy = TcpProxy(int(db["PORT"] or 5432))
    url = database_url({**db, "HOST": "127.0.0.1", "PORT": proxy.port})
    other_host("test-db", db_url=url)
    channel = start(media, free_port, 38)
    assert run_of(channel).host == "test-db"
    pid, generation = run_of(channel).pid, channel.generation
    recorder = UdpRecorder(free_port)
    proxy.cut()  # the database is gone for the worker; beat's sweeps fail too, so none run here
    try:
        down = time.monotonic()
        time.sleep(6)
        assert recorder.max_gap(down, time.monotonic()) < 0.5, "output paused while the database was away"
    finally:
        proxy.restore()
    back = timezone.now()
    recorder.stop()
    # Beat's sweep resumes: leases get one TTL to renew, so nothing is re-placed.
    sweep_until(lambda result: not result["grace"])
    sweep_until(lambda result: not result["grace"] and not result["expired"])
    run = run_of(channel)
    assert (run.pid, Channel.objects.get(pk=channel.pk).generation) == (pid, generation)
    assert run.status == "RUNNING" and (back - run.heartbeat_at).total_seconds() < 0
    assert MetricSample.objects.filter(stream=run, at__lt=back).count() >= 5  # buffered samples landed


@pytest.mark.django_db(transaction=True)
@redis_broker_only
def test_a_start_while_the_broker_is_away_is_refused_with_nothing_committed(live_host, media, free_port, api):
    make_channel(38, port=free_port, quality="copy", playlist=[str(media["clip"])])
    REDIS.stop()
    try:
        asked = time.monotonic()
        refused = api.post("/api/channels/38/start")
        took = time.monotonic() - asked
    finally:
        REDIS.start()
    assert refused.status_code == 503 and "broker is unavailable" in refused.data["detail"], refused.data
    assert took < 3
    channel = Channel.objects.get(number=38)
    assert (channel.status, channel.desired_state, channel.generation) == ("STOPPED", "STOPPED", 0)
    assert not Stream.objects.filter(channel=channel).exists()
    assert not ResourceAllocation.objects.filter(channel=channel).exists()
    # the same start, once the broker is back, starts it
    assert api.post("/api/channels/38/start").status_code == 202
    wait_status(38, "RUNNING", timeout=40)
    lifecycle.stop_channel(channel)
    wait_status(38, "STOPPED")
