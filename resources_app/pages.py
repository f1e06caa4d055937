"""/resources: each encode host's capacity, reservations and measured use as bars, its channels,
capacity planning per quality profile, every reservation, and the drain, allocate and release
buttons. Figures come from resources_app.services.resource_status and planning.capacity_plan;
buttons call the services the API calls, under the API's permissions."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from channels_app.models import Channel
from retrovue.pages import CHANGE_HOSTS, operator_action

from . import api, planning, services
from .models import ResourceAllocation

# (key in resource_status, label, unit shown, divisor from the stored unit to the shown one)
DIMENSIONS = (("cpu", "CPU", "cores", 100), ("memory_mb", "memory", "GB", 1024),
              ("bandwidth_mbps", "bandwidth", "Mbit/s", 1))


def bar(figures, divisor):
    """A dimension as shown: amounts in the shown unit and their share of the capacity."""
    capacity = figures["capacity"] or 0

    def share(amount):
        return min(100.0, 100.0 * amount / capacity) if capacity and amount else 0.0

    def shown(amount):
        return None if amount is None else f"{round(amount / divisor, 2):g}"

    return {"capacity": shown(capacity), "reserved": shown(figures["reserved"]), "used": shown(figures["used"]),
            "reserved_share": share(figures["reserved"]), "used_share": share(figures["used"])}


def host_view(host, now):
    heartbeat = host["last_heartbeat"]
    return {**host, "heartbeat_age": None if heartbeat is None else (now - heartbeat).total_seconds(),
            "bars": [{"label": label, "unit": unit, **bar(host[key], divisor)}
                     for key, label, unit, divisor in DIMENSIONS]}


def plan_rows(plan):
    """One row per profile: what one channel reserves, how many more fit on each host and in all."""
    hosts = list(plan["hosts"])
    rows = []
    for profile, total in plan["totals"].items():
        need = planning.profile_need(profile)
        rows.append({"profile": profile, "total": total,
                     "need": f"{need.cpu_percent / 100:g} cores, {need.memory_mb} MB, {need.bandwidth_mbps:g} Mbit/s",
                     "per_host": [plan["hosts"][host].get(profile) for host in hosts]})
    return hosts, rows


def allocation_view(allocation):
    """A reservation as the API gives it, its fractional amounts without trailing zeros."""
    data = services.allocation_data(allocation)
    return {**data, **{key: f"{data[key]:g}" for key in ("cpu", "bandwidth_mbps")}}


@login_required
def resources_page(request, partial=False):
    status = services.resource_status()
    plan_hosts, plan = plan_rows(planning.capacity_plan())
    now = timezone.now()
    context = {"hosts": [host_view(host, now) for host in status["hosts"]],
               "totals": status["totals"], "plan_hosts": plan_hosts, "plan": plan,
               "allocations": [allocation_view(allocation) for allocation
                               in ResourceAllocation.objects.select_related("channel", "host")]}
    if partial:
        return render(request, "dashboards/resource_hosts.html", context)
    context["channels"] = Channel.objects.order_by("number").only("number", "name")  # the allocate form's
    return render(request, "dashboards/resources.html", context)


@operator_action(CHANGE_HOSTS)
def drain(request, name):
    migrate = request.POST.get("migrate") == "on"
    host = services.drain_host(name, migrate=migrate)
    moving = "; its channels move to other hosts one by one" if migrate else ""
    return f"Host {host['name']} is {host['state'].lower()}: no new channels{moving}."


@operator_action(CHANGE_HOSTS)
def undrain(request, name):
    host = services.undrain_host(name)
    return f"Host {host['name']} is {host['state'].lower()} again."


@operator_action(api.Allocate.permissions["POST"])
def allocate(request):
    """The form's fields are the API's body; blank amounts keep the channel's own, as in the API."""
    data = services.allocate({field: request.POST.get(field, "") for field in services.ALLOCATE_FIELDS})
    return services.allocation_summary(data)


@operator_action(api.Release.permissions["POST"])
def release(request):
    return services.release_summary(services.release({"channel": request.POST.get("channel", "")}))
