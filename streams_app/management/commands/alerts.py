"""`retrovue alerts [--all] [--channel N] [--json]`: open alerts (or the history) as a table."""
from retrovue.commands import ServiceCommand
from streams_app.alerts import find_alerts
from streams_app.alerts_api import AlertSerializer


def row(data):
    subject = f"channel {data['channel']}" if data["channel"] is not None else f"host {data['host']}"
    raised = data["raised_at"][:19].replace("T", " ")
    state = "open" if data["open"] else "cleared"
    return (f"{data['id']:>5}  {data['kind']:<12}  {data['severity']:<8}  {subject[:18]:<18}  "
            f"{raised}  {state:<7}  {data['message']}")


class Command(ServiceCommand):
    """One listing, so no subcommands: ServiceCommand's error mapping and --json, minus the parser."""

    help = "List open alerts (--all includes cleared ones, newest first)."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", dest="include_cleared",
                            help="include cleared alerts")
        parser.add_argument("--channel", help="only this channel (UUID or number)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        super().handle(*args, subcommand="list", **options)

    def do_list(self, include_cleared, channel, json, **_):
        rows = AlertSerializer(find_alerts(channel=channel, include_cleared=include_cleared), many=True).data
        header = (f"{'id':>5}  {'kind':<12}  {'severity':<8}  {'subject':<18}  {'raised (UTC)':<19}  "
                  f"{'state':<7}  message")
        empty = "no alerts" if include_cleared else "no open alerts"
        self.emit(rows, json, "\n".join([header, *map(row, rows)]) if rows else empty)
