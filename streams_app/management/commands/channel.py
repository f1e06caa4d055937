"""`retrovue channel create|configure|start|stop|status|list|delete|switch`: the CLI over
channels_app.services and streams_app.lifecycle."""
from channels_app import schedules, services
from channels_app.models import Channel
from channels_app.profiles import QUALITY_PROFILES
from channels_app.serializers import ChannelSerializer, channel_data
from channels_app.validation import parse_output_url
from retrovue.commands import ServiceCommand
from streams_app import lifecycle


def _create_args(parser):
    parser.add_argument("name")
    parser.add_argument("--number", type=int, required=True)
    parser.add_argument("--quality", choices=list(QUALITY_PROFILES))
    parser.add_argument("--output", help="udp://ADDRESS:PORT (unicast or multicast)")
    parser.add_argument("--playlist", nargs="+", metavar="FILE", default=[],
                        help="media files under RETROVUE_MEDIA_ROOTS, played in a loop")
    parser.add_argument("--description", default="")
    parser.add_argument("--on-demand", action="store_true", help="run only while someone watches")
    parser.add_argument("--group", default="", help='its group in players\' lists (default "RetroVue")')


def _ref(parser):
    parser.add_argument("channel", help="channel UUID or number")


def _configure_args(parser):
    _ref(parser)
    parser.add_argument("--name")
    parser.add_argument("--quality", choices=list(QUALITY_PROFILES))
    parser.add_argument("--output", help="udp://ADDRESS:PORT (unicast or multicast)")
    parser.add_argument("--playlist", nargs="*", metavar="FILE",
                        help="media files under RETROVUE_MEDIA_ROOTS (none: the slate)")
    parser.add_argument("--description")
    parser.add_argument("--on-demand", choices=["on", "off"], help="run only while someone watches")
    parser.add_argument("--group", help='its group in players\' lists ("": the default, "RetroVue")')


def _switch_args(parser):
    _ref(parser)
    parser.add_argument("asset", help="media asset id or file path (imported if needed)")


def summary(data):
    uptime = f"{data['uptime_s']:.0f}s" if data["uptime_s"] is not None else "-"
    line = (f"{data['number']:>5}  {data['name'][:28]:<28}  {data['status']:<8}  "
            f"{data['host'] or '-':<12}  {uptime:>7}  {data['outputs']['udp']}")
    return line + (f"\n       reason: {data['status_reason']}" if data["status_reason"] else "")


class Command(ServiceCommand):
    help = "Create, start, stop and inspect channels."
    subcommands = {
        "create": ("create a channel", _create_args),
        "configure": ("change a channel; says what airs live and what needs a restart", _configure_args),
        "start": ("start a channel (returns once queued)", _ref),
        "stop": ("stop a channel", _ref),
        "status": ("show a channel", _ref),
        "delete": ("delete a stopped channel", _ref),
        "list": ("list channels", None),
        "switch": ("air an asset now, then rejoin the schedule", _switch_args),
        "start-all": ("start every channel that is not running", None),
        "stop-all": ("stop every channel", None),
        "restart-failed": ("start again the channels in ERROR that allow auto restart", None),
    }

    def handle(self, *args, subcommand, **options):
        super().handle(*args, subcommand=subcommand.replace("-", "_"), **options)

    def do_create(self, name, number, quality, output, playlist, description, on_demand, group, json, **_):
        data = {"name": name, "number": number, "quality": quality, "playlist": playlist,
                "description": description, "on_demand": on_demand, "group": group}
        if output:
            data["network_settings"] = parse_output_url(output)
        channel = services.create_channel(data)
        self.emit(channel_data(channel), json, f"created channel {channel.number} ({channel.id})")

    def do_configure(self, channel, name, quality, output, playlist, description, on_demand, group, json, **_):
        data = {key: value for key, value in (("name", name), ("quality", quality), ("playlist", playlist),
                                              ("description", description), ("group", group),
                                              ("on_demand", on_demand and on_demand == "on")) if value is not None}
        if output:
            data["network_settings"] = parse_output_url(output)
        found = services.update_config(services.get_channel(channel), data)
        outcome = services.change_outcome(found, data)
        lines = [f"channel {found.number} changed"]
        if outcome["applied_live"]:
            lines.append(f"applied live (a playlist from the next segment): {', '.join(outcome['applied_live'])}")
        if outcome["restart_required"]:
            lines.append(f"restart to apply ({', '.join(outcome['restart_for'])}): "
                         f"retrovue stream restart {found.number}")
        self.emit({**channel_data(found), **outcome}, json, "\n".join(lines))

    def do_start(self, channel, json, **_):
        data = channel_data(lifecycle.start_channel(services.get_channel(channel)))
        self.emit(data, json, f"starting channel {data['number']} on {data['host']}")

    def do_stop(self, channel, json, **_):
        data = channel_data(lifecycle.stop_channel(services.get_channel(channel)))
        self.emit(data, json, f"stopping channel {data['number']}")

    def do_status(self, channel, json, **_):
        data = channel_data(services.get_channel(channel))
        self.emit(data, json, summary(data))

    def do_delete(self, channel, json, **_):
        found = services.get_channel(channel)
        services.delete_channel(found)
        self.emit({"deleted": str(found.id)}, json, f"deleted channel {found.number}")

    def do_switch(self, channel, asset, json, **_):
        data = schedules.switch_channel(services.get_channel(channel), asset)
        self.emit(data, json, f"channel {data['channel']} switches to {data['asset']['source']}")

    def do_list(self, json, **_):
        rows = ChannelSerializer(Channel.objects.with_runtime().select_related("config"), many=True).data
        header = f"{'no.':>5}  {'name':<28}  {'status':<8}  {'host':<12}  {'uptime':>7}  output"
        self.emit(rows, json, "\n".join([header, *map(summary, rows)]))

    def bulk(self, results, json):
        lines = [f"{number:>5}  {outcome}" for number, outcome in results.items()] or ["no channels"]
        self.emit({"channels": results}, json, "\n".join(lines))

    def do_start_all(self, json, **_):
        self.bulk(lifecycle.start_all_channels(), json)

    def do_stop_all(self, json, **_):
        self.bulk(lifecycle.stop_all_channels(), json)

    def do_restart_failed(self, json, **_):
        self.bulk(lifecycle.restart_failed_channels(), json)
