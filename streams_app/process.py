"""Spawning and stopping FFmpeg so that no process outlives its supervisor.

Each FFmpeg runs in its own process group (so a stop reaches anything it forks) with a
parent-death signal: if the worker dies, even by SIGKILL, the kernel kills FFmpeg too; and in its
run's control group (resources_app/confinement.py), joined before exec so it never runs outside.
"""
import ctypes
import os
import signal
import subprocess


PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(niceness=0, join=()):
    """A preexec_fn: the child gets SIGKILL when this process (its forking thread) dies, runs
    `niceness` steps below its parent's CPU priority, and joins the control groups whose
    cgroup.procs files `join` names (a failure there fails the spawn: nothing runs unconfined)."""
    parent_pid = os.getpid()

    def setup():
        # Runs in the child between fork and exec: async-signal-safe calls only.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if niceness:
            os.nice(niceness)
        for procs in join:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def spawn(argv, cwd=None, stdin=subprocess.DEVNULL, pass_fds=(), text=True, niceness=0, join=()):
    """Every FFmpeg of a channel: its own process group, dying with its parent, in the control
    groups of `join`. `text` for an output stage read line by line (progress, errors), binary
    and unbuffered for a reader."""
    return subprocess.Popen(argv, stdin=stdin, pass_fds=pass_fds, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=cwd, start_new_session=True, preexec_fn=die_with_parent(niceness, join), text=text,
                            bufsize=1 if text else 0)


def terminate(proc, grace=3.0):
    """SIGTERM the process group (FFmpeg closes its outputs cleanly), SIGKILL after `grace` s
    (at once with no grace)."""
    if proc.poll() is not None:
        return proc.returncode
    steps = ((signal.SIGTERM, grace),) if grace else ()  # no grace: nothing may be flushed
    for sig, wait in (*steps, (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()
