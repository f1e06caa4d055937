"""The supervisor a step at a time: fake runs of the engine, a fake clock, the real database.
Each step waits for its next deadline (the fake clock jumps there) and does one thing."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.models import Channel
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

    def start_run(plan, channel_id, spawn, lease, run_id, host, origin):
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


def test_a_crash_restarts_after_the_delay_and_a_loop_fails_the_run(supervised):
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    runs[0].code = 1
    assert supervisor.step() is None  # counted, restart due in 1 s
    assert status(stream) == "STARTING" and len(runs) == 1
    while len(runs) == 1:
        assert supervisor.step() is None
    assert clock.now - runs[0].last_advance_at >= 1.0  # not before the delay
    runs[1].advance()
    supervisor.step()
    assert status(stream) == "RUNNING"
    for run_index in (1, 2):  # two more crashes: the policy allows 2 restarts
        runs[run_index].code = 1
        outcome = supervisor.step()
        while outcome is None and len(runs) == run_index + 1:
            outcome = supervisor.step()
        if outcome:
            break
        runs[run_index + 1].advance()
        supervisor.step()
    assert outcome == Supervisor.FAILED and "restart loop" in supervisor.failure_reason
    assert Alert.objects.filter(kind="RESTART_LOOP", channel_id=stream.channel_id, cleared_at=None).exists()


def test_a_lost_output_leg_is_restored_by_a_restart_the_policy_allows_never_a_failure(supervised):
    """FFmpeg dropped its UDP leg (its route to 127.0.0.1 is there, so it could work again): the
    next heartbeat restarts the output stage, counted by the policy; with no restart left it airs
    on HLS alone rather than failing the channel."""
    supervisor, clock, runs, stream = supervised
    runs[0].advance()
    supervisor.step()
    supervisor.restarts.extend([clock.now] * supervisor.policy["max_restart_attempts"])
    runs[0].lost_legs["UDP"] = "No route to host"
    clock.now = supervisor.next_heartbeat
    assert supervisor.step() is None and runs[0].stops == 0 and status(stream) == "RUNNING"
    supervisor.restarts.clear()  # the restart window has moved on
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
    monkeypatch.setattr(supervisor, "db_write", lambda fn, *a, **kw: setattr(supervisor, "db_down_since", 1) or None)
    for _ in range(20):  # ten seconds of heartbeats that cannot reach the database
        runs[0].advance()
        assert supervisor.step() is None
    assert supervisor.lease.admits(clock()) and runs[0].stops == 0
