"""Control groups that hold each run of a channel to its resource_limits.

Why: admission control reserves CPU and memory per channel, but only the kernel can keep one
runaway encode from starving its neighbours. Every process of a run (output stage, decoders,
readers) joins the run's group between fork and exec, so nothing escapes it; its CPU is capped at
`max_cpu_percent` of one core (a CFS quota, the unit reservations count in; never below
RETROVUE_MIN_CPU_CAP_PERCENT, as each reader's start is a burst of CPU that a tighter cap turns
into a late segment; up to a core from a start until its first output) and weighted by it,
and its memory at `max_memory_mb` with no swap, so an out-of-memory kill stays inside the channel.

A run's group is `<hierarchy>/<RETROVUE_CGROUP_BASE>/<host>/run-<stream id>` in every hierarchy
holding a controller we use: one cgroup v2 tree, or the v1 cpu, cpuacct and memory ones. Where
neither can be written (or RETROVUE_RESOURCE_LIMITS=off) runs go unconfined and the host says so.
"""
import errno
import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings

log = logging.getLogger("retrovue.confinement")

# The cap holds per half second rather than per 100 ms (the kernel's default): a reader starting
# or a large keyframe is a burst of CPU that would otherwise hold the whole channel's output back
# within the period, while a run over its cap is held to at most 1.05 times it over any 10 s.
CPU_PERIOD_US = 500_000
MIN_CPU_QUOTA_US = 1_000  # the kernel's floor
START_CPU_PERCENT = 100  # what a run may use until its first output (then its own cap)
V1_CONTROLLERS = ("cpu", "cpuacct", "memory")
RUN_GROUP = re.compile(r"^run-(\d+)$")


@dataclass(frozen=True)
class Support:
    """Whether this host can confine runs, and how (or why not), as the host record shows it."""

    enforced: bool
    note: str
    version: int = 0
    roots: tuple = ()  # ((controllers, hierarchy mount point), ...)


def _write(path, value):
    Path(path).write_text(str(value))


def _read(path):
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _keyed(text):
    """`key value` lines (cpu.stat, memory.events, memory.oom_control) as a dict of ints."""
    pairs = (line.split() for line in text.splitlines())
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2 and pair[1].lstrip("-").isdigit()}


def _mounts():
    """(fstype, mount point, super options) of every cgroup hierarchy this process sees."""
    for line in _read("/proc/self/mountinfo").splitlines():
        fields, _, tail = line.partition(" - ")
        fstype, _source, options = (tail.split() + ["", "", ""])[:3]
        if fstype in ("cgroup", "cgroup2"):
            yield fstype, Path(fields.split()[4]), set(options.split(","))


def _hierarchies():
    """The hierarchies to use: one v2 tree with cpu and memory, else the v1 ones holding them."""
    v1, v2 = {}, None
    for fstype, point, options in _mounts():
        if fstype == "cgroup2":
            if {"cpu", "memory"} <= set(_read(point / "cgroup.controllers").split()):
                v2 = point
        else:
            for controller in options & set(V1_CONTROLLERS):
                v1.setdefault(point, set()).add(controller)
    if v2 is not None:
        return 2, ((frozenset({"cpu", "memory"}), v2),)
    found = set().union(*v1.values()) if v1 else set()
    if {"cpu", "memory"} <= found:
        return 1, tuple((frozenset(held), point) for point, held in v1.items())
    return 0, ()


def host_folder(root):
    return root / settings.RETROVUE_CGROUP_BASE / re.sub(r"[^A-Za-z0-9_.-]", "_", settings.RETROVUE_HOST)


def _enable_v2(root, folder):
    """cgroup v2 hands a controller to a group only through every ancestor's subtree_control."""
    path = root
    for part in folder.relative_to(root).parts:
        _write(path / "cgroup.subtree_control", "+cpu +memory")
        path = path / part
        path.mkdir(exist_ok=True)
    _write(path / "cgroup.subtree_control", "+cpu +memory")


