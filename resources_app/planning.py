"""Capacity planning: how many more channels of each quality profile fit, per host and in all.

Two answers side by side: by reservation (what admission control would still accept) and by
measurement (what the host's measured free CPU and memory would carry at the cost that
`retrovue resources calibrate` measured for the profile; None until it has been measured).
"""
import math

from channels_app.profiles import PROFILE_RESOURCES

from .models import EncodeHost, ProfileCost
from .placement import capacity_of, reserved_by_host
from .requirements import DIMENSIONS, Need


def profile_need(profile):
    limits = PROFILE_RESOURCES[profile]
    return Need(limits["max_cpu_percent"], limits["max_memory_mb"], limits["max_bandwidth_mbps"])


def _count(free, cost):
    """Whole channels that fit in `free` at `cost` per channel, over every dimension given."""
    counts = [math.floor(free[key] / cost[key] + 1e-9) for key in cost if cost[key]]
    return max(0, min(counts)) if counts else 0


def measured_cost(host, profile, costs):
    """The calibrated cost on this host, else on any host (the same hardware is likely)."""
    cost = costs.get((host.name, profile)) or next((c for (h, p), c in costs.items() if p == profile), None)
    return None if cost is None else {"cpu_percent": cost.cpu_percent, "memory_mb": cost.memory_mb}


def capacity_plan():
    reserved = reserved_by_host()
    costs = {(c.host, c.profile): c for c in ProfileCost.objects.all()}
    plan = {"hosts": {}, "totals": {}}
    for host in EncodeHost.objects.live():
        capacity = capacity_of(host)
        held = reserved.get(host.pk, {})
        slots = host.capacity - (held.get("channels") or 0)
        free = {field: capacity[field] - (held.get(field) or 0) for field, _, _ in DIMENSIONS}
        measured_free = {
            "cpu_percent": capacity["cpu_percent"] * (1 - (host.cpu_percent or 0) / 100),
            "memory_mb": capacity["memory_mb"] * (1 - (host.memory_percent or 0) / 100),
        }
        rows = {}
        for profile in PROFILE_RESOURCES:
            by_reservation = min(slots, _count(free, profile_need(profile).as_dict()))
            cost = measured_cost(host, profile, costs)
            rows[profile] = {"by_reservation": max(0, by_reservation),
                             "by_measurement": None if cost is None else max(0, min(slots, _count(measured_free, cost)))}
        plan["hosts"][host.name] = rows
    for profile in PROFILE_RESOURCES:
        per_host = [rows[profile] for rows in plan["hosts"].values()]
        measured = [row["by_measurement"] for row in per_host]
        plan["totals"][profile] = {
            "by_reservation": sum(row["by_reservation"] for row in per_host),
            "by_measurement": None if not measured or None in measured else sum(measured)}
    return plan
