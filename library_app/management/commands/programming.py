"""`retrovue programming show|set|build|clear`: a channel's programming rules from the command line."""
from channels_app.services import get_channel
from library_app import builder
from retrovue.commands import ServiceCommand, read_json


def _channel(parser):
    parser.add_argument("channel", help="channel UUID or number")


def _set_args(parser):
    _channel(parser)
    parser.add_argument("file", help="the rules as JSON (the body of PUT /api/channels/{id}/programming); "
                                     "- for stdin")


def text(data):
    lines = [f"built until {data['built_until']:%Y-%m-%d %H:%M %Z}" if data["built_until"] else "not built"]
    if data["build_error"]:
        lines.append(f"build error: {data['build_error']}")
    lines += [f"{p['start']:%Y-%m-%d %H:%M:%S %z}  {p['origin'] or 'by hand':<16}  {p['title']}" for p in data["next"]]
    return "\n".join(lines)


class Command(ServiceCommand):
    help = "Program channels by rules: time blocks of collections, a default, and filler."
    subcommands = {
        "show": ("a channel's rules and the next programs they built", _channel),
        "set": ("set a channel's rules from a JSON file and build its schedule", _set_args),
        "build": ("extend the channel's schedule to RETROVUE_PROGRAMMING_HOURS ahead now", _channel),
        "clear": ("stop building by rules (the built schedule stays)", _channel),
    }

    def show(self, channel, json):
        data = builder.programming_data(channel)
        self.emit(data, json, text(data))

    def do_show(self, channel, json, **_):
        self.show(get_channel(channel), json)

    def do_set(self, channel, file, json, **_):
        found = get_channel(channel)
        builder.set_programming(found, read_json(file))
        self.show(found, json)

    def do_build(self, channel, json, **_):
        found = get_channel(channel)
        builder.extend(found)
        self.show(found, json)

    def do_clear(self, channel, json, **_):
        builder.clear_programming(get_channel(channel))
        self.emit({"cleared": True}, json, "programming cleared; the built schedule stays on air")