@lru_cache(maxsize=1)
def support():
    """Probe once per process: create this host's folder and a trial group in each hierarchy."""
    if settings.RETROVUE_RESOURCE_LIMITS == "off":
        return Support(False, "limits not enforced: RETROVUE_RESOURCE_LIMITS=off")
    version, roots = _hierarchies()
    if not version:
        return Support(False, "limits not enforced: no cgroup v2 tree with cpu and memory, nor v1 cpu and memory "
                              "hierarchies, is mounted")
    try:
        for _held, root in roots:
            folder = host_folder(root)
            if version == 2:
                _enable_v2(root, folder)
            else:
                folder.mkdir(parents=True, exist_ok=True)
            trial = folder / f"probe-{os.getpid()}"
            trial.mkdir(exist_ok=True)
            trial.rmdir()
    except OSError as exc:
        return Support(False, f"limits not enforced: cgroup v{version} is not writable here ({exc})")
    return Support(True, f"limits enforced with cgroup v{version}", version, roots)


class RunGroup:
    """One run's control group (a folder in each hierarchy) and what the kernel counts in it."""

    def __init__(self, name, found=None):
        self.found = found or support()
        self.version = self.found.version
        self.dirs = {}  # controller -> its folder for this run
        for held, root in self.found.roots:
            folder = host_folder(root) / name
            for controller in held:
                self.dirs[controller] = folder
        self.folders = tuple(dict.fromkeys(self.dirs.values()))
        self.limits = None  # (CPU cap in % of a core, memory limit in MB) once applied
        self.kills_seen = 0  # out-of-memory kills already reported
        self.throttled_mark = 0.0  # throttled CPU seconds at the last report

    @property
    def procs(self):
        """The files a process joins the group through (written by spawn, in the child)."""
        return tuple(str(folder / "cgroup.procs") for folder in self.folders)

    def apply(self, cpu_percent, memory_mb, allowance=True):
        """Create the group if needed and set its limits (at each start: a restart applies the
        channel's configuration as it is then). With the start `allowance`, CPU may reach
        START_CPU_PERCENT until `settle`: a start is on the path to a viewer's first bytes, a
        crash's recovery too (none for a run that stalled under its cap: it would get a core
        at each restart)."""
        for folder in self.folders:
            folder.mkdir(exist_ok=True)
        cpu_percent = max(float(cpu_percent), settings.RETROVUE_MIN_CPU_CAP_PERCENT)
        memory = int(memory_mb) * 2**20
        cpu, mem = self.dirs["cpu"], self.dirs["memory"]
        if self.version == 2:
            _write(cpu / "cpu.weight", min(10_000, max(1, round(cpu_percent))))
            _write(mem / "memory.max", memory)
            if (mem / "memory.swap.max").exists():  # absent where swap accounting is off
                _write(mem / "memory.swap.max", 0)
        else:
            _write(cpu / "cpu.cfs_period_us", CPU_PERIOD_US)
            _write(cpu / "cpu.shares", max(2, round(1024 * cpu_percent / 100)))
            self._limit_v1_memory(mem, memory)
        self.limits = (cpu_percent, int(memory_mb))
        self._cap_cpu(max(cpu_percent, START_CPU_PERCENT) if allowance else cpu_percent)

    def settle(self):
        """The run is on air: from now on its own CPU cap holds."""
        self._cap_cpu(self.limits[0])

    def _cap_cpu(self, percent):
        quota = max(MIN_CPU_QUOTA_US, round(CPU_PERIOD_US * percent / 100))
        if self.version == 2:
            _write(self.dirs["cpu"] / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us", quota)

    @staticmethod
    def _limit_v1_memory(mem, memory):
        """memory.limit may not exceed memsw (memory plus swap): order the two writes so that
        holds whether the limit goes up or down, then leave no room for swap."""
        memsw = mem / "memory.memsw.limit_in_bytes"
        try:
            _write(mem / "memory.limit_in_bytes", memory)
        except OSError as exc:
            if exc.errno != errno.EINVAL or not memsw.exists():
                raise
            _write(memsw, memory)
            _write(mem / "memory.limit_in_bytes", memory)
        if memsw.exists():
            _write(memsw, memory)

    def stats(self):
        """What the kernel counted: CPU time used and throttled (s), throttled periods, memory
        peak (MB, None where the kernel keeps none) and out-of-memory kills."""
        cpu = _keyed(_read(self.dirs["cpu"] / "cpu.stat"))
        mem = self.dirs["memory"]
        if self.version == 2:
            used = cpu.get("usage_usec", 0) / 1e6
            throttled = cpu.get("throttled_usec", 0) / 1e6
            peak = _read(mem / "memory.peak").strip()
            ooms = _keyed(_read(mem / "memory.events")).get("oom_kill", 0)
        else:
            used = int(_read(self.dirs["cpuacct"] / "cpuacct.usage") or 0) / 1e9 if "cpuacct" in self.dirs else None
            throttled = cpu.get("throttled_time", 0) / 1e9
            peak = _read(mem / "memory.max_usage_in_bytes").strip()
            ooms = _keyed(_read(mem / "memory.oom_control")).get("oom_kill", 0)
        return {"cpu_used_s": used, "cpu_throttled_s": throttled, "throttled_periods": cpu.get("nr_throttled", 0),
                "memory_peak_mb": round(int(peak) / 2**20, 1) if peak.isdigit() else None, "oom_kills": ooms}

    def report(self, counted):
        """The run's health fields from `stats()`: its limits, CPU time its cap held it back (in
        all, and since the last report), memory peak and out-of-memory kills."""
        since, self.throttled_mark = counted["cpu_throttled_s"] - self.throttled_mark, counted["cpu_throttled_s"]
        return {"cpu_limit_percent": self.limits[0], "memory_limit_mb": self.limits[1],
                "cpu_throttled_s": round(counted["cpu_throttled_s"], 3), "throttled_ms": round(since * 1000),
                "memory_peak_mb": counted["memory_peak_mb"], "oom_kills": counted["oom_kills"]}

    def held_back(self):
        """Why a run stalled or slowed, when its own CPU cap throttled it since the last report."""
        throttled = self.stats()["cpu_throttled_s"] - self.throttled_mark
        return f" (held back by its own CPU cap of {self.limits[0]:g}%: {throttled:.1f}s throttled)" \
            if throttled > 0 else ""

    def new_kill(self, counted):
        """Out-of-memory kills in `stats()` not reported yet, as the reason to report (None if none)."""
        if counted["oom_kills"] <= self.kills_seen:
            return None
        self.kills_seen, peak = counted["oom_kills"], counted["memory_peak_mb"]
        return (f"OOM: killed by its memory limit of {self.limits[1]} MB "
                f"({'peak not recorded' if peak is None else f'peak {peak:g} MB'}, "
                f"{self.kills_seen} kill{'s' if self.kills_seen > 1 else ''} in this run)")

    def remove(self):
        """Kill anything still inside (nothing should be) and remove the group's folders."""
        for folder in self.folders:
            _remove(folder)


def _remove(folder, patience=2.0):
    deadline = time.monotonic() + patience
    while folder.exists():
        for pid in _read(folder / "cgroup.procs").split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            folder.rmdir()
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                log.warning("could not remove control group %s: %s", folder, exc)
                return False
            time.sleep(0.02)  # a killed process leaves its group as it exits
    return True


def run_group(stream_id):
    """The group for a run on this host, or None where runs go unconfined."""
    return group_named(f"run-{stream_id}")


def group_named(name):
    """A group for processes that are not a run's (calibration), or None where runs go unconfined."""
    return RunGroup(name) if support().enforced else None


def sweep(active_ids):
    """Remove the groups of this host's runs that are over (left by a worker that crashed);
    returns the stream ids swept. `active_ids()` is asked after the groups are listed, so a run
    that starts meanwhile is never taken for one that is over."""
    found = support()
    listed = [child for _held, root in (found.roots if found.enforced else ())
              for child in (host_folder(root).iterdir() if host_folder(root).exists() else ())
              if RUN_GROUP.match(child.name)]
    active, swept = active_ids() if listed else set(), set()
    for child in listed:
        stream_id = int(RUN_GROUP.match(child.name).group(1))
        if stream_id not in active:
            left = _read(child / "cgroup.procs").split()
            if left:
                log.warning("control group %s of run %s, which is over, still held %s: killed", child, stream_id,
                            " ".join(left))
            if _remove(child):
                swept.add(stream_id)
    return swept
