"""The seed's performance analytics, added to each channel of analyze_channel_performance: average
bitrate, frame drops, latency, throughput and a quality score. Their definitions live here and in
the README ("Availability and performance"), so the API, the page and the CLI agree."""
from django.conf import settings

from .playout.argv import MUX_MAX_DELAY_US
from .playout.copy import CopyMode

# The quality score's penalties (points out of 100) and where each is spent in full.
SLOW_POINTS, DROP_POINTS, RESTART_POINTS = 40, 30, 30
DROPS_PER_MINUTE_AT_WORST = 10
RESTARTS_AT_WORST = 3


def configured_latency_ms(stream_settings):
    """Source-to-output latency as configured, not measured (the engine measures no per-frame
    delay): the pacer feeds each frame its lead ahead of its due time to cover the output stage
    (CopyMode.lead in copy mode, RETROVUE_PLAYOUT_LEAD_SECONDS when encoding), and the muxers
    announce decode times MUX_MAX_DELAY_US after the PCR that carries them."""
    copy = (stream_settings or {}).get("video_codec") == "copy"
    lead = CopyMode.lead if copy else settings.RETROVUE_PLAYOUT_LEAD_SECONDS
    return round(1000 * lead + MUX_MAX_DELAY_US / 1000)


def quality_score(samples, slow_samples, drops, restarts, window_minutes, availability_percent):
    """0-100, or None with nothing to judge (no samples and no as-run time in the window):

        availability/100 x (100 - 40 x slow share - 30 x min(1, drops a minute / 10)
                                 - 30 x min(1, restarts / 3))

    slow share: samples below real time; availability: of the window's up + down time (100 when
    the as-run log holds none). A channel off air the whole window scores 0."""
    if not samples and availability_percent is None:
        return None
    slow_share = slow_samples / samples if samples else 0.0
    penalty = (SLOW_POINTS * slow_share
               + DROP_POINTS * min(1.0, drops / window_minutes / DROPS_PER_MINUTE_AT_WORST)
               + RESTART_POINTS * min(1.0, restarts / RESTARTS_AT_WORST))
    share = 1.0 if availability_percent is None else availability_percent / 100
    return round(share * (100 - penalty), 1)


def performance_analytics(entry, stats, availability, window_minutes, stream_settings):
    """The seed's keys for a channel's entry, from its sample statistics (`stats`: slow_samples and
    throughput_kbps_avg) and its availability figures over the same window."""
    return {
        "average_bitrate_kbps": _rounded(entry["bitrate_kbps"]["avg"]),
        "frame_drops": entry["drops"],
        "latency_ms": configured_latency_ms(stream_settings),
        "throughput_fps": _rounded(entry["fps"]["avg"]),
        "throughput_kbps": _rounded(stats.get("throughput_kbps_avg")),
        "availability": availability,
        "quality_score": quality_score(entry["samples"], stats["slow_samples"], entry["drops"], entry["restarts"],
                                       window_minutes, availability["availability_percent"]),
    }


def _rounded(value):
    return None if value is None else round(value, 1)
