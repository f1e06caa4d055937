"""The shapes of the channel, schedule and media endpoints, for the OpenAPI schema (/api/schema/).

The views validate through the service layer; these serializers only describe what goes in and
comes out, so the schema shows real bodies."""
from rest_framework import serializers as s


class StreamSettings(s.Serializer):
    video_codec = s.CharField(help_text="h264, hevc, copy, ...")
    audio_codec = s.CharField(help_text="aac, mp3, ac3, copy")
    bitrate = s.CharField(help_text="e.g. 3000k")
    resolution = s.CharField(help_text="WIDTHxHEIGHT, e.g. 1280x720")
    frame_rate = s.FloatField()


class QualitySettings(s.Serializer):
    preset = s.CharField(required=False)
    crf = s.IntegerField(required=False, min_value=0, max_value=51)
    max_bitrate = s.CharField(required=False)
    buffer_size = s.CharField(required=False)


class NetworkSettings(s.Serializer):
    protocol = s.ChoiceField(["udp"])
    multicast_address = s.IPAddressField(help_text="within RETROVUE_OUTPUT_NETWORKS")
    port = s.IntegerField(min_value=1, max_value=65535)
    ttl = s.IntegerField(required=False, min_value=1, help_text="at most RETROVUE_MAX_UDP_TTL")
    mode = s.ChoiceField(["vbr", "cbr"], required=False, help_text="cbr: constant mux rate (null stuffing)")
    muxrate = s.CharField(required=False, help_text="with mode cbr, e.g. 6000k; must hold video + audio + 15 %")
    service_id = s.IntegerField(required=False, min_value=1, max_value=65535,
                                help_text="service id and program number (default: the channel number)")
    transport_stream_id = s.IntegerField(required=False, min_value=1, max_value=65535, help_text="default 1")
    original_network_id = s.IntegerField(required=False, min_value=1, max_value=65535, help_text="default 1")
    provider_name = s.CharField(required=False, max_length=64, help_text="SDT provider (default RetroVue)")


class ResourceLimits(s.Serializer):
    max_cpu_percent = s.FloatField(required=False)
    max_memory_mb = s.IntegerField(required=False)
    max_bandwidth_mbps = s.FloatField(required=False)


class FailoverSettings(s.Serializer):
    auto_restart = s.BooleanField(required=False)
    max_restart_attempts = s.IntegerField(required=False)
    restart_delay_seconds = s.FloatField(required=False)


class ConfigSections(s.Serializer):
    stream_settings = StreamSettings()
    quality_settings = QualitySettings()
    network_settings = NetworkSettings()
    resource_limits = ResourceLimits()
    failover_settings = FailoverSettings()


class ConfigChange(ConfigSections):
    """Any section, key by key (null removes a key), and the channel's own fields."""

    stream_settings = StreamSettings(required=False, partial=True)
    quality_settings = QualitySettings(required=False)
    network_settings = NetworkSettings(required=False, partial=True)
    resource_limits = ResourceLimits(required=False)
    failover_settings = FailoverSettings(required=False)
    quality = s.CharField(required=False, help_text="a quality profile name")
    playlist = s.ListField(child=s.CharField(), required=False, help_text="files under the media roots")
    name = s.CharField(required=False, max_length=100)
    description = s.CharField(required=False, max_length=2000)
    group = s.CharField(required=False, allow_blank=True, max_length=50,
                        help_text='the M3U group-title; blank: "RetroVue"')


class ChannelCreate(ConfigChange):
    name = s.CharField(max_length=100)
    number = s.IntegerField(min_value=1)


class LogoUpload(s.Serializer):
    logo = s.FileField(help_text="a PNG or JPEG image of at most 1 MB")


class Outputs(s.Serializer):
    udp = s.CharField()
    hls = s.CharField()


class MediaImport(s.Serializer):
    path = s.CharField(help_text="a file under the media roots, or an http(s) URL on the internet")


class MediaAsset(s.Serializer):
    id = s.IntegerField()
    source = s.CharField()
    title = s.CharField()
    duration_s = s.FloatField()
    video_codec = s.CharField()
    audio_codec = s.CharField()
    width = s.IntegerField(allow_null=True)
    height = s.IntegerField(allow_null=True)
    resolution = s.CharField(allow_null=True)
    frame_rate = s.FloatField(allow_null=True)
    audio_sample_rate = s.IntegerField(allow_null=True)
    probed_at = s.DateTimeField()


class Transition(s.Serializer):
    fill = s.ChoiceField(["SLATE", "FILLER", "CUT"])
    filler = s.JSONField(required=False, help_text="an asset: id, path or URL")


class Program(s.Serializer):
    asset = s.JSONField(help_text="an asset: id, path or URL")
    start = s.DateTimeField(required=False, allow_null=True, help_text="none: right after the previous one")
    title = s.CharField(required=False, max_length=200)
    description = s.CharField(required=False, max_length=2000)
    in_point = s.FloatField(required=False, allow_null=True)
    out_point = s.FloatField(required=False, allow_null=True)


class ScheduleChange(s.Serializer):
    timezone = s.CharField(required=False)
    loop = s.BooleanField(required=False)
    transition = Transition(required=False)
    programs = Program(many=True)


class StoredProgram(Program):
    id = s.IntegerField()
    position = s.IntegerField()
    duration_s = s.FloatField()


class Airing(s.Serializer):
    kind = s.ChoiceField(["program", "filler", "slate"])
    start = s.DateTimeField()
    end = s.DateTimeField()
    title = s.CharField()
    source = s.CharField(allow_null=True)
    program_id = s.IntegerField(allow_null=True)
    reason = s.CharField(required=False, help_text="why the slate airs in a program's slot (its source "
                                                   "cannot be read), as the channel's engine reports it")


class Schedule(ScheduleChange):
    id = s.IntegerField(allow_null=True)
    channel = s.IntegerField()
    created_at = s.DateTimeField(allow_null=True)
    programs = StoredProgram(many=True)
    current = Airing()
    upcoming = Airing(many=True)


class SwitchRequest(s.Serializer):
    asset = s.JSONField(help_text="an asset: id, path or URL")


class SwitchAccepted(s.Serializer):
    channel = s.IntegerField()
    asset = MediaAsset()
    requested_at = s.DateTimeField()
