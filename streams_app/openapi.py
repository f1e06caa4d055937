"""The shapes of the running-channel, monitoring and alert endpoints, for the OpenAPI schema."""
from rest_framework import serializers as s

from .availability import SPANS
from .monitoring import VERDICTS


class Run(s.Serializer):
    id = s.IntegerField()
    host = s.CharField()
    generation = s.IntegerField()
    status = s.CharField()
    reason = s.CharField()
    pid = s.IntegerField(allow_null=True)
    started_at = s.DateTimeField(allow_null=True)
    ended_at = s.DateTimeField(allow_null=True)
    exit_code = s.IntegerField(allow_null=True)
    restart_count = s.IntegerField()
    heartbeat_at = s.DateTimeField(allow_null=True)


class StreamStatus(s.Serializer):
    channel = s.UUIDField()
    number = s.IntegerField()
    channel_status = s.CharField()
    desired_state = s.CharField()
    reason = s.CharField()
    stream = Run(allow_null=True)


class StreamHealth(s.Serializer):
    channel = s.UUIDField()
    number = s.IntegerField()
    verdict = s.ChoiceField([*VERDICTS, "STOPPED"])
    reasons = s.ListField(child=s.CharField())
    restart_count = s.IntegerField()
    lease_age_s = s.FloatField(allow_null=True)
    error_log = s.ListField(child=s.DictField(), help_text="the last FFmpeg error lines: {at, line}")


class StreamMetrics(s.Serializer):
    channel = s.UUIDField()
    number = s.IntegerField()
    status = s.CharField(allow_null=True)
    host = s.CharField(allow_null=True)
    metrics = s.DictField(help_text="FFmpeg progress with cpu_percent, memory_mb, processes, bitrate_kbps")
    series = s.DictField(help_text="recent samples per metric")


class BulkOutcome(s.Serializer):
    channels = s.DictField(child=s.CharField(), help_text="channel number -> what happened to it")


class HostTotals(s.Serializer):
    hosts = s.ListField(child=s.DictField())
    totals = s.DictField()


class Health(HostTotals):
    at = s.DateTimeField()
    channels = s.DictField(help_text="total and by_status")
    active = s.ListField(child=s.DictField(), help_text="running channels with verdict, speed, fps, bitrate")
    failed = s.ListField(child=s.DictField())
    quality = s.ListField(child=s.DictField())
    error_rates = s.ListField(child=s.DictField())
    alerts = s.ListField(child=s.DictField())


class Performance(s.Serializer):
    window_minutes = s.IntegerField()
    since = s.DateTimeField()
    until = s.DateTimeField()
    channels = s.ListField(child=s.DictField(), help_text=(
        "per channel: samples, speed, drops, restarts, findings, average_bitrate_kbps, frame_drops, "
        "latency_ms (configured, not measured), throughput_fps, throughput_kbps, availability, quality_score"))


class AvailabilityFigures(s.Serializer):
    uptime_s = s.FloatField()
    downtime_s = s.FloatField()
    availability_percent = s.FloatField(allow_null=True, help_text="uptime / (uptime + downtime); null: neither")
    failures = s.IntegerField(help_text="outages that began in the window")
    mtbf_s = s.FloatField(allow_null=True, help_text="uptime / failures")
    mttr_s = s.FloatField(allow_null=True, help_text="downtime / failures")


AvailabilityWindows = type("AvailabilityWindows", (s.Serializer,), {span: AvailabilityFigures() for span in SPANS})


class ChannelAvailability(s.Serializer):
    number = s.IntegerField()
    name = s.CharField()
    desired_state = s.CharField()
    windows = AvailabilityWindows()


class Availability(s.Serializer):
    at = s.DateTimeField()
    channels = ChannelAvailability(many=True)


class ViewersByKind(s.Serializer):
    ts = s.IntegerField(help_text="HTTP MPEG-TS connections")
    hls = s.IntegerField(help_text="HLS clients")


class ChannelViewers(s.Serializer):
    number = s.IntegerField()
    name = s.CharField()
    viewers_now = s.IntegerField(help_text="sessions not ended")
    viewers_by_kind = ViewersByKind()
    tune_ins = s.IntegerField(help_text="sessions started since `since`")
    watch_time_s = s.FloatField(help_text="seconds watched since `since`, over all sessions")
    since = s.DateTimeField(help_text="start of the window: now minus `hours`")
