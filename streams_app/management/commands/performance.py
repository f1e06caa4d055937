"""`retrovue performance [--channel N] [--window MINUTES] [--json]`: analyze_channel_performance
as a table: bitrate, throughput, drops, restarts, latency, availability and quality score."""
from retrovue.commands import ServiceCommand
from streams_app.alerts import channel_filter
from streams_app.monitoring import analyze_channel_performance
from streams_app.monitoring_api import window_minutes

HEADER = (f"{'ch':>4}  {'name':<20}  {'samples':>7}  {'kbit/s':>8}  {'fps':>5}  {'out kbit/s':>10}  "
          f"{'drops':>6}  {'restarts':>8}  {'latency':>7}  {'available':>9}  {'quality':>7}  findings")


def figure(value, unit="", decimals=1):
    return "—" if value is None else f"{value:.{decimals}f}{unit}"


def line(entry):
    available = entry["availability"]["availability_percent"]
    return (f"{entry['number']:>4}  {entry['name'][:20]:<20}  {entry['samples']:>7}  "
            f"{figure(entry['average_bitrate_kbps'], decimals=0):>8}  {figure(entry['throughput_fps']):>5}  "
            f"{figure(entry['throughput_kbps'], decimals=0):>10}  {entry['frame_drops']:>6}  {entry['restarts']:>8}  "
            f"{figure(entry['latency_ms'], ' ms', 0):>7}  {figure(available, '%', 3):>9}  "
            f"{figure(entry['quality_score']):>7}  {'; '.join(entry['findings'])}")


class Command(ServiceCommand):
    help = "Analyze each channel's performance over the last minutes (default 60)."

    def add_arguments(self, parser):
        parser.add_argument("--channel", help="only this channel (UUID or number)")
        parser.add_argument("--window", default="60", help="minutes (default 60)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        super().handle(*args, subcommand="show", **options)

    def do_show(self, channel, window, json, **_):
        minutes = window_minutes({"window": window})
        report = analyze_channel_performance(channel_filter(channel) if channel else None, minutes)
        rows = [line(entry) for entry in report["channels"]]
        self.emit(report, json, "\n".join([HEADER, *rows]) if rows else f"no samples in the last {minutes} minutes")
