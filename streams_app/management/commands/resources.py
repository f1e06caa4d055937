"""`retrovue resources status|allocate|release|drain|undrain|plan|reconcile|calibrate`."""
from channels_app.profiles import PROFILE_RESOURCES
from resources_app import allocations, planning, services
from retrovue.commands import ServiceCommand
from retrovue.errors import ConfigError
from streams_app import calibration


def _channel(parser):
    parser.add_argument("channel", help="channel UUID or number")


def _allocate_args(parser):
    _channel(parser)
    parser.add_argument("--cpu", help="cores, e.g. 2 or 0.5")
    parser.add_argument("--memory", help="memory, e.g. 512, 512m or 4g (MB by default)")
    parser.add_argument("--bandwidth", help="Mbit/s, e.g. 10 or 1g")


def _host(parser):
    parser.add_argument("host", help="encode host name")


def _drain_args(parser):
    _host(parser)
    parser.add_argument("--migrate", action="store_true",
                        help="move its channels to other hosts one by one")


def _calibrate_args(parser):
    parser.add_argument("--profile", action="append", choices=list(PROFILE_RESOURCES),
                        help="only this profile (repeatable); default all")
    parser.add_argument("--seconds", type=float, default=5.0, help="encode length per profile")
    parser.add_argument("--no-save", action="store_true", help="print only; planning keeps its figures")


def _bar(part, whole, width=20):
    filled = 0 if not whole else min(width, round((part or 0) / whole * width))
    return "#" * filled + "." * (width - filled)


def status_text(data):
    lines = []
    for host in data["hosts"]:
        labels = f" [{', '.join(host['labels'])}]" if host["labels"] else ""
        lines.append(f"{host['name']}{labels}: {host['state']}{'' if host['live'] else ' (not live)'}, "
                     f"channels {len(host['channels'])}/{host['max_channels']} {host['channels'] or ''}".rstrip())
        for key, unit in (("cpu", "%"), ("memory_mb", " MB"), ("bandwidth_mbps", " Mbit/s")):
            row = host[key]
            used = "-" if row["used"] is None else f"{row['used']:g}"
            lines.append(f"  {key:<15} {_bar(row['reserved'], row['capacity'])} reserved "
                         f"{row['reserved']:g} / {row['capacity']:g}{unit}, used {used}")
    totals = data["totals"]
    lines.append(f"total (live hosts): channels {totals['channels']}/{totals['max_channels']}")
    return "\n".join(lines)


def plan_text(data):
    profiles = list(PROFILE_RESOURCES)
    lines = [f"{'host':<16}" + "".join(f"{p:>18}" for p in profiles),
             f"{'':<16}" + "".join(f"{'reserve / measure':>18}" for _ in profiles)]

    def cell(row):
        measured = "-" if row["by_measurement"] is None else row["by_measurement"]
        return f"{row['by_reservation']:>10} / {measured:<5}"

    for name, rows in [*data["hosts"].items(), ("total", data["totals"])]:
        lines.append(f"{name:<16}" + "".join(f"{cell(rows[p]):>18}" for p in profiles))
    return "\n".join(lines)


class Command(ServiceCommand):
    help = "Encode host capacity, reservations, drain and calibration."
    subcommands = {
        "status": ("hosts with capacity, reserved and used; totals", None),
        "allocate": ("reserve CPU (cores), memory and bandwidth for a channel", _allocate_args),
        "release": ("drop a stopped channel's reservation", _channel),
        "drain": ("take no new channels on a host (with --migrate, move its channels)", _drain_args),
        "undrain": ("let a draining host take channels again", _host),
        "plan": ("how many more channels of each profile fit", None),
        "reconcile": ("fix reservations that drifted from the runs that hold them", None),
        "calibrate": ("measure what one channel of each profile costs on this host", _calibrate_args),
    }

    def do_status(self, json, **_):
        data = services.resource_status()
        self.emit(data, json, status_text(data))

    def do_allocate(self, channel, cpu, memory, bandwidth, json, **_):
        data = services.allocate({"channel": channel, "cpu": cpu, "memory_mb": memory,
                                  "bandwidth_mbps": bandwidth})
        self.emit(data, json, services.allocation_summary(data))

    def do_release(self, channel, json, **_):
        data = services.release({"channel": channel})
        self.emit(data, json, services.release_summary(data))

    def do_drain(self, host, migrate, json, **_):
        data = services.drain_host(host, migrate=migrate)
        self.emit(data, json, f"{data['name']} is draining ({data['channels']} channels"
                              f"{', moving them one by one' if migrate else ' stay until stopped'})")

    def do_undrain(self, host, json, **_):
        data = services.undrain_host(host)
        self.emit(data, json, f"{data['name']} is {data['state'].lower()}")

    def do_plan(self, json, **_):
        data = planning.capacity_plan()
        self.emit(data, json, plan_text(data))

    def do_reconcile(self, json, **_):
        data = allocations.reconcile()
        self.emit(data, json, f"released {len(data['released'])}, reserved {len(data['reserved'])}"
                              + "".join(f"\n  released {x}" for x in data["released"])
                              + "".join(f"\n  reserved {x}" for x in data["reserved"]))

    def do_calibrate(self, profile, seconds, no_save, json, **_):
        if not 1 <= seconds <= 120:
            raise ConfigError({"seconds": ["must be within 1..120"]})
        costs = calibration.calibrate(profile, seconds, save=not no_save)
        rows = [cost.__dict__ for cost in costs]
        text = "\n".join([f"{'profile':<8}{'CPU %core':>10}{'reserved':>10}{'memory MB':>11}{'reserved':>10}"
                          f"{'throttled s':>13}"]
                         + [f"{c.profile:<8}{c.cpu_percent:>10g}{c.reserved_cpu_percent:>10g}"
                            f"{c.memory_mb:>11g}{c.reserved_memory_mb:>10g}"
                            f"{'unconfined' if c.throttled_s is None else format(c.throttled_s, 'g'):>13}"
                            for c in costs])
        if any(c.throttled_s for c in costs):
            text += ("\nthrottled: the reservation's CPU cap held the profile back here; its CPU figure is "
                     "a floor, reserve more")
        self.emit(rows, json, text)
