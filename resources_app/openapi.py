"""The shapes of the resource endpoints, for the OpenAPI schema."""
from rest_framework import serializers as s


class ResourceStatus(s.Serializer):
    hosts = s.ListField(child=s.DictField(), help_text="per host: state, live, labels, channels, and "
                                                         "capacity/reserved/used of cpu, memory_mb, bandwidth_mbps; "
                                                         "limits_enforced and limits_note: whether its worker "
                                                         "holds each channel to its resource_limits")
    totals = s.DictField()


class CapacityPlan(s.Serializer):
    hosts = s.DictField(help_text="per host and profile: channels that fit by_reservation and by_measurement")
    totals = s.DictField()


class AllocationRequest(s.Serializer):
    channel = s.IntegerField(help_text="channel number or UUID")
    cpu = s.FloatField(required=False, help_text="cores")
    memory_mb = s.IntegerField(required=False)
    bandwidth_mbps = s.FloatField(required=False)


class Allocation(s.Serializer):
    channel = s.IntegerField()
    host = s.CharField()
    cpu = s.FloatField()
    cpu_percent = s.FloatField()
    memory_mb = s.IntegerField()
    bandwidth_mbps = s.FloatField()
    manual = s.BooleanField()
    running = s.BooleanField()


class ReleaseRequest(s.Serializer):
    channel = s.IntegerField(help_text="channel number or UUID")


class Released(s.Serializer):
    channel = s.IntegerField()
    released = s.BooleanField()


class DrainRequest(s.Serializer):
    migrate = s.BooleanField(required=False, help_text="move its channels away one by one")


class HostSummary(s.Serializer):
    name = s.CharField()
    state = s.CharField()
    migrate = s.BooleanField()
    channels = s.IntegerField()
