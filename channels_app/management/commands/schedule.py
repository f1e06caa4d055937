"""`retrovue schedule show|set|append`: a channel's schedule from the command line."""
from channels_app import schedules, services
from retrovue.commands import ServiceCommand, read_json


def _channel(parser):
    parser.add_argument("channel", help="channel UUID or number")


def _show_args(parser):
    _channel(parser)
    parser.add_argument("--hours", type=float,
                        help=f"how far ahead to list (default {schedules.DEFAULT_HOURS})")


def _set_args(parser):
    _channel(parser)
    parser.add_argument("file", help="the schedule as JSON (the body of PUT /api/channels/{id}/schedule); "
                                     "- for stdin")


def _append_args(parser):
    _channel(parser)
    parser.add_argument("asset", help="media asset id or file path (imported if needed)")
    parser.add_argument("--start", help="ISO-8601 start; default right after the previous program")
    parser.add_argument("--title")
    parser.add_argument("--description")
    parser.add_argument("--in", dest="in_point", type=float, metavar="SECONDS")
    parser.add_argument("--out", dest="out_point", type=float, metavar="SECONDS")


def _when(moment):
    return moment.strftime("%Y-%m-%d %H:%M:%S %z") if moment else "(follows)"


def text(data):
    """The schedule's programs, then what airs now and next."""
    if data["id"] is None:
        lines = [f"channel {data['channel']} has no schedule"]
    else:
        transition = data["transition"] or {}
        filler = f" {transition['filler']['source']}" if transition.get("filler") else ""
        lines = [f"schedule {data['id']} of channel {data['channel']}: {data['timezone']}"
                 f"{', daily loop' if data['loop'] else ''}, gaps {transition.get('fill', 'SLATE')}{filler}"]
        lines += [f"{p['position']:>4}  {_when(p['start']):<25}  {p['duration_s']:>8.1f}s  "
                  f"{p['title'] or '-':<24}  {p['asset']['source']}" for p in data["programs"]]
    lines += [f"{label:<5} {s['kind']:<8} {_when(s['start'])} .. {_when(s['end'])}  "
              f"{s['title'] or s['source'] or ''}{' (' + s['reason'] + ')' if s.get('reason') else ''}".rstrip()
              for label, s in [("now", data["current"]), *(("next", s) for s in data["upcoming"])]]
    return "\n".join(lines)


class Command(ServiceCommand):
    help = "Show, replace and extend channel schedules."
    subcommands = {
        "show": ("show a channel's schedule and what airs now and next", _show_args),
        "set": ("replace a channel's schedule with a JSON file", _set_args),
        "append": ("append a program to a channel's schedule", _append_args),
    }

    def show(self, channel, json, hours=None):
        data = schedules.schedule_data(channel, hours)
        self.emit(data, json, text(data))

    def do_show(self, channel, hours, json, **_):
        self.show(services.get_channel(channel), json, hours)

    def do_set(self, channel, file, json, **_):
        found = services.get_channel(channel)
        schedules.replace_schedule(found, read_json(file))
        self.show(found, json)

    def do_append(self, channel, asset, start, title, description, in_point, out_point, json, **_):
        found = services.get_channel(channel)
        program = {"asset": asset, "start": start, "title": title, "description": description,
                   "in_point": in_point, "out_point": out_point}
        schedules.append_program(found, program)
        self.show(found, json)
