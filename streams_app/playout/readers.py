"""A segment's reading process: one short-lived FFmpeg, started ahead of its air time, whose
output waits in its pipe until the pacer takes it. Its CPU time is kept when it ends, so a
channel's cost counts every process it ran."""
import select
import subprocess

import psutil

from .. import process
from .pipes import enlarge


class SourceProcess:
    def __init__(self, argv, pass_fds=()):
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, pass_fds=pass_fds, bufsize=0,
                                     start_new_session=True,
                                     # Readers run ahead of air time: let the output stage go first.
                                     preexec_fn=process.die_with_parent(niceness=5))
        self.fd = self.proc.stdout.fileno()
        enlarge(self.fd, 1 << 20)
        self.cpu_seconds = 0.0  # what it spent, once closed

    @property
    def pid(self):
        return self.proc.pid

    def has_output(self):
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
        try:
            times = psutil.Process(self.proc.pid).cpu_times()
            self.cpu_seconds = times.user + times.system
        except psutil.Error:
            pass
        process.discard(self.proc)
