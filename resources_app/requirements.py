"""What a channel needs reserved, and the units operators type.

CPU is in psutil's percent of one core (100 = one full core, so a 2-core host holds 200); the
API and CLI take cores (`--cpu 2`). Memory is in MB (`4g` and `512m` accepted), bandwidth in
Mbit/s.
"""
import re
from dataclasses import asdict, dataclass

from django.core.exceptions import ObjectDoesNotExist

from channels_app.system_config import default_resource_limits
from retrovue.errors import ConfigError

DIMENSIONS = (  # field, label, unit
    ("cpu_percent", "CPU", "%"),
    ("memory_mb", "memory", " MB"),
    ("bandwidth_mbps", "bandwidth", " Mbit/s"),
)


@dataclass(frozen=True)
class Need:
    cpu_percent: float
    memory_mb: int
    bandwidth_mbps: float

    def as_dict(self):
        return asdict(self)

    def describe(self):
        return ", ".join(f"{getattr(self, field):g}{unit} {label}" for field, label, unit in DIMENSIONS)


def channel_need(channel):
    """An operator's allocation if there is one, else the channel's resource_limits (which the
    quality profile fills when no limits were given), else the system defaults' per-channel ones."""
    try:
        allocation = channel.allocation
    except ObjectDoesNotExist:
        allocation = None
    if allocation is not None and allocation.manual:
        return Need(allocation.cpu_percent, allocation.memory_mb, allocation.bandwidth_mbps)
    limits = {**default_resource_limits(), **(channel.config.resource_limits or {})}
    return Need(float(limits["max_cpu_percent"]), int(limits["max_memory_mb"]),
                float(limits["max_bandwidth_mbps"]))


def _amount(field, value, pattern, scale, what):
    text = str(value).strip().lower()
    match = re.fullmatch(pattern, text)
    if not match or isinstance(value, bool):
        raise ConfigError({field: [f"'{value}' is not {what}"]})
    number = float(match.group(1)) * scale.get(match.group(2) or "", 1)
    if number <= 0:
        raise ConfigError({field: [f"'{value}' must be more than zero"]})
    return number


def parse_cores(value, field="cpu"):
    """Cores (`2`, `0.5`) -> percent of one core."""
    percent = _amount(field, value, r"(\d+(?:\.\d+)?)()", {}, "a number of cores such as 2 or 0.5") * 100
    if percent > 6400:
        raise ConfigError({field: [f"'{value}' cores is more than any host has (at most 64)"]})
    return round(percent, 1)


def parse_memory_mb(value, field="memory_mb"):
    """MB, or with a unit: `4g`, `4096m`, `4gb`."""
    mb = _amount(field, value, r"(\d+(?:\.\d+)?)\s*([mg]?)b?", {"g": 1024, "m": 1},
                 "a memory size such as 512, 512m or 4g")
    if mb > 1_048_576:
        raise ConfigError({field: [f"'{value}' is more than 1 TB"]})
    return int(round(mb))


def parse_mbps(value, field="bandwidth_mbps"):
    """Mbit/s, or with a unit: `10`, `10m`, `1g`."""
    mbps = _amount(field, value, r"(\d+(?:\.\d+)?)\s*([mg]?)", {"g": 1000, "m": 1},
                   "a bandwidth in Mbit/s such as 10 or 1g")
    if mbps > 100_000:
        raise ConfigError({field: [f"'{value}' is more than 100 Gbit/s"]})
    return mbps
