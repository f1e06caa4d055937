"""The supervisor a step at a time: fake runs of the engine, a fake clock, the real database.
Each step waits for its next deadline (the fake clock jumps there) and does one thing."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app import system_config
from channels_app.models import Channel, ChannelConfig
from resources_app.models import EncodeHost
from streams_app import lifecycle
from streams_app.models import Alert, Stream
from streams_app.supervisor import Supervisor

from .factories import make_channel


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def wait(self, timeout=None):
        self.now += timeout or 0.0
        return False


class FakeEngine:
    def __init__(self):
        self.switches_asked = 0
        self.output_began_at = []

    def switch_asked(self):
        self.switches_asked += 1

    def output_began(self, at):
        self.output_began_at.append(at)


class FakeRun:
    """What the supervisor sees of a run of the engine: progress, an exit, a stall."""

    def __init__(self, clock):
        self.clock, self.pid = clock, 4242
        self.started_at = self.last_advance_at = clock()
        self.first_progress_at, self.first_output_at, self.code, self.stops = None, None, None, 0
        self.aborted = False
        self.lost_legs = {}

    @property
    def producing(self):
        return self.first_progress_at is not None

    def advance(self):
        self.last_advance_at = self.clock()
        self.first_progress_at = self.first_progress_at or self.clock()
        self.first_output_at = self.first_output_at or timezone.now()

    def exit_code(self):
        return self.code

    def held(self):
        self.last_advance_at = self.clock()

    def stalled_for(self):
        return self.clock() - self.last_advance_at if self.producing else 0.0

    def health(self):
        return {"frame": 1, "speed": 1.0}

    def error_tail(self):
        return "Conversion failed!"

    def stop(self, grace=3.0):
        self.stops += 1
        return self.code

    kill = stop


@pytest.fixture
def supervised(transactional_db):
    channel = make_channel(90, port=5090, failover_settings={"max_restart_attempts": 2, "restart_delay_seconds": 1})
    Channel.objects.filter(pk=channel.pk).update(generation=1, desired_state="RUNNING", status="STARTING")
    stream = Stream.objects.create(channel=channel, host="test-a", generation=1, heartbeat_at=timezone.now())
    clock, runs = FakeClock(), []

    def start_run(plan, channel_id, spawn, lease, run_id, host, burst):
        runs.append(FakeRun(clock))
        return runs[-1], FakeEngine()

    supervisor = Supervisor(stream.pk, clock=clock, wait=clock.wait, start_run=start_run)
    assert supervisor.launch() is None
    return supervisor, clock, runs, stream


def status(stream):
    return Stream.objects.values_list("status", flat=True).get(pk=stream.pk)


def test_first_progress_marks_the_run_running(supervised):
    supervisor, clock, runs, stream = supervised
    assert len(runs) == 1 and status(stream) == "STARTING"
    runs[0].advance()
    assert supervisor.step() is None
    assert status(stream) == "RUNNING" and Channel.objects.get(pk=stream.channel_id).status == "RUNNING"


def restarted_after(supervisor, clock, runs):
    """The current run exits: seconds from the step that saw it to its successor's start."""
    started = len(runs)
    runs[-1].code = 1
    assert supervisor.step() is None
    seen_at = clock.now
    while len(runs) == started:
        assert supervisor.step() is None
    return runs[-1].started_at - seen_at


def test_the_first_restart_is_at_once_the_next_after_the_delay_and_a_loop_fails_the_run(supervised):
    supervisor, clock, runs, stream = supervised  # max_restart_attempts 2, restart_delay_seconds 1
    on_air(supervisor, runs)
    assert restarted_after(supervisor, clock, runs) < 0.1, "a crash is restarted at once"
    on_air(supervisor, runs)
    assert status(stream) == "RUNNING"
    assert restarted_after(supervisor, clock, runs) >= 1.0, "a restart that did not hold: the next waits the delay"
    on_air(supervisor, runs)
    assert crash(supervisor, runs) == Supervisor.FAILED  # the policy allows 2 restarts
    assert supervisor.failure_reason.startswith("gave up after 2 restart attempts: ffmpeg exited with code 1")
    assert Alert.objects.filter(kind="RESTART_LOOP", channel_id=stream.channel_id, cleared_at=None).exists()


