"""The per-channel supervisor: runs inside the long-lived stream task on an encode host.

It owns one run of the playout engine at a time: the output stage (a `runner.FFmpegRun`) and
the pacer that feeds it (`streams_app.playout`). `run()` is a loop of `step()`
calls: each waits for an event (first progress, FFmpeg's exit, a worker shutdown) or a deadline
(heartbeat, stall, restart), does one thing and returns what it did, so tests can drive it a
step at a time. Its database writes go through `run_record.RunRecord`: compare-and-swap on (run,
generation), and while the database is away FFmpeg keeps running and the writes wait for it.
"""
import collections
import logging
import math
import subprocess
import threading
import time
import weakref
from dataclasses import replace
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Value
from django.db.models.functions import Concat
from django.utils import timezone

from channels_app.models import Channel, ChannelConfig
from resources_app.allocations import release_run
from resources_app.confinement import run_group
from resources_app.requirements import channel_need

from . import playout
from .alerts import clear_alert, raise_alert
from .hls import begin_output, channel_dir, leg_problem, next_sequence, output_bitrate_kbps, window
from .lifecycle import GAVE_UP
from .models import Alert, Stream
from .output_legs import leg_can_resume
from .playout.lease import Lease
from .playout.argv import HLS_SEGMENT_SECONDS
from .playout.plan import ChannelPlan
from .run_record import RunRecord
from .runner import FFmpegRun

log = logging.getLogger("retrovue.supervisor")
TUNE_BURST_SECONDS = float(HLS_SEGMENT_SECONDS)

SHUTDOWN = threading.Event()
_ACTIVE = weakref.WeakSet()
ERROR_LOG_LINES = 50
START_TIMEOUT_SECONDS = 15.0
FINAL_WRITE_RETRY_SECONDS = 30.0


def shutdown_all():
    """Worker is shutting down: every supervisor stops its FFmpeg and releases its lease."""
    SHUTDOWN.set()
    for supervisor in list(_ACTIVE):
        supervisor.wake.set()


def switch_asked(stream_id):
    """A switch was stored for the channel of `stream_id`: tell its engine, if it runs here."""
    for supervisor in list(_ACTIVE):
        if supervisor.stream.pk == stream_id:
            return supervisor.switch_asked()
    return False


def recorded_run(stream_id, patience=5.0, poll=0.01):
    """The run a supervise task was sent for. The task is sent inside the transaction that
    records the run, so it may arrive before the commit; a run never committed (its start was
    rolled back) is None."""
    deadline = time.monotonic() + patience
    while True:
        run = Stream.objects.select_related("channel__config").filter(pk=stream_id).first()
        if run is not None or time.monotonic() > deadline:
            return run
        time.sleep(poll)


def channel_plan(channel):
    return ChannelPlan(
        number=channel.number,
        name=channel.name,
        sections=channel.config.sections(),
        channel_dir=channel_dir(channel.number),
        ffmpeg=settings.RETROVUE_FFMPEG,
        udp_ttl=settings.RETROVUE_UDP_TTL,
        hls_list_size=settings.RETROVUE_HLS_LIST_SIZE,
    )


