"""Allow-list validation of everything that can reach an FFmpeg argv.

Pure functions: each takes what a user sent and returns the normalised value or raises
ConfigError with per-field messages. The API turns that into HTTP 400, the CLI into exit 2.
"""
import ipaddress
import math
import re
from pathlib import Path

from django.conf import settings

from retrovue.errors import ConfigError

from .hostnames import validate_host_label, validate_host_name

# What XML 1.0 cannot carry (the guide is XML): control characters but tab and newlines,
# surrogates, U+FFFE and U+FFFF.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
DESCRIPTION_LIMIT = 2000
GROUP_LIMIT = 50
# Control characters (C0, DEL, C1) and the line and paragraph separators: a group is one M3U line.
NOT_PRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

VIDEO_CODECS = {
    # name accepted in config -> FFmpeg encoder (None = stream copy)
    "h264": "libx264",
    "libx264": "libx264",
    "hevc": "libx265",
    "h265": "libx265",
    "libx265": "libx265",
    "mpeg2video": "mpeg2video",
    # Hardware encoders are valid configuration; a host whose FFmpeg lacks them reports ERROR.
    "h264_nvenc": "h264_nvenc",
    "hevc_nvenc": "hevc_nvenc",
    "h264_vaapi": "h264_vaapi",
    "h264_qsv": "h264_qsv",
    "copy": None,
}
AUDIO_CODECS = {"aac": "aac", "mp2": "mp2", "ac3": "ac3", "eac3": "eac3", "copy": None}
PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast",
    "medium", "slow", "slower", "veryslow",
)
PROTOCOLS = ("udp",)

MUX_MODES = ("vbr", "cbr")
# Audio is encoded at this rate (argv.audio_args); TS and PES headers, PSI/SI and PCR take about
# 4 %, and the encoder's rate control needs room: a constant mux rate below this drops packets.
AUDIO_BPS = 128_000
CBR_HEADROOM = 1.15

_BITRATE = re.compile(r"^(\d{1,6})(?:\.(\d{1,3}))?([kKmM]?)$")
_RESOLUTION = re.compile(r"^(\d{2,4})x(\d{2,4})$")
MIN_BITRATE_BPS = 16_000
MAX_BITRATE_BPS = 200_000_000


def bitrate_bps(value):
    """'5000k' -> 5_000_000. Raises ValueError for anything else."""
    text = str(value).strip()
    match = _BITRATE.match(text)
    if not match:
        raise ValueError(f"'{value}' is not a bitrate like 5000k or 5M")
    whole, frac, unit = match.groups()
    number = float(f"{whole}.{frac or 0}")
    bps = int(number * {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()])
    if not MIN_BITRATE_BPS <= bps <= MAX_BITRATE_BPS:
        raise ValueError(f"'{value}' is outside 16k..200M")
    return bps


def _choice(value, allowed, what):
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValueError(f"'{value}' is not an allowed {what}: {', '.join(sorted(allowed))}")
    return value.lower()


def _bitrate(value):
    bitrate_bps(value)
    return str(value).strip().lower()


def _resolution(value):
    match = _RESOLUTION.match(str(value))
    if not match:
        raise ValueError(f"'{value}' is not a resolution like 1920x1080")
    width, height = map(int, match.groups())
    if not (16 <= width <= 7680 and 16 <= height <= 4320) or width % 2 or height % 2:
        raise ValueError(f"'{value}' must have even sides within 16x16..7680x4320")
    return f"{width}x{height}"


def _number(value, low, high, what, integer=False):
    if isinstance(value, bool):
        raise ValueError(f"'{value}' is not a {what}")
    if not isinstance(value, (int, float)):
        try:
            value = float(value) if not integer else int(str(value))
        except (TypeError, ValueError):
            raise ValueError(f"'{value}' is not a {what}") from None
    if not math.isfinite(value):  # 1e309 in JSON is infinity
        raise ValueError(f"'{value}' is not a {what}")
    if integer and int(value) != value:
        raise ValueError(f"'{value}' is not a whole {what}")
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low}..{high}")
    return int(value) if integer or float(value).is_integer() else float(value)


def _address(value):
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        raise ValueError(f"'{value}' is not an IP address") from None
    if address.is_unspecified or str(address) == "255.255.255.255":
        raise ValueError(f"'{value}' cannot be an output address")
    refusal = output_refusal({"multicast_address": str(address)})
    if refusal:
        raise ValueError(refusal)
    return str(address)


