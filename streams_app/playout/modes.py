"""What the two modes share: pipes with large buffers and whole writes and reads, and the reading
processes they start and keep count of."""
import array
import contextlib
import fcntl
import os
import select
import subprocess
import termios
import threading

import psutil

from .. import process


def enlarge(fd, size):
    with contextlib.suppress(OSError):  # the system limit is lower: a smaller buffer only means less read-ahead
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


def big_pipe(size):
    read_fd, write_fd = os.pipe()
    enlarge(write_fd, size)
    return read_fd, write_fd


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exact(fd, nbytes):
    """`nbytes` from a pipe, or None if it ends first (the writer died or ran short)."""
    chunks, wanted = [], nbytes
    while wanted:
        chunk = os.read(fd, wanted)
        if not chunk:
            return None
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


def close_quietly(*fds):
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


class Mode:
    """One run's way of reading segments and writing them to its output stage, which its
    `spawn_output(spawn)` starts (see `playout.start`)."""

    slate_piece = None  # the longest slate segment it airs from one reader (None: any)
    lead = 0.0  # seconds a unit is written ahead of its time: the output stage's own latency
    held_frames = 0  # frames at a slot's end that may hold the last picture rather than air

    def __init__(self, plan, has_audio=lambda segment: True):
        self.plan, self.fmt = plan, plan.fmt
        self.has_audio = has_audio  # whether a segment's source has an audio stream
        self.live = set()  # readers not yet closed
        self.spent_cpu = 0.0  # CPU seconds of the readers already closed
        self.lock = threading.Lock()
        self.fds = []  # our ends of the output stage's input pipes

    def reader_processes(self):
        with self.lock:
            return [reader.ps for reader in self.live]

    def ahead(self, before, unit):
        """How much of a frame's `unit` to write as soon as the frame `before` has gone (see CopyMode)."""
        return 0

    def flush(self):
        pass

    def close(self):
        """After the output stage is gone: close our ends of its pipes."""
        fds, self.fds = self.fds, []
        close_quietly(*fds)


class SourceProcess:
    """A segment's reading process: one short-lived FFmpeg, started ahead of its air time,
    whose output waits in its pipe until the pacer takes it. It counts itself in its mode's
    readers, and its CPU time in the mode's when it ends: a channel's cost counts every process."""

    def __init__(self, mode, argv, pass_fds=(), own_fds=()):
        self.mode = mode
        self.own_fds = own_fds  # our ends of its other pipes, closed with it
        self.closing = threading.Lock()
        # Readers run ahead of air time: the output stage goes first.
        self.proc = process.spawn(argv, pass_fds=pass_fds, text=False, niceness=5, join=mode.plan.cgroup_procs)
        self.ps = psutil.Process(self.proc.pid)  # one handle for every heartbeat that counts it
        self.fd = self.proc.stdout.fileno()
        enlarge(self.fd, 1 << 20)
        with mode.lock:
            mode.live.add(self)

    def ready(self):
        """True once it has output waiting (it has started)."""
        return self.waiting() > 0

    def waiting(self):
        found = array.array("i", [0])
        fcntl.ioctl(self.fd, termios.FIONREAD, found)
        return found[0]

    def first_output(self, timeout):
        """Wait up to `timeout` s for its output without taking any: True once some is waiting,
        False if it ended without a byte (it could not read its source), None if still silent."""
        if not select.select([self.fd], [], [], timeout)[0]:
            return None
        return self.waiting() > 0

    def error_text(self):
        """What it said on stderr: asked once its output ended, so it is exiting (or it is
        stuck, and there is nothing to tell yet)."""
        try:
            self.proc.wait(timeout=1.0)
            said = self.proc.stderr.read().decode(errors="replace").strip()[-300:]
        except subprocess.TimeoutExpired:
            return "no output"
        except (OSError, ValueError):
            said = ""
        return said or f"exited with code {self.proc.returncode}"

    def close(self):
        """Stop it and release its pipes, once (the pacer and its clean-up may both ask)."""
        with self.closing:
            if self.proc.stdout.closed:
                return
            try:
                times = self.ps.cpu_times()
                cpu_seconds = times.user + times.system
            except psutil.Error:
                cpu_seconds = 0.0
            process.terminate(self.proc, grace=0.0)  # it holds nothing worth flushing
            self.proc.stdout.close()
            self.proc.stderr.close()
            close_quietly(*self.own_fds)
        with self.mode.lock:
            self.mode.live.discard(self)
            self.mode.spent_cpu += cpu_seconds
