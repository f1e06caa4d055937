"""`retrovue availability [--channel N] [--json]`: each channel's uptime, downtime, failures, MTBF
and MTTR over the last 24 hours, 7 days and 30 days, from the as-run log."""
from retrovue.commands import ServiceCommand
from retrovue.pages import duration
from streams_app.alerts import channel_filter
from streams_app.availability import availability_report

HEADER = (f"{'ch':>4}  {'name':<20}  {'window':<6}  {'available':>9}  {'uptime':>17}  {'downtime':>17}  "
          f"{'failures':>8}  {'MTBF':>17}  {'MTTR':>17}")


def lines(channel):
    for span, figures in channel["windows"].items():
        percent = figures["availability_percent"]
        yield (f"{channel['number']:>4}  {channel['name'][:20]:<20}  {span:<6}  "
               f"{'—' if percent is None else f'{percent:.3f}%':>9}  {duration(figures['uptime_s']):>17}  "
               f"{duration(figures['downtime_s']):>17}  {figures['failures']:>8}  "
               f"{duration(figures['mtbf_s']) or '—':>17}  {duration(figures['mttr_s']) or '—':>17}")


class Command(ServiceCommand):
    help = "Show each channel's availability over the last 24 hours, 7 days and 30 days."

    def add_arguments(self, parser):
        parser.add_argument("--channel", help="only this channel (UUID or number)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        super().handle(*args, subcommand="show", **options)

    def do_show(self, channel, json, **_):
        report = availability_report(channel_filter(channel) if channel else None)
        rows = [line for entry in report["channels"] for line in lines(entry)]
        self.emit(report, json, "\n".join([HEADER, *rows]) if rows else "no channels")