def output_refusal(network):
    """Why this site does not send there (an address outside RETROVUE_OUTPUT_NETWORKS, a TTL
    above RETROVUE_MAX_UDP_TTL), or None. Checked when a channel is configured and again when
    it starts, so narrowing the settings also holds channels configured before."""
    address = ipaddress.ip_address(network["multicast_address"])
    networks = [n for n in settings.RETROVUE_OUTPUT_NETWORKS if n.version == address.version]
    if not any(address in allowed for allowed in networks):
        return f"{address} is outside the output networks this site allows (RETROVUE_OUTPUT_NETWORKS)"
    limit = settings.RETROVUE_MAX_UDP_TTL
    if network.get("ttl", 1) > limit:
        return f"a TTL of {network['ttl']} is above this site's limit of {limit} (RETROVUE_MAX_UDP_TTL)"
    return None


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"'{value}' is not true or false")
    return value


FIELD_RULES = {
    "stream_settings": {
        "video_codec": lambda v: _choice(v, VIDEO_CODECS, "video codec"),
        "audio_codec": lambda v: _choice(v, AUDIO_CODECS, "audio codec"),
        "bitrate": _bitrate,
        "resolution": _resolution,
        "frame_rate": lambda v: _number(v, 1, 120, "frame rate"),
    },
    "quality_settings": {
        "preset": lambda v: _choice(v, PRESETS, "preset"),
        "crf": lambda v: _number(v, 0, 51, "crf", integer=True),
        "max_bitrate": _bitrate,
        "buffer_size": _bitrate,
    },
    "network_settings": {
        "protocol": lambda v: _choice(v, PROTOCOLS, "protocol"),
        "multicast_address": _address,
        "port": lambda v: _number(v, 1, 65535, "port", integer=True),
        "ttl": lambda v: _number(v, 1, settings.RETROVUE_MAX_UDP_TTL, "ttl", integer=True),
        # Constant bitrate (null-packet stuffing to `muxrate`) for managed networks, and the
        # service information set-top boxes and middleware read (SDT, NIT, PAT/PMT).
        "mode": lambda v: _choice(v, MUX_MODES, "mux mode"),
        "muxrate": _bitrate,
        "service_id": lambda v: _number(v, 1, 65535, "service id", integer=True),
        "transport_stream_id": lambda v: _number(v, 1, 65535, "transport stream id", integer=True),
        "original_network_id": lambda v: _number(v, 1, 65535, "network id", integer=True),
        "provider_name": lambda v: _text(v, 64),
    },
    "resource_limits": {
        "max_cpu_percent": lambda v: _number(v, 1, 6400, "CPU percent"),
        "max_memory_mb": lambda v: _number(v, 16, 1_048_576, "memory size in MB", integer=True),
        "max_bandwidth_mbps": lambda v: _number(v, 0.1, 100_000, "bandwidth in Mbit/s"),
    },
    "failover_settings": {
        "auto_restart": _boolean,
        "max_restart_attempts": lambda v: _number(v, 0, 100, "attempt count", integer=True),
        "restart_delay_seconds": lambda v: _number(v, 0, 3600, "delay in seconds"),
    },
    "placement_settings": {
        "host": validate_host_name,
        "label": validate_host_label,
    },
}


def validate_section(section, values, errors):
    """Validate one settings dict; unknown keys are errors (typos must not pass silently)."""
    if not isinstance(values, dict):
        errors[section] = ["must be an object"]
        return {}
    rules = FIELD_RULES[section]
    clean = {}
    for key, value in values.items():
        if key not in rules:
            errors[f"{section}.{key}"] = [f"unknown setting; allowed: {', '.join(sorted(rules))}"]
            continue
        try:
            clean[key] = rules[key](value)
        except ValueError as exc:
            errors[f"{section}.{key}"] = [str(exc)]
    return clean


def validate_config(sections):
    """Validate a full config (all four sections, already merged with defaults)."""
    errors = {}
    clean = {name: validate_section(name, sections.get(name, {}), errors) for name in FIELD_RULES}
    stream = clean["stream_settings"]
    copy_video = stream.get("video_codec") == "copy"
    if not copy_video:
        for key in ("video_codec", "resolution", "frame_rate"):
            if key not in stream and f"stream_settings.{key}" not in errors:
                errors[f"stream_settings.{key}"] = ["required unless video_codec is copy"]
    for key in ("multicast_address", "port"):
        if key not in clean["network_settings"] and f"network_settings.{key}" not in errors:
            errors[f"network_settings.{key}"] = ["required"]
    errors.update(cbr_problems(clean))
    if errors:
        raise ConfigError(errors)
    return clean