def test_a_lost_output_leg_is_restored_by_a_restart_the_policy_allows_never_a_failure(supervised):
    """FFmpeg dropped its UDP leg (its route to 127.0.0.1 is there, so it could work again): the
    next heartbeat restarts the output stage, counted by the policy; with no restart left it airs
    on HLS alone rather than failing the channel."""
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    supervisor.attempts = supervisor.policy["max_restart_attempts"]
    runs[0].lost_legs["UDP"] = "No route to host"
    clock.now = supervisor.next_heartbeat
    assert supervisor.step() is None and runs[0].stops == 0 and status(stream) == "RUNNING"
    supervisor.attempts = 0  # a run stayed up long enough since
    clock.now = supervisor.next_heartbeat
    assert supervisor.step() is None and runs[0].stops == 1
    assert status(stream) == "STARTING" and "restoring its UDP output" in Stream.objects.get(pk=stream.pk).status_reason
    while len(runs) == 1:
        assert supervisor.step() is None
    assert supervisor.restart_count == 1


def test_a_stalled_run_is_killed_and_restarted(supervised):
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    clock.now += settings.RETROVUE_STALL_SECONDS + 0.1  # no progress since
    assert supervisor.step() is None
    assert runs[0].stops == 1 and "stalled" in Stream.objects.get(pk=stream.pk).status_reason
    assert Alert.objects.filter(kind="STALL", channel_id=stream.channel_id).exists()


def test_a_stopped_channel_ends_the_run_at_its_next_heartbeat(supervised):
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    Channel.objects.filter(pk=stream.channel_id).update(desired_state="STOPPED")
    outcome = None
    while outcome is None:
        runs[0].advance()
        outcome = supervisor.step()
    assert outcome == Supervisor.STOPPED


def beat(supervisor, runs):
    """Steps up to and including the next heartbeat; its outcome."""
    due = supervisor.next_heartbeat
    outcome = None
    while outcome is None and supervisor.next_heartbeat == due:
        runs[-1].advance()
        outcome = supervisor.step()
    return outcome


def test_a_steady_heartbeat_is_one_conditional_update(supervised):
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()  # marked running
    with CaptureQueriesContext(connection) as queries:
        assert beat(supervisor, runs) is None
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE"]
    assert Stream.objects.get(pk=stream.pk).health_metrics["speed"] == 1.0


def test_a_restart_asked_for_is_taken_at_the_next_heartbeat(supervised):
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    Stream.objects.filter(pk=stream.pk).update(restart_requested=True)
    assert beat(supervisor, runs) is None
    assert len(runs) == 2 and runs[0].stops == 1
    row = Stream.objects.get(pk=stream.pk)
    assert row.restart_count == 1 and not row.restart_requested and row.status in ("STARTING", "RUNNING")


def test_a_switch_whose_wake_up_was_lost_is_found_at_the_next_heartbeat(supervised):
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    Channel.objects.filter(pk=stream.channel_id).update(switch_requested_at=timezone.now())
    assert beat(supervisor, runs) is None
    assert runs[0].feeder.switches_asked == 1 and supervisor.lease.admits(clock())


def test_a_channel_moved_while_the_lease_holds_is_fenced_at_the_next_heartbeat(supervised):
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    Channel.objects.filter(pk=stream.channel_id).update(generation=2)
    assert beat(supervisor, runs) == Supervisor.FENCED


def frozen(supervisor, clock, runs, seconds):
    """The run airs a frame, then the whole worker is frozen for `seconds` (no step runs)."""
    runs[0].advance()
    supervisor.step()
    supervisor.lease.admits(clock())  # the pacer lets a frame out
    aired_at = timezone.now()
    clock.now += seconds
    return aired_at


def test_a_host_frozen_past_its_lease_while_the_channel_moved_on_is_fenced_and_says_when_it_stopped(supervised):
    supervisor, clock, runs, stream = supervised
    aired_at = frozen(supervisor, clock, runs, 15)
    assert not supervisor.lease.admits(clock())  # the pacer writes nothing more
    # Meanwhile the sweep ended the run at the latest time it could have published, and the
    # channel went to another host.
    Stream.objects.filter(pk=stream.pk).update(status="ERROR", status_reason="lease expired: host test-a lost",
                                               ended_at=aired_at + timedelta(seconds=3))
    Channel.objects.filter(pk=stream.channel_id).update(generation=2)
    outcome = supervisor.step()
    assert outcome == Supervisor.FENCED and runs[0].stops == 1 and len(runs) == 1
    supervisor.finish(outcome)
    run = Stream.objects.get(pk=stream.pk)
    assert run.status == "ERROR" and "lease lapsed for 12.5s" in run.status_reason and "fenced" in run.status_reason
    # When it really stopped, not when swept: the frame aired 15 s (of the fake clock) before the
    # step, and the wall clock stood still meanwhile.
    assert abs((run.ended_at - (aired_at - timedelta(seconds=15))).total_seconds()) < 0.5


