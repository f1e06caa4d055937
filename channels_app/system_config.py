"""System defaults: the product design's multi-channel configuration block, stored once.

The environment's settings are the defaults of these defaults: a key an operator stored (API,
admin, `retrovue config load`) wins, any other comes from the settings. `system_config()` is
what every reader uses; it reads the one row fresh, so beat, supervisors and the API see a change
at their next read. Writes go through `replace` (PUT, the admin, the CLI) or `update` (PATCH):
validated whole, errors under dotted paths, nothing written while any remains, and the layers
above told in the same transaction (`system_config_changed`: beat's health-check interval).
"""
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.conf import settings
from django.db import transaction

from retrovue.errors import ConfigError

from .profiles import DEFAULT_RESOURCE_LIMITS
from .signals import system_config_changed

SINGLETON = 1


def _model():
    """SystemConfig, by name: models.py reads this module (ChannelConfig.failover), not the reverse."""
    return apps.get_model("channels_app", "SystemConfig")

READ_ONLY = "from_environment"  # in what GET answers; ignored on write so GET -> PUT round-trips


@dataclass(frozen=True)
class Key:
    """One key of the block: its type, its environment default and its range or choices."""

    kind: type
    default: Callable
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def problem(self, value):
        """Why `value` is not valid for this key, or None."""
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind is str:
            return None if value in self.choices else f"must be one of {', '.join(self.choices)}"
        numeric = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return "must be a whole number" if self.kind is int else "must be a number"
        if not self.low <= value <= self.high:
            return f"must be between {self.low:g} and {self.high:g}"
        return None


KEYS = {
    "max_channels": Key(int, lambda: settings.RETROVUE_MAX_CHANNELS, 0, 100_000),
    "resource_allocation.strategy": Key(str, lambda: settings.RETROVUE_PLACEMENT_STRATEGY, choices=("spread", "pack")),
    "resource_allocation.cpu_per_channel": Key(float, lambda: DEFAULT_RESOURCE_LIMITS["max_cpu_percent"], 1, 6400),
    "resource_allocation.memory_per_channel": Key(int, lambda: DEFAULT_RESOURCE_LIMITS["max_memory_mb"], 16, 1_048_576),
    "failover_settings.auto_restart": Key(bool, lambda: settings.RETROVUE_FAILOVER_DEFAULTS["auto_restart"]),
    "failover_settings.max_restart_attempts": Key(
        int, lambda: settings.RETROVUE_FAILOVER_DEFAULTS["max_restart_attempts"], 0, 100),
    "failover_settings.restart_delay_seconds": Key(
        float, lambda: settings.RETROVUE_FAILOVER_DEFAULTS["restart_delay_seconds"], 0, 3600),
    "monitoring.health_check_interval": Key(int, lambda: settings.RETROVUE_HEALTH_CHECK_INTERVAL, 1, 86_400),
    "monitoring.alert_thresholds.cpu_usage": Key(float, lambda: settings.RETROVUE_ALERT_CPU_PERCENT, 1, 1000),
    "monitoring.alert_thresholds.memory_usage": Key(float, lambda: settings.RETROVUE_ALERT_MEMORY_PERCENT, 1, 1000),
    "monitoring.alert_thresholds.error_rate": Key(float, lambda: settings.RETROVUE_ALERT_ERROR_RATE, 1, 100_000),
}
# Other spellings accepted on input; the canonical one is stored and answered.
ALIASES = {
    "failover_settings.restart_delay": "failover_settings.restart_delay_seconds",
    "monitoring.alert_thresholds.cpu_percent": "monitoring.alert_thresholds.cpu_usage",
    "monitoring.alert_thresholds.memory_percent": "monitoring.alert_thresholds.memory_usage",
}
SECTIONS = {path.rsplit(".", depth)[0] for path in KEYS for depth in (1, 2) if path.count(".") >= depth}


def flatten(block, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat = {}
    for name, value in block.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def nest(flat):
    """{"a.b": 1} -> {"a": {"b": 1}}."""
    block = {}
    for path, value in flat.items():
        *parents, leaf = path.split(".")
        node = block
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return block


def parse(data, partial=False):
    """Validate a block (or, partial, a part of one where null unsets a key or a section) into
    {dotted canonical path: value or None}; ConfigError naming each bad key by its dotted path."""
    if not isinstance(data, dict):
        raise ConfigError({"config": ["must be an object of the configuration block's keys"]})
    errors, given = {}, {}

    def walk(node, prefix):
        for name, value in node.items():
            path = f"{prefix}{name}"
            if path == READ_ONLY:
                continue
            canonical = ALIASES.get(path, path)
            if "." in name:
                errors[path] = ["unknown key (give sections as nested objects)"]
            elif canonical in given:
                errors[path] = [f"given twice (as {canonical} and an alias)"]
            elif value is None and partial and (canonical in KEYS or canonical in SECTIONS):
                given.update({p: None for p in KEYS if p == canonical or p.startswith(f"{canonical}.")})
            elif canonical in KEYS:
                if problem := KEYS[canonical].problem(value):
                    errors[path] = [problem]
                given[canonical] = float(value) if KEYS[canonical].kind is float and not problem else value
            elif canonical in SECTIONS:
                if isinstance(value, dict):
                    walk(value, f"{canonical}.")
                else:
                    errors[path] = ["must be an object"]
            else:
                errors[path] = ["unknown key"]

    walk(data, "")
    if errors:
        raise ConfigError(errors)
    return given


def _stored():
    values = _model().objects.filter(pk=SINGLETON).values_list("values", flat=True).first()
    return {path: value for path, value in flatten(values or {}).items() if path in KEYS}


def system_config():
    """The effective block: each stored key, else its environment default."""
    stored = _stored()
    return nest({path: stored.get(path, key.default()) for path, key in KEYS.items()})


def describe():
    """The effective block and which of its keys come from the environment (GET /api/config)."""
    stored = _stored()
    return {**system_config(), READ_ONLY: sorted(set(KEYS) - set(stored))}


def default_resource_limits():
    """The resource_limits of a channel that sets none: the block's per-channel CPU and memory."""
    allocation = system_config()["resource_allocation"]
    return {**DEFAULT_RESOURCE_LIMITS, "max_cpu_percent": allocation["cpu_per_channel"],
            "max_memory_mb": allocation["memory_per_channel"]}


def lock():
    """Lock the singleton row until the caller's transaction ends: a write, or an admission
    counting channels against max_channels, waits for the one before it."""
    return _model().objects.select_for_update().get_or_create(pk=SINGLETON)[0]


def _write(flat):
    with transaction.atomic():
        row = lock()
        before = system_config()
        row.values = nest({path: value for path, value in flat.items() if value is not None})
        row.save()
        system_config_changed.send(sender=_model(), before=before, config=system_config())
    return describe()


def replace(data):
    """Store exactly this block (PUT, the admin, `retrovue config load`): keys left out come from
    the environment again."""
    return _write(parse(data))


def update(data):
    """Change only the keys given (PATCH); null sets a key (or a section) back to the environment's."""
    return _write({**_stored(), **parse(data, partial=True)})
