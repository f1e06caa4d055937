"""`retrovue config show [--json]` and `retrovue config load FILE`: the system defaults (the
design's configuration block). A file is JSON, or YAML when PyYAML is installed; bad input exits
2 with one line and writes nothing."""
import json as jsonlib
from pathlib import Path

from channels_app import system_config
from retrovue.commands import ServiceCommand
from retrovue.errors import ConfigError

try:
    import yaml
except ImportError:  # optional: JSON files only
    yaml = None


def _load_args(parser):
    parser.add_argument("file", help="the block as JSON (or YAML with PyYAML installed); keys left out "
                                     "come from the environment again")


def read_block(path):
    """The file's block; ConfigError (one line) when it cannot be read or parsed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError({"file": [f"cannot read {path}: {exc}"]}) from None
    try:
        return jsonlib.loads(text)
    except ValueError as exc:
        if yaml is None:
            raise ConfigError({"file": [f"{path} is not JSON ({exc}); YAML needs PyYAML installed"]}) from None
        json_error = exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise ConfigError({"file": [f"{path} is neither JSON ({json_error}) nor YAML{at}"]}) from None


def lines(described):
    """`dotted.key = value` per key, marked where it comes from."""
    from_environment = set(described.pop(system_config.READ_ONLY))
    return [f"{path} = {jsonlib.dumps(value)}  ({'environment' if path in from_environment else 'stored'})"
            for path, value in system_config.flatten(described).items()]


class Command(ServiceCommand):
    help = "Show or load the system defaults (max_channels, resource_allocation, failover_settings, monitoring)."
    subcommands = {
        "show": ("the effective defaults and where each comes from", None),
        "load": ("store the block in FILE (replacing what was stored)", _load_args),
    }

    def do_show(self, json, **_):
        described = system_config.describe()
        self.emit(described, json, "\n".join(lines(dict(described))))

    def do_load(self, file, json, **_):
        described = system_config.replace(read_block(file))
        self.emit(described, json, "\n".join(["stored:", *lines(dict(described))]))