def cbr_problems(clean):
    """A constant mux rate must be asked for with its rate and hold what is encoded into it: the
    video (encoded at constant `bitrate` in this mode, crf aside) and the audio, with
    CBR_HEADROOM. (A copy channel's sources are not known here: they must fit the rate given.)"""
    network, stream = clean["network_settings"], clean["stream_settings"]
    if network.get("mode") != "cbr":
        return {"network_settings.muxrate": ["only with mode cbr"]} if "muxrate" in network else {}
    if "muxrate" not in network:
        return {"network_settings.muxrate": ["required with mode cbr"]}
    if stream.get("video_codec") == "copy":
        return {}
    video = bitrate_bps(stream.get("bitrate", "3000k"))
    audio = AUDIO_BPS if stream.get("audio_codec") != "copy" else 0
    need = math.ceil((video + audio) * CBR_HEADROOM / 1000)
    if bitrate_bps(network["muxrate"]) < need * 1000:
        return {"network_settings.muxrate": [f"too low: at least {need}k for {video // 1000}k video and "
                                             f"{audio // 1000}k audio (+{round((CBR_HEADROOM - 1) * 100)}% for TS overhead)"]}
    return {}


def _text(value, limit):
    problem = text_problem(value, limit)
    if problem:
        raise ValueError(problem)
    return value


def text_problem(value, limit):
    """Why `value` is not text a guide, page or slate can show, or None: a string of at most
    `limit` characters (never cut to fit) that XML can carry."""
    if not isinstance(value, str) or len(value) > limit:
        return f"must be text of at most {limit} characters"
    if NOT_XML.search(value):
        return "holds a character XML cannot carry (a control character, a surrogate, U+FFFE or U+FFFF)"
    return None


def validate_description(value):
    problem = text_problem("" if value is None else value, DESCRIPTION_LIMIT)
    if problem:
        raise ConfigError({"description": [problem]})
    return value or ""


def validate_on_demand(value):
    """A JSON boolean (absent: false); "yes" or 1 are refused rather than guessed."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError({"on_demand": ["must be true or false"]})
    return value


def validate_name(name):
    if not isinstance(name, str) or not name.strip():
        raise ConfigError({"name": ["required"]})
    if len(name) > 100 or any(ord(c) < 32 for c in name) or NOT_XML.search(name):
        raise ConfigError({"name": ["must be 1..100 printable characters"]})
    return name.strip()


def validate_group(group):
    """The channel's group in players' lists: 1..50 printable characters, or blank (none)."""
    if group is None:
        return ""
    if not isinstance(group, str) or len(group.strip()) > GROUP_LIMIT or NOT_PRINTABLE.search(group) \
            or NOT_XML.search(group):
        raise ConfigError({"group": [f"must be text of at most {GROUP_LIMIT} printable characters"]})
    return group.strip()


def validate_number(number):
    try:
        return _number(number, 1, 9999, "channel number", integer=True)
    except ValueError as exc:
        raise ConfigError({"number": [str(exc)]}) from None


def validate_playlist(paths, media_roots):
    """Each entry must be an existing regular file under one of the configured media roots."""
    if paths is None:
        return []
    if not isinstance(paths, (list, tuple)):
        raise ConfigError({"playlist": ["must be a list of file paths"]})
    errors, clean = {}, []
    for index, raw in enumerate(paths):
        field = f"playlist[{index}]"
        if not isinstance(raw, str) or not raw or any(c in raw for c in "\n\r\0"):
            errors[field] = ["must be a file path"]
            continue
        path = Path(raw).expanduser().resolve()
        if not any(path.is_relative_to(root) for root in media_roots):
            roots = ":".join(str(r) for r in media_roots)
            errors[field] = [f"'{raw}' is outside the media roots ({roots})"]
        elif any(ord(c) < 32 or ord(c) == 127 for c in str(path)):  # checked on what is stored and opened
            errors[field] = [f"'{raw}' leads to a file whose name holds control characters"]
        elif not path.is_file():
            errors[field] = [f"'{raw}' does not exist or is not a file"]
        else:
            clean.append(str(path))
    if errors:
        raise ConfigError(errors)
    return clean


def udp_url(network, ttl):
    """The output's URL as FFmpeg and players take it (the inverse of parse_output_url)."""
    address = network["multicast_address"]
    host = f"[{address}]" if ":" in address else address
    return f"udp://{host}:{network['port']}?pkt_size=1316&ttl={network.get('ttl', ttl)}"


def parse_output_url(url):
    """'udp://127.0.0.1:5001' -> network_settings dict (validated)."""
    match = re.match(r"^(udp)://(\[[0-9a-fA-F:]+\]|[^:/\[\]]+):(\d+)/?$", str(url).strip())
    if not match:
        raise ConfigError({"output": [f"'{url}' is not like udp://127.0.0.1:5001"]})
    protocol, host, port = match.groups()
    raw = {"protocol": protocol, "multicast_address": host.strip("[]"), "port": port}
    errors = {}
    clean = validate_section("network_settings", raw, errors)
    if errors:
        raise ConfigError({"output": [" ".join(m for msgs in errors.values() for m in msgs)]})
    return clean
