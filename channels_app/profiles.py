"""Quality profiles (the `quality` shortcut) and the product's default channel settings."""
import copy

QUALITY_PROFILES = {
    "1080p": {
        "stream_settings": {"video_codec": "h264", "audio_codec": "aac", "bitrate": "5000k",
                            "resolution": "1920x1080", "frame_rate": 30},
        "quality_settings": {"preset": "veryfast", "crf": 23, "max_bitrate": "6000k",
                             "buffer_size": "12000k"},
    },
    "720p": {
        "stream_settings": {"video_codec": "h264", "audio_codec": "aac", "bitrate": "3000k",
                            "resolution": "1280x720", "frame_rate": 30},
        "quality_settings": {"preset": "veryfast", "crf": 23, "max_bitrate": "3500k",
                             "buffer_size": "7000k"},
    },
    "480p": {
        "stream_settings": {"video_codec": "h264", "audio_codec": "aac", "bitrate": "1500k",
                            "resolution": "854x480", "frame_rate": 30},
        "quality_settings": {"preset": "veryfast", "crf": 23, "max_bitrate": "1800k",
                             "buffer_size": "3600k"},
    },
    # Pre-encoded media passes through untouched; resolution and rate describe the expected
    # format and size the slate that fills an empty playlist.
    "copy": {
        "stream_settings": {"video_codec": "copy", "audio_codec": "copy", "bitrate": "3000k",
                            "resolution": "1280x720", "frame_rate": 30},
        "quality_settings": {"preset": "veryfast", "crf": 23, "max_bitrate": "3500k",
                             "buffer_size": "7000k"},
    },
}
DEFAULT_QUALITY = "720p"
# Every output's audio rate, the slate's included: a copy channel's sources must already have it.
AUDIO_SAMPLE_RATE = 48000
DEFAULT_RESOURCE_LIMITS = {"max_cpu_percent": 25, "max_memory_mb": 2048, "max_bandwidth_mbps": 10}
# What one channel of each profile reserves when the quality shortcut is used without explicit
# resource_limits: CPU in percent of one core (libx264 veryfast at 30 fps on a 2020s x86 core),
# memory in MB, bandwidth the profile's max bitrate plus audio and MPEG-TS overhead.
# `retrovue resources calibrate` measures the real cost on a host.
PROFILE_RESOURCES = {
    "1080p": {"max_cpu_percent": 150, "max_memory_mb": 512, "max_bandwidth_mbps": 7},
    "720p": {"max_cpu_percent": 75, "max_memory_mb": 384, "max_bandwidth_mbps": 4.5},
    "480p": {"max_cpu_percent": 35, "max_memory_mb": 256, "max_bandwidth_mbps": 2.5},
    "copy": {"max_cpu_percent": 3, "max_memory_mb": 192, "max_bandwidth_mbps": 4.5},
}
BASE_UDP_PORT = 5000


def default_network(number):
    """Loopback unicast on a port derived from the channel number: safe until an operator sets it."""
    return {"protocol": "udp", "multicast_address": "127.0.0.1", "port": BASE_UDP_PORT + number % 60000}


def merged_sections(number, quality=None, given=None, base=None, default_limits=None):
    """Build the config sections: base (or the defaults) < quality profile < explicit keys. A new
    channel's resource_limits default to `default_limits` (the system defaults' per-channel ones)."""
    given = given or {}
    sections = copy.deepcopy(base) if base else {
        **copy.deepcopy(QUALITY_PROFILES[DEFAULT_QUALITY]),
        "network_settings": default_network(number),
        "resource_limits": dict(default_limits or DEFAULT_RESOURCE_LIMITS),
        "failover_settings": {},
        "placement_settings": {},
    }
    if quality:
        sections.update(copy.deepcopy(QUALITY_PROFILES[quality]))
        if "resource_limits" not in given:
            sections["resource_limits"] = dict(PROFILE_RESOURCES[quality])
    for name, values in given.items():
        if isinstance(values, dict) and isinstance(sections.get(name), dict):
            merged = {**sections[name], **values}
            sections[name] = {key: value for key, value in merged.items() if value is not None}
        else:
            sections[name] = values
    return sections