def test_a_host_frozen_past_its_lease_but_still_owner_renews_and_goes_on_without_a_restart(supervised):
    supervisor, clock, runs, stream = supervised
    frozen(supervisor, clock, runs, 2.6)
    assert not supervisor.lease.admits(clock())  # the pacer holds its output meanwhile
    assert supervisor.step() is None
    assert runs[0].stops == 0 and len(runs) == 1  # nobody took the channel: a pause, not a restart
    assert supervisor.lease.admits(clock())  # renewed: the pacer writes again
    assert supervisor.step() is None and runs[0].stops == 0  # the pause is not taken for a stall


def test_a_database_outage_does_not_lapse_a_lease_that_keeps_being_attempted(supervised, monkeypatch):
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    monkeypatch.setattr(supervisor.record, "write", lambda fn, *a, **kw: setattr(supervisor.record, "down_since", 1) or None)
    for _ in range(20):  # ten seconds of heartbeats that cannot reach the database
        runs[0].advance()
        assert supervisor.step() is None
    assert supervisor.lease.admits(clock()) and runs[0].stops == 0


# --- the restart policy: a delay, consecutive attempts, and an end state beat leaves alone ------
def on_air(supervisor, runs):
    runs[-1].advance()
    assert supervisor.step() is None and supervisor.reported_running


def crash(supervisor, runs):
    """The current run exits: steps until its successor is started or the run ends (the outcome)."""
    started = len(runs)
    runs[-1].code = 1
    outcome = supervisor.step()
    while outcome is None and len(runs) == started:
        outcome = supervisor.step()
    return outcome


def test_a_restart_waits_the_system_default_delay(supervised):
    supervisor, clock, runs, stream = supervised
    ChannelConfig.objects.filter(channel_id=stream.channel_id).update(failover_settings={})
    system_config.update({"failover_settings": {"restart_delay_seconds": 5}})
    on_air(supervisor, runs)
    assert restarted_after(supervisor, clock, runs) < 0.1  # the first restart is at once
    on_air(supervisor, runs)
    assert restarted_after(supervisor, clock, runs) == pytest.approx(5.0)


def test_a_run_that_stayed_up_starts_the_count_again(supervised, settings):
    settings.RETROVUE_RESTART_WINDOW_SECONDS = 3
    supervisor, clock, runs, stream = supervised  # max_restart_attempts 2
    on_air(supervisor, runs)
    assert crash(supervisor, runs) is None and supervisor.attempts == 1
    on_air(supervisor, runs)
    up_at = clock.now
    while clock.now - up_at < 3:  # up for the whole window
        assert beat(supervisor, runs) is None
    assert crash(supervisor, runs) is None and supervisor.attempts == 1  # counted afresh
    on_air(supervisor, runs)
    assert crash(supervisor, runs) is None and supervisor.attempts == 2
    on_air(supervisor, runs)
    assert crash(supervisor, runs) == Supervisor.FAILED


def test_giving_up_is_an_end_state_beat_leaves_until_an_operator_starts_it(supervised):
    supervisor, clock, runs, stream = supervised
    for _ in range(2):
        on_air(supervisor, runs)
        assert crash(supervisor, runs) is None
    on_air(supervisor, runs)
    assert crash(supervisor, runs) == Supervisor.FAILED
    supervisor.finish(Supervisor.FAILED)
    channel = Channel.objects.get(pk=stream.channel_id)
    assert channel.status == "ERROR"
    assert channel.status_reason == "gave up after 2 restart attempts: ffmpeg exited with code 1: Conversion failed!"
    assert Alert.objects.filter(kind="RESTART_LOOP", channel_id=channel.pk, cleared_at=None).exists()
    long_ago = timezone.now() - timedelta(seconds=2 * settings.RETROVUE_FAILED_RETRY_SECONDS)
    Stream.objects.filter(pk=stream.pk).update(ended_at=long_ago)
    assert lifecycle.restart_failed_channels(only_due=True) == {}  # beat's step: left in ERROR
    # A run that failed for another reason (its host lost) is still re-placed by beat.
    EncodeHost.objects.create(name="test-b", last_heartbeat=timezone.now(), cpu_count=4, memory_mb=8192)
    Channel.objects.filter(pk=channel.pk).update(status_reason="lease expired: host test-a lost")
    assert lifecycle.restart_failed_channels(only_due=True) == {90: "STARTING"}
    lifecycle.stop_channel(channel)
    Channel.objects.filter(pk=channel.pk).update(status="ERROR", desired_state="RUNNING",
                                                 status_reason=channel.status_reason)
    assert lifecycle.restart_failed_channels(only_due=True) == {}
    started = lifecycle.start_channel(channel)  # the operator's start clears the end state
    assert started.status == "STARTING" and started.status_reason == ""