class Supervisor:
    # Outcomes that end the run.
    STOPPED, FENCED, SHUTDOWN_, FAILED = "stopped", "fenced", "shutdown", "failed"

    def __init__(self, stream_id, clock=time.monotonic, wait=None, start_run=playout.start):
        # The monotonic clock, how a step waits on it, and how a run of the engine is started:
        # real ones on an encode host, fakes in tests that drive the loop a step at a time.
        self.clock, self.start_run = clock, start_run
        self.stream = Stream.objects.select_related("channel__config").get(pk=stream_id)
        self.channel = self.stream.channel
        self.generation = self.stream.generation
        self.record = RunRecord(self.stream, self.generation, clock)
        self.plan = channel_plan(self.channel)
        self.policy = self.channel.config.failover()
        self.wake = threading.Event()
        self.wait = wait or self.wake.wait
        self.ffmpeg = None
        self.argv = []
        self.errors = collections.deque(maxlen=ERROR_LOG_LINES)
        self.attempts = 0  # consecutive restart attempts, since a run last stayed up
        self.up_since = None  # when the current run went on air
        self.restart_at = None  # a restart waiting for its delay
        self.ever_ran = False
        self.reported_running = False
        self.restart_count = self.stream.restart_count
        self.next_heartbeat = 0.0
        self.next_sample = self.clock()
        self.failure_reason = ""
        self.lease = Lease(until=-math.inf)  # held from the claim on, renewed by heartbeats
        self.fenced_at = None  # (why, when its output stopped) once its lease lapsed
        self.output_problem = None  # why an output leg is failing, while it is
        self.group = None  # the run's control group (None: this host runs channels unconfined)
        self.stalled_under_cap = False  # then its restarts get no start allowance (confinement.apply)
        self.last_oom_at = None
        # How far the channel's HLS numbering got in its runs before this one, on any host.
        earlier = Stream.objects.filter(channel_id=self.channel.pk, generation__lt=self.generation) \
            .order_by("-generation").values_list("health_metrics", flat=True).first()
        self.hls_reached = (earlier or {}).get("hls_next", 0)
        _ACTIVE.add(self)

    # --- the loop -------------------------------------------------------------------------------
    def run(self):
        try:
            outcome = self.launch()
            while outcome is None:
                outcome = self.step()
            self.finish(outcome)
            return outcome
        except Exception as exc:  # never leave FFmpeg or a RUNNING row behind
            log.exception("supervisor of %s crashed", self.channel)
            self.failure_reason = f"supervisor error: {exc}"
            self.finish(self.FAILED)
            return self.FAILED
        finally:
            _ACTIVE.discard(self)
            connection.close()

    def step(self):
        """Wait for the next event or deadline, then act on it; returns an outcome or None."""
        self.wait(timeout=max(0.0, self.next_deadline() - self.clock()))
        self.wake.clear()
        if SHUTDOWN.is_set():
            return self.SHUTDOWN_
        now = self.clock()
        if self.restart_at is None and not self.lease.holds(now):
            return self.on_lease_lapsed(now)
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.start_ffmpeg()
        elif self.ffmpeg.exit_code() is not None or self.ffmpeg.aborted:
            return self.on_exit()
        elif not self.ffmpeg.producing and now - self.ffmpeg.started_at > START_TIMEOUT_SECONDS:
            return self.on_stuck(f"no output within {START_TIMEOUT_SECONDS:g}s")
        elif self.ffmpeg.stalled_for() > settings.RETROVUE_STALL_SECONDS:
            return self.on_stuck(f"stalled: no progress for {self.ffmpeg.stalled_for():.1f}s")
        elif self.ffmpeg.lost_legs and now >= self.next_heartbeat:
            self.restore_legs()
        if self.ffmpeg and self.ffmpeg.producing and not self.reported_running:
            self.mark_running()
        if now >= self.next_heartbeat:
            return self.heartbeat()
        return None

    def next_deadline(self):
        deadlines = [self.next_heartbeat]
        if self.restart_at is not None:
            deadlines.append(self.restart_at)
        elif self.ffmpeg and self.ffmpeg.producing:
            deadlines.append(self.ffmpeg.last_advance_at + settings.RETROVUE_STALL_SECONDS + 0.05)
        return min(deadlines)

    # --- FFmpeg ---------------------------------------------------------------------------------
    def launch(self):
        """Claim the lease and start FFmpeg; returns an outcome if the run must not go on."""
        claimed_at = self.clock()
        if not self.record.cas_stream(status__in=[Stream.Status.STARTING], heartbeat_at=timezone.now()):
            return self.FENCED
        self.lease.renewed(claimed_at)
        if self.await_predecessor() and not self.renew():
            return self.FENCED
        self.group = run_group(self.stream.pk)
        if self.group:
            self.group.remove()  # a group under this run's id can only be a stale one
        self.start_ffmpeg()
        return None

    def await_predecessor(self):
        """A channel moved off a live host (drain --migrate) is still published there until
        that supervisor sees it was fenced, within a heartbeat: start only once it has
        stopped, so two hosts never publish one channel at once. A lost host's run is
        already ended by the sweep, so this costs nothing on failover. True if it waited."""
        deadline = self.clock() + settings.RETROVUE_LEASE_TTL_SECONDS
        older = Stream.objects.filter(channel_id=self.channel.pk, generation__lt=self.generation,
                                      status__in=Stream.ACTIVE)
        waited = False
        while self.record.write(older.exists) and self.clock() < deadline:
            waited = True
            self.wait(timeout=0.05)
        return waited

    def start_ffmpeg(self):
        """Start the run's output stage and the engine that feeds it, from the channel's
        configuration as it is now (an operator's restart applies a changed config)."""
        self.restart_at = self.up_since = None
        self.refresh_plan()
        start = begin_output(self.plan.hls_dir, self.hls_reached, fresh=self.ffmpeg is None)
        self.plan = replace(self.plan, hls_start=start, cgroup_procs=self.confine())
        # An on-demand channel's first start bursts the last segment's worth of its timeline: its
        # viewer is waiting for the first HLS segment, which ends on the first keyframe after it.
        burst = TUNE_BURST_SECONDS if self.channel.on_demand and self.ffmpeg is None else 0.0
        run, run.feeder = self.start_run(self.plan, self.channel.pk, self.spawn_output, lease=self.lease,
                                         run_id=self.stream.pk, host=self.stream.host, burst=burst)
        self.ffmpeg = run
        self.reported_running = False
        self.record.write(self.record.cas_stream, argv=self.argv, pid=self.ffmpeg.pid)
        self.next_heartbeat = min(self.next_heartbeat, self.clock() + settings.RETROVUE_HEARTBEAT_SECONDS)

    def refresh_plan(self):
        """Re-read the channel's configuration; while the database is away, keep the last plan."""
        channel = self.record.write(lambda: Channel.objects.select_related("config").get(pk=self.channel.pk))
        if channel is not None:
            self.channel, self.plan = channel, channel_plan(channel)
            self.policy = channel.config.failover()
        self.plan.write_slate_text()

    def confine(self):
        """Hold the run's control group to what the channel reserves now (a restart applies a
        changed reservation); the files its processes join. While the database is away the
        limits set last stay."""
        if self.group is None:
            return ()
        need = self.record.write(channel_need, self.channel)
        if need is not None:
            self.group.apply(need.cpu_percent, need.memory_mb, allowance=not self.stalled_under_cap)
        return self.group.procs

    def spawn_output(self, argv, pass_fds=()):
        self.argv = argv
        return FFmpegRun(argv, str(self.plan.channel_dir), self.errors, self.wake, stdin=subprocess.PIPE,
                         pass_fds=pass_fds, join=self.plan.cgroup_procs)

    def on_exit(self):
        """FFmpeg died (or gave up and is dying): fail if this run never got going, else restart
        it per the policy."""
        code = self.ffmpeg.stop()  # reaps it and drains stderr, so the reason holds its last words
        reason = self.check_memory_kills() or self.ffmpeg.error_tail() or f"ffmpeg exited with code {code}"
        if not self.ever_ran:
            self.failure_reason = f"ffmpeg could not start (exit {code}): {reason}"
            return self.FAILED
        return self.schedule_restart(f"ffmpeg exited with code {code}: {reason}")

    def restore_legs(self):
        """FFmpeg dropped an output leg (output_legs.py) and airs on the others; a new output
        stage brings it back once it could work again, as the restart policy allows. A lost leg
        never fails the channel: while the policy allows no restart it airs on what works."""
        lost = self.ffmpeg.lost_legs
        if self.restarts_left() <= 0 or not all(leg_can_resume(leg, self.plan) for leg in lost):
            return
        self.ffmpeg.stop()
        self.schedule_restart(f"restoring its {' and '.join(lost)} output, lost: {'; '.join(lost.values())}")

    def on_stuck(self, why):
        """Alive but not producing: kill it (SIGKILL reaches a frozen process) and restart."""
        self.ffmpeg.kill()
        if self.group and self.group.limits and (held_back := self.group.held_back()):
            why, self.stalled_under_cap = why + held_back, True
        self.record.write(raise_alert, Alert.Kind.STALL, f"{self.channel}: {why}",
                      channel_id=self.channel.pk, severity=Alert.Severity.WARNING)
        if not self.ever_ran:
            self.failure_reason = f"ffmpeg {why}: {self.ffmpeg.error_tail()}"
            return self.FAILED
        return self.schedule_restart(why)

    def on_lease_lapsed(self, now):
        """The lease was not renewed in time (this host was frozen, starved, or its database
        calls hung), so the pacer holds its output. If the run is still ours, renewing lets it go
        on (a pause, not a restart); while the database cannot say, it stays held; if the channel
        has moved, kill the output stage without letting it flush and record when this run really
        stopped publishing."""
        lapsed_for = now - self.lease.until
        last_frame = self.lease.last_admitted
        stopped_at = timezone.now() - timedelta(seconds=now - (last_frame if last_frame is not None else now))
        why = f"lease lapsed for {lapsed_for:.1f}s (host frozen or stalled)"
        renewed = self.renew()
        if renewed is not False:
            self.ffmpeg.held()
            log.warning("%s: %s; %s", self.channel, why, "renewed, the output goes on" if renewed
                        else "the output is held until the database answers")
            return None
        self.ffmpeg.kill()
        self.fenced_at = (f"{why}: fenced, its output stopped at {stopped_at.isoformat(timespec='milliseconds')}",
                          stopped_at)
        log.warning("%s: %s", self.channel, self.fenced_at[0])
        return self.FENCED

    def restarts_left(self):
        """Restarts the policy allows now: none with auto_restart off, else max_restart_attempts
        less the consecutive attempts; a run that stayed up RETROVUE_RESTART_WINDOW_SECONDS
        starts the count again."""
        if self.up_since is not None and self.clock() - self.up_since >= settings.RETROVUE_RESTART_WINDOW_SECONDS:
            self.attempts = 0
        return self.policy["max_restart_attempts"] - self.attempts if self.policy["auto_restart"] else 0

    def schedule_restart(self, reason):
        """Restart (at once the first time, then after restart_delay_seconds), counting the attempt; with none left (or
        auto_restart off) fail. Giving up is an end state: the channel stays in ERROR with a
        RESTART_LOOP alert, and beat leaves it there until an operator starts it."""
        now = self.clock()
        # The policy as it is now (a system default may have changed), the last one while the database is away.
        self.policy = self.record.write(lambda: ChannelConfig.objects.get(channel_id=self.channel.pk).failover()) \
            or self.policy
        if not self.policy["auto_restart"]:
            self.failure_reason = f"{reason} (auto_restart is off)"
            return self.FAILED
        if self.restarts_left() <= 0:
            self.failure_reason = f"{GAVE_UP} {self.attempts} restart attempts: {reason}"
            self.record.write(raise_alert, Alert.Kind.RESTART_LOOP, f"{self.channel}: {self.failure_reason}",
                          channel_id=self.channel.pk, severity=Alert.Severity.CRITICAL,
                          value=self.attempts, threshold=self.policy["max_restart_attempts"])
            return self.FAILED
        self.attempts += 1
        self.restart_count += 1
        # The first restart is at once (a crash is back on air in ~100 ms); one that follows a
        # restart that did not hold waits restart_delay_seconds, so a loop does not spin.
        delay = 0.0 if self.attempts == 1 else float(self.policy["restart_delay_seconds"])
        log.warning("%s: %s; restart %d in %gs", self.channel, reason, self.restart_count, delay)
        self.restart_at = now + delay
        self.record.write(self.record.cas_stream, status=Stream.Status.STARTING, restart_count=self.restart_count,
                      status_reason=reason)
        self.record.write(self.record.cas_channel, status=Channel.Status.STARTING,
                      status_reason=f"restarting after: {reason}")
        self.wake.set()  # no delay: restart at the next step
        return None

    def restart_now(self):
        """An operator's restart: replace FFmpeg at once, not counted against the policy. The
        run's lease is renewed with the count, after the stop: a slow stop must not leave the
        new output stage a lapsed lease."""
        self.ffmpeg.stop()
        self.restart_count += 1
        if self.renew(restart_count=self.restart_count, restart_requested=False) is False:
            return self.FENCED
        self.start_ffmpeg()
        return None

    # --- database -------------------------------------------------------------------------------
    def renew(self, only_if=None, **changes):
        """Renew the lease (writing `changes` with it), counted from just before the write;
        True, False (the run is no longer ours, or `only_if` did not hold) or None (the database
        is away)."""
        attempted_at = self.clock()
        renewed = self.record.write(self.record.cas_stream, only_if, heartbeat_at=timezone.now(), **changes)
        if renewed:
            self.lease.renewed(attempted_at)
        elif renewed is None:
            self.lease.kept(attempted_at)
        return renewed

    def mark_running(self):
        if self.group and self.group.limits:
            self.group.settle()  # on air: its own CPU cap from now on
        now = timezone.now()
        wrote = self.record.write(self.record.cas_stream, status__in=[Stream.Status.STARTING],
                              status=Stream.Status.RUNNING, heartbeat_at=now, status_reason="",
                              **({} if self.ever_ran else {"started_at": now}))
        if wrote is None:
            return  # retried at the next step
        self.ever_ran = self.reported_running = True
        self.up_since = self.clock()
        if self.ffmpeg.feeder:
            self.ffmpeg.feeder.output_began(self.ffmpeg.first_output_at)
        self.record.write(self.record.cas_channel, only_from=[Channel.Status.STARTING], status=Channel.Status.RUNNING,
                      status_reason="")
        self.record.write(clear_alert, Alert.Kind.STALL, channel_id=self.channel.pk)
        self.record.write(clear_alert, Alert.Kind.RESTART_LOOP, channel_id=self.channel.pk)
        log.info("%s is running on %s (pid %s)", self.channel, self.stream.host, self.ffmpeg.pid)

    def sample(self, health):
        """Buffer a coarse metrics sample every RETROVUE_METRICS_SAMPLE_SECONDS."""
        if not self.reported_running or self.clock() < self.next_sample:
            return
        self.next_sample = self.clock() + settings.RETROVUE_METRICS_SAMPLE_SECONDS
        self.record.add_sample(health, self.restart_count)

    def heartbeat(self):
        """Renew the lease, writing the health, in one conditional update that holds while
        nothing changed (the channel still ours and meant to run, no restart asked); only when
        it does not hold is the row read to learn why. The renewal counts from just before its
        write (the row's heartbeat_at is taken after): reading the health is not held against it."""
        self.next_heartbeat = self.clock() + settings.RETROVUE_HEARTBEAT_SECONDS
        health = self.ffmpeg.health() if self.restart_at is None else {}
        if health:
            self.read_output(health)
            self.read_confinement(health)
        self.sample(health)
        close_old_connections()
        written = {"health_metrics": health, "error_log": list(self.errors)}
        steady = {"channel__generation": self.generation, "channel__desired_state": Channel.Desired.RUNNING,
                  "channel__switch_requested_at": None, "restart_requested": False}
        renewed = self.renew(only_if=steady, **written)
        if renewed is None:
            return None  # database away: keep streaming, try again next beat
        if not renewed:
            row = self.record.write(lambda: Stream.objects.filter(pk=self.stream.pk).values(
                "restart_requested", "channel__desired_state", "channel__generation",
                "channel__switch_requested_at").first())
            if row is None and self.record.down_since is not None:
                return None
            if row is None or row["channel__generation"] != self.generation:
                return self.FENCED
            if row["channel__desired_state"] != Channel.Desired.RUNNING:
                return self.STOPPED
            if self.renew(**written) is False:
                return self.FENCED
            if row["channel__switch_requested_at"]:  # its wake-up was lost (or is on its way)
                self.switch_asked()
            if row["restart_requested"] and self.restart_at is None:
                self.record.flush_samples()
                return self.restart_now()
        self.record.flush_samples()
        return None

    def switch_asked(self):
        """Tell the engine a switch is stored for its channel; False if no engine runs."""
        feeder = self.ffmpeg and self.ffmpeg.feeder
        if feeder:
            feeder.switch_asked()
        return bool(feeder)

    def read_output(self, health):
        """What the HLS leg wrote, read once a beat: bitrate (where FFmpeg reports none), how far
        its numbering got, and whether it is failing."""
        found = window(self.plan.hls_dir)
        if health.get("bitrate_kbps") is None:
            health["bitrate_kbps"] = output_bitrate_kbps(found)
        health["hls_next"] = self.hls_reached = max(self.hls_reached, next_sequence(found))
        self.check_output(health, found)

    def check_output(self, health, found):
        """Each output leg, as FFmpeg says it dropped one, and the HLS leg as its files show (FFmpeg
        is silent when those writes fail): an OUTPUT_FAILED alert while one fails, noted in the
        health (the verdict degrades)."""
        hls = leg_problem(found, self.plan.hls_dir, self.clock() - self.ffmpeg.started_at, time.time())
        lost = self.ffmpeg.lost_legs
        problem = "; ".join([f"{leg} output failing: {why}" for leg, why in lost.items()] +
                            ([f"HLS output failing: {hls}"] if hls and "HLS" not in lost else []))
        if problem:
            health["output_problem"] = problem
            self.record.write(raise_alert, Alert.Kind.OUTPUT_FAILED, f"{self.channel}: {problem}",
                          channel_id=self.channel.pk, severity=Alert.Severity.CRITICAL)
        elif self.output_problem:
            self.record.write(clear_alert, Alert.Kind.OUTPUT_FAILED, channel_id=self.channel.pk)
        self.output_problem = problem

    def read_confinement(self, health):
        """What the kernel counted in the run's control group (confinement.RunGroup.report): the
        verdict names its own CPU cap when that made it slow; an OOM alert clears a restart
        window after the last kill."""
        if self.group is None or self.group.limits is None:
            return
        counted = self.group.stats()  # one read of the group's files a beat
        health.update(self.group.report(counted))
        self.check_memory_kills(counted)
        if self.last_oom_at is not None and self.clock() - self.last_oom_at > settings.RETROVUE_RESTART_WINDOW_SECONDS:
            self.last_oom_at = None
            self.record.write(clear_alert, Alert.Kind.OOM, channel_id=self.channel.pk)

    def check_memory_kills(self, counted=None):
        """The kernel killed a process of this run for its memory limit: raise OOM (with the
        limit and the peak) and note it in the run's log; returns the reason."""
        if not (self.group and self.group.limits):
            return None
        counted = counted or self.group.stats()
        reason = self.group.new_kill(counted)
        if not reason:
            return None
        self.last_oom_at = self.clock()
        self.errors.append({"at": timezone.now().isoformat(), "line": reason})
        log.warning("%s: %s", self.channel, reason)
        self.record.write(raise_alert, Alert.Kind.OOM, f"{self.channel}: {reason}", channel_id=self.channel.pk,
                      severity=Alert.Severity.CRITICAL, value=counted["memory_peak_mb"],
                      threshold=self.group.limits[1])
        return reason

    def finish(self, outcome):
        """Stop FFmpeg, then record how the run ended (only where the run is still ours); its
        control group goes with it."""
        code = self.ffmpeg.stop() if self.ffmpeg else None
        self.check_memory_kills()
        if self.group:
            self.group.remove()
        reason, stopped_at = self.fenced_at or ("superseded", timezone.now())
        final = {"ended_at": stopped_at, "exit_code": code, "error_log": list(self.errors)}
        if outcome == self.FAILED:
            log.error("%s failed: %s", self.channel, self.failure_reason)
            writes = [lambda: self.record.cas_stream(status=Stream.Status.ERROR, status_reason=self.failure_reason,
                                              **final),
                      lambda: self.record.cas_channel(status=Channel.Status.ERROR, status_reason=self.failure_reason)]
        elif outcome == self.FENCED:
            # The sweep may have ended the run already, at the latest time it could have published:
            # what this host knows is when it really stopped.
            writes = [lambda: self.record.cas_stream(status=Stream.Status.STOPPED, status_reason=reason, **final),
                      lambda: Stream.objects.filter(pk=self.stream.pk, generation=self.generation,
                                                    status=Stream.Status.ERROR, ended_at__gt=stopped_at)
                      .update(ended_at=stopped_at, status_reason=Concat("status_reason", Value(f"; {reason}")))]
        else:
            reason = "stopped" if outcome == self.STOPPED else f"host {self.stream.host} shut down"
            writes = [lambda: self.record.cas_stream(status=Stream.Status.STOPPED, status_reason=reason, **final),
                      lambda: self.record.cas_channel(status=Channel.Status.STOPPED,
                                               status_reason="" if outcome == self.STOPPED else reason)]
        writes.append(self.record.flush_samples)
        writes.append(lambda: release_run(self.stream.pk))  # a fenced run's reservation moved on
        self.record.write_final(writes, 2.0 if outcome == self.SHUTDOWN_ else FINAL_WRITE_RETRY_SECONDS, self.wait)
