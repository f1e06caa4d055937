"""GET /metrics: channels, their viewers, encode hosts and open alerts in Prometheus' text format,
read from the database at scrape time by a collector on a per-request registry (no process-global
metric state, so every web worker answers the same)."""
import hmac

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from channels_app.models import Channel
from resources_app.services import resource_status

from .models import Alert, Stream
from .monitoring import current_streams, host_usage
from .tuning import no_viewers, viewer_figures

CHANNEL_LABELS = ["channel", "name", "host"]
# (family, name, help, key in the run's health_metrics (+ restart_count), scale)
STREAM_METRICS = (
    (GaugeMetricFamily, "retrovue_channel_bitrate_kbps", "Output bitrate FFmpeg reports, kbit/s.",
     "bitrate_kbps", 1),
    (GaugeMetricFamily, "retrovue_channel_fps", "Frames per second FFmpeg reports.", "fps", 1),
    (GaugeMetricFamily, "retrovue_channel_speed", "Encoding speed; 1 is real time.", "speed", 1),
    (CounterMetricFamily, "retrovue_channel_dropped_frames",
     "Frames FFmpeg dropped (resets when it restarts).", "drop_frames", 1),
    (CounterMetricFamily, "retrovue_channel_duplicated_frames",
     "Frames FFmpeg duplicated (resets when it restarts).", "dup_frames", 1),
    (CounterMetricFamily, "retrovue_channel_restarts", "FFmpeg restarts within the current run.",
     "restart_count", 1),
    (GaugeMetricFamily, "retrovue_channel_cpu_percent",
     "CPU use of the channel's FFmpeg, percent of one core.", "cpu_percent", 1),
    (GaugeMetricFamily, "retrovue_channel_memory_bytes", "Resident memory of the channel's FFmpeg.",
     "memory_mb", 2**20),
)
# (name, help, key of monitoring.host_usage())
HOST_METRICS = (
    ("retrovue_host_capacity", "Channel slots of the encode host.", "capacity"),
    ("retrovue_host_active_streams", "Active stream runs placed on the host.", "active_streams"),
    ("retrovue_host_cpu_percent", "CPU use of the host.", "cpu_percent"),
    ("retrovue_host_memory_percent", "Memory use of the host.", "memory_percent"),
    ("retrovue_host_live", "1 when the host is online and its heartbeat is within the lease TTL.", "live"),
)


class RetroVueCollector:
    """Builds every family from the database each time it is collected."""

    def collect(self):
        streams, channels = current_streams(), list(Channel.objects.all())
        yield from channel_families(channels, streams)
        yield from viewer_families(channels, viewer_figures())
        yield from host_families(host_usage())
        yield from reservation_families(resource_status()["hosts"])
        yield alert_family(Alert.objects.filter(cleared_at=None).select_related("channel"))


def channel_families(channels, streams):
    up = GaugeMetricFamily("retrovue_channel_up", "1 when the channel is RUNNING.", labels=CHANNEL_LABELS)
    status = GaugeMetricFamily("retrovue_channel_status", "The channel's status, as a label (value 1).",
                               labels=CHANNEL_LABELS + ["status"])
    families = [(family(name, doc, labels=CHANNEL_LABELS), key, scale)
                for family, name, doc, key, scale in STREAM_METRICS]
    for channel in channels:
        stream = streams.get(channel.pk)
        labels = [str(channel.number), channel.name, stream.host if stream else ""]
        up.add_metric(labels, float(channel.status == Channel.Status.RUNNING))
        status.add_metric(labels + [channel.status], 1)
        if stream is None or stream.status not in Stream.ACTIVE:
            continue
        values = {**(stream.health_metrics or {}), "restart_count": stream.restart_count}
        for family, key, scale in families:
            if values.get(key) is not None:
                family.add_metric(labels, values[key] * scale)
    return [up, status, *(family for family, _key, _scale in families)]


def viewer_families(channels, figures):
    """Viewers now by kind, and all-time tune-ins and watch time (sessions only accumulate, so
    these are counters), for every channel; `figures` is tuning.viewer_figures() of all time."""
    viewers = GaugeMetricFamily("retrovue_viewers", "Viewers watching the channel now, by kind (ts, hls).",
                                labels=["channel", "name", "kind"])
    tune_ins = CounterMetricFamily("retrovue_tune_ins", "Viewer sessions the channel has had.",
                                   labels=["channel", "name"])
    watched = CounterMetricFamily("retrovue_watch_seconds", "Seconds viewers have watched the channel.",
                                  labels=["channel", "name"])
    for channel in channels:
        labels, counts = [str(channel.number), channel.name], figures.get(channel.pk, no_viewers())
        for kind, count in counts.viewers_by_kind.items():
            viewers.add_metric(labels + [kind], count)
        tune_ins.add_metric(labels, counts.tune_ins)
        watched.add_metric(labels, counts.watch_time_s)
    return [viewers, tune_ins, watched]


def host_families(hosts):
    for name, doc, key in HOST_METRICS:
        family = GaugeMetricFamily(name, doc, labels=["host"])
        for host in hosts:
            if host[key] is not None:
                family.add_metric([host["name"]], float(host[key]))
        yield family


def alert_family(open_alerts):
    """1 for each open alert; a host alert's channel label is empty."""
    family = GaugeMetricFamily("retrovue_alert_open", "1 for each open alert.",
                               labels=["kind", "severity", "channel", "host"])
    for alert in open_alerts:
        family.add_metric([alert.kind, alert.severity, str(alert.channel.number) if alert.channel else "",
                           alert.host], 1)
    return family


def authorized(request):
    """True unless RETROVUE_METRICS_TOKEN is set and the request lacks `Bearer <token>`."""
    token = getattr(settings, "RETROVUE_METRICS_TOKEN", "")
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@require_GET
def metrics_view(request):
    if not authorized(request):
        response = HttpResponse("a bearer token is required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    registry.register(RetroVueCollector())
    encoder, content_type = choose_encoder(request.headers.get("Accept"))
    return HttpResponse(encoder(registry), content_type=content_type)


def reservation_families(hosts):
    """Capacity, reserved and used per host and resource (CPU in percent of one core, MB, Mbit/s)."""
    families = {part: GaugeMetricFamily(f"retrovue_host_resource_{part}",
                                        f"{part.capitalize()} of the host's resource, by resource.",
                                        labels=["host", "resource"])
                for part in ("capacity", "reserved", "used")}
    for host in hosts:
        for resource in ("cpu", "memory_mb", "bandwidth_mbps"):
            for part, family in families.items():
                if host[resource][part] is not None:
                    family.add_metric([host["name"], resource], float(host[resource][part]))
    return list(families.values())
