"""`retrovue stream status|health|metrics|restart`: the CLI over streams_app.services."""
from channels_app.serializers import channel_data
from channels_app.services import get_channel
from retrovue.commands import ServiceCommand
from streams_app import lifecycle, services


def _ref(parser):
    parser.add_argument("channel", help="channel UUID or number")


class Command(ServiceCommand):
    help = "Inspect and restart the stream of a channel."
    subcommands = {
        "status": ("the current run of a channel", _ref),
        "health": ("health verdict with reasons", _ref),
        "metrics": ("latest FFmpeg progress, CPU and memory", _ref),
        "restart": ("restart FFmpeg in place (or start the channel)", _ref),
    }

    def do_status(self, channel, json, **_):
        data = services.stream_status(get_channel(channel))
        run = data["stream"] or {}
        self.emit(data, json, f"channel {data['number']}: {data['channel_status']} "
                              f"(host {run.get('host', '-')}, pid {run.get('pid', '-')}, "
                              f"restarts {run.get('restart_count', 0)})")

    def do_health(self, channel, json, **_):
        data = services.stream_health(get_channel(channel))
        reasons = "; ".join(data["reasons"]) or "no issues"
        self.emit(data, json, f"channel {data['number']}: {data['verdict']} ({reasons})")

    def do_metrics(self, channel, json, **_):
        data = services.stream_metrics(get_channel(channel))
        metrics = data["metrics"]
        keys = ("fps", "bitrate_kbps", "speed", "frame", "drop_frames", "dup_frames",
                "cpu_percent", "memory_mb")
        text = f"channel {data['number']} ({data['status'] or 'no run'}): " + ", ".join(
            f"{k}={metrics.get(k)}" for k in keys if k in metrics)
        self.emit(data, json, text)

    def do_restart(self, channel, json, **_):
        data = channel_data(lifecycle.restart_channel(get_channel(channel)))
        self.emit(data, json, f"restarting channel {data['number']}")
