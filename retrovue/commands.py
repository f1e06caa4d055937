"""Shared plumbing of the `retrovue` / manage.py commands: subcommands, --json, exit code 2."""
import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from retrovue.errors import ConfigError

from .errors import ServiceError


class ServiceCommand(BaseCommand):
    """A command with subcommands; each maps to a `do_<name>` method.

    Service errors become one line on stderr and exit code 2; `--json` prints machine output.
    """

    subcommands = {}  # name -> (help, add_arguments(parser) or None)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=type(parser))
        for name, (help_text, extra) in self.subcommands.items():
            child = sub.add_parser(name, help=help_text, called_from_command_line=getattr(
                parser, "called_from_command_line", None))
            child.add_argument("--json", action="store_true", help="print JSON")
            if extra:
                extra(child)

    def handle(self, *args, subcommand, **options):
        try:
            getattr(self, f"do_{subcommand}")(**options)
        except (ConfigError, ServiceError) as exc:
            raise CommandError(str(exc), returncode=2) from None

    def emit(self, data, as_json, text=None):
        if as_json:
            self.stdout.write(json.dumps(data, cls=DjangoJSONEncoder, indent=2))
        else:
            self.stdout.write(text if text is not None else json.dumps(data, cls=DjangoJSONEncoder))


def read_json(name):
    """A JSON document from a file named on the command line (- for stdin)."""
    try:
        if name == "-":
            return json.load(sys.stdin)
        with open(name, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise ConfigError({"file": [f"cannot read '{name}': {exc.strerror}"]}) from None
    except ValueError as exc:
        raise ConfigError({"file": [f"'{name}' is not JSON: {exc}"]}) from None
