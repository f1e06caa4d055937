"""`retrovue asrun [--channel N] [--from T] [--to T] [--csv | --json]`: what aired, oldest first."""
from retrovue.commands import ServiceCommand
from streams_app.asrun import as_run_csv, as_run_rows, find_as_run


def line(row):
    end = row["actual_end"].isoformat(timespec="milliseconds")[11:23] if row["actual_end"] else "on air"
    return (f"{row['channel']:>4}  {row['actual_start'].isoformat(timespec='milliseconds')[:23]}  {end:<12}  "
            f"{row['kind']:<12}  {row['title']}" + (f"  ({row['note']})" if row["note"] else ""))


class Command(ServiceCommand):
    help = "Show the as-run log: what aired, when, to the frame (default: the last 24 hours)."

    def add_arguments(self, parser):
        parser.add_argument("--channel", help="only this channel (UUID or number)")
        parser.add_argument("--from", dest="since", help="ISO 8601 start (default: 24 h before --to)")
        parser.add_argument("--to", dest="until", help="ISO 8601 end (default: now)")
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--csv", action="store_true", help="print CSV")
        output.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args, **options):
        super().handle(*args, subcommand="list", **options)

    def do_list(self, channel, since, until, csv, json, **_):
        rows = as_run_rows(find_as_run(channel, since=since, until=until))
        if csv:
            self.stdout.write(as_run_csv(rows), ending="")
            return
        header = f"{'ch':>4}  {'aired (UTC)':<23}  {'until':<12}  {'kind':<12}  title"
        self.emit(rows, json, "\n".join([header, *map(line, rows)]) if rows else "nothing aired in this window")
