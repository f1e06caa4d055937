"""What the two modes share: the output stage they spawn, the reading processes they start and
keep count of."""
import select
import subprocess
import threading

import psutil

from .. import process
from . import pipes


class Mode:
    """One run's way of reading segments and writing them to its output stage."""

    slate_piece = None  # the longest slate segment it airs from one reader (None: any)
    lead = 0.0  # seconds a unit is written ahead of its time: the output stage's own latency

    def __init__(self, plan):
        self.plan, self.fmt = plan, plan.fmt
        self.live = set()  # readers not yet closed
        self.spent_cpu = 0.0  # CPU seconds of the readers already closed
        self.lock = threading.Lock()
        self.fds = []  # our ends of the output stage's input pipes

    def started(self, reader):
        with self.lock:
            self.live.add(reader)
        return reader

    def closed(self, reader):
        with self.lock:
            if reader in self.live:
                self.live.discard(reader)
                self.spent_cpu += reader.cpu_seconds

    def reader_processes(self):
        with self.lock:
            return [reader.ps for reader in self.live]

    def spawn_output(self, spawn):
        """Start the output stage with `spawn(argv, stdin_pipe, pass_fds)` and keep our end
        of its input; returns what `spawn` returned."""
        raise NotImplementedError

    def flush(self):
        pass

    def close(self):
        """After the output stage is gone: close our ends of its pipes."""
        fds, self.fds = self.fds, []
        pipes.close_quietly(*fds)


class SourceProcess:
    """A segment's reading process: one short-lived FFmpeg, started ahead of its air time,
    whose output waits in its pipe until the pacer takes it. Its CPU time is kept when it ends,
    so a channel's cost counts every process it ran."""

    def __init__(self, mode, argv, pass_fds=(), own_fds=()):
        self.mode = mode
        self.own_fds = list(own_fds)  # our ends of its other pipes, closed with it
        self.closing = threading.Lock()
        # Readers run ahead of air time: the output stage goes first.
        self.proc = process.spawn(argv, pass_fds=pass_fds, text=False, niceness=5)
        self.ps = psutil.Process(self.proc.pid)  # one handle for every heartbeat that counts it
        self.fd = self.proc.stdout.fileno()
        pipes.enlarge(self.fd, 1 << 20)
        self.cpu_seconds = 0.0  # what it spent, once closed

    def ready(self):
        """True once it has output waiting (it has started)."""
        return bool(select.select([self.fd], [], [], 0)[0])

    def error_text(self):
        """What it said on stderr: asked once its output ended, so it is exiting (or it is
        stuck, and there is nothing to tell yet)."""
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "no output"
        try:
            return self.proc.stderr.read().decode(errors="replace").strip()[-300:] or \
                f"exited with code {self.proc.returncode}"
        except (OSError, ValueError):
            return f"exited with code {self.proc.returncode}"

    def close(self):
        """Stop it and release its pipes, once (the pacer and its clean-up may both ask)."""
        with self.closing:
            if self.proc.stdout.closed:
                return
            try:
                times = self.ps.cpu_times()
                self.cpu_seconds = times.user + times.system
            except psutil.Error:
                pass
            process.discard(self.proc)
            fds, self.own_fds = self.own_fds, []
            pipes.close_quietly(*fds)
        self.mode.closed(self)
