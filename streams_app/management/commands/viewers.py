"""`retrovue viewers [--channel N] [--hours H] [--json]`: viewers now, tune-ins and watch time per
channel, as a table."""
from retrovue.commands import ServiceCommand
from streams_app.alerts import channel_filter
from streams_app.viewers_api import viewer_report, window_hours


def row(data):
    kinds = data["viewers_by_kind"]
    return (f"{data['number']:>6}  {data['name'][:24]:<24}  {data['viewers_now']:>3}  {kinds['ts']:>3}  "
            f"{kinds['hls']:>3}  {data['tune_ins']:>8}  {data['watch_time_s'] / 3600:>8.1f}")


class Command(ServiceCommand):
    """One listing, so no subcommands: ServiceCommand's error mapping and --json, minus the parser."""

    help = "Viewers per channel: watching now (TS, HLS), tune-ins and watch time over the last --hours."

    def add_arguments(self, parser):
        parser.add_argument("--channel", help="only this channel (UUID or number)")
        parser.add_argument("--hours", default="24", help="window of tune-ins and watch time (default 24)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        super().handle(*args, subcommand="list", **options)

    def do_list(self, channel, hours, json, **_):
        rows = viewer_report(channel_filter(channel) if channel else None, window_hours(hours))
        header = (f"{'number':>6}  {'name':<24}  {'now':>3}  {'ts':>3}  {'hls':>3}  {'tune-ins':>8}  "
                  f"{'watched h':>8}")
        title = f"viewers since {rows[0]['since']:%Y-%m-%d %H:%M} UTC" if rows else ""
        self.emit(rows, json, "\n".join([title, header, *map(row, rows)]) if rows else "no channels")
