"""One FFmpeg process and what it says: progress blocks, stderr lines, CPU and memory.

Reader threads turn FFmpeg's `-progress` output into the latest block and note when the output
time last advanced (the stall clock); every event that needs the supervisor's attention (first
progress, exit) sets the supervisor's wake event.
"""
import subprocess
import threading
import time

import psutil
from django.utils import timezone

from . import process
from .output_legs import failed_leg
from .progress import ProgressParser


# FFmpeg's last words when it gives up on its outputs: it is exiting, but its cleanup can wait
# forever on an input thread blocked in a pipe the engine still holds open.
ABORTING = ("Error initializing output stream", "Error while opening encoder", "Conversion failed!")


class FFmpegRun:
    def __init__(self, argv, cwd, errors, wake, stdin=subprocess.DEVNULL, pass_fds=(), join=()):
        self.errors = errors  # shared rolling log: it outlives restarts
        self.wake = wake
        self.feeder = None  # the playout engine's pacer writing into this process, stopped with it
        self.progress = {}
        self.first_progress_at = None
        # Wall-clock times of its first progress (its output has begun) and of its exit.
        self.first_output_at = self.exited_at = None
        self.aborted = False  # it said one of ABORTING: treat it as exited
        self.lost_legs = {}  # output legs FFmpeg dropped (output_legs.py): leg -> its reason
        self.started_at = time.monotonic()
        self.last_advance_at = self.started_at
        self.proc = process.spawn(argv, cwd=cwd, stdin=stdin, pass_fds=pass_fds, join=join)
        self.pid = self.proc.pid
        self.ps = psutil.Process(self.pid)
        self.cpu_mark = (time.monotonic(), 0.0)  # (when, CPU seconds of every process) at the last health
        self._stderr = threading.Thread(target=self._read_errors, daemon=True)
        self._stderr.start()
        threading.Thread(target=self._read_progress, daemon=True).start()

    @property
    def producing(self):
        return self.first_progress_at is not None

    def exit_code(self):
        return self.proc.poll()

    def stalled_for(self):
        """Seconds since the output time last advanced (0 until the first progress)."""
        return time.monotonic() - self.last_advance_at if self.producing else 0.0

    def held(self):
        """Its input was held back (a lapsed lease, now renewed): the stall clock starts again,
        as a paused feed is not a stalled FFmpeg."""
        self.last_advance_at = time.monotonic()

    def _read_progress(self):
        parser = ProgressParser()
        for line in self.proc.stdout:
            block = parser.feed(line)
            if not block:
                continue
            previous, self.progress = self.progress, block
            if any((block.get(key) or 0) > (previous.get(key) or 0) for key in ("out_time_s", "frame")):
                self.last_advance_at = time.monotonic()
            if self.first_progress_at is None:
                self.first_progress_at = self.last_advance_at = time.monotonic()
                self.first_output_at = timezone.now()
                self.wake.set()
        self.proc.wait()  # EOF comes with the exit: reap it so the supervisor sees the code
        self.exited_at = timezone.now()
        self.wake.set()

    def _read_errors(self):
        for line in self.proc.stderr:
            line = line.rstrip()
            if line:
                self.errors.append({"at": timezone.now().isoformat(), "line": line})
                if any(words in line for words in ABORTING):
                    self.aborted = True
                    self.wake.set()
                if lost := failed_leg(line):
                    self.lost_legs[lost[0]] = lost[1]
                    self.wake.set()

    def error_tail(self, lines=3):
        return " | ".join(entry["line"] for entry in list(self.errors)[-lines:])

    def processes(self):
        """Every live process of the run: the output stage and the readers feeding it."""
        return [self.ps, *(self.feeder.mode.reader_processes() if self.feeder else ())]

    def health(self):
        """The latest progress with the CPU (percent of one core, since the last call) and
        memory of every process of the run, readers included, and how many there are."""
        metrics = dict(self.progress)
        cpu_seconds, rss, count = self.feeder.mode.spent_cpu if self.feeder else 0.0, 0, 0
        for proc in self.processes():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu_seconds += times.user + times.system
                    rss += proc.memory_info().rss
                    count += 1
            except psutil.Error:
                continue
        now = time.monotonic()
        last_at, last_cpu = self.cpu_mark
        if count:
            self.cpu_mark = (now, cpu_seconds)
            if now > last_at:
                metrics["cpu_percent"] = round(max(0.0, cpu_seconds - last_cpu) / (now - last_at) * 100, 1)
            metrics["memory_mb"] = round(rss / 2**20, 1)
            metrics["processes"] = count
        metrics["pid"] = self.pid
        if self.feeder:
            metrics["on_air"] = self.feeder.on_air()
        metrics["updated_at"] = timezone.now().isoformat()
        return metrics

    def stop(self, grace=3.0):
        """Stop the feeder, terminate the process group; returns the exit code once stderr is
        drained. With a grace the feeder's pipes are closed first (once it has stopped writing
        to them): the output stage reads their end and exits at once, where SIGTERM alone would
        wait out the grace with it blocked on its input. Without one nothing is flushed."""
        if self.feeder:
            self.feeder.stop(output_ended_at=self.exited_at)
            if grace:
                self.feeder.join(timeout=1.0)  # between two frames it ends at once
                if not self.feeder.is_alive():
                    self.feeder.mode.close()
        code = process.terminate(self.proc, grace=grace)
        if self.feeder:
            self.feeder.close()
        self._stderr.join(timeout=0.5)
        return code

    def kill(self):
        return self.stop(grace=0.0)
