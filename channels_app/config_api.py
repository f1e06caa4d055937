"""GET, PUT and PATCH /api/config: the system defaults (the design's configuration block), thin
over channels_app.system_config."""
from rest_framework import serializers as s
from rest_framework.response import Response
from rest_framework.views import APIView

from retrovue.api import documented

from . import system_config


class ResourceAllocation(s.Serializer):
    strategy = s.ChoiceField(["spread", "pack"], required=False, help_text="host placement")
    cpu_per_channel = s.FloatField(required=False, help_text="default max_cpu_percent of a channel (percent of a core)")
    memory_per_channel = s.IntegerField(required=False, help_text="default max_memory_mb of a channel")


class SystemFailoverSettings(s.Serializer):
    auto_restart = s.BooleanField(required=False)
    max_restart_attempts = s.IntegerField(required=False, help_text="consecutive attempts before giving up")
    restart_delay_seconds = s.FloatField(required=False, help_text="alias: restart_delay")


class AlertThresholds(s.Serializer):
    cpu_usage = s.FloatField(required=False, help_text="percent of a limit; alias: cpu_percent")
    memory_usage = s.FloatField(required=False, help_text="percent of a limit; alias: memory_percent")
    error_rate = s.FloatField(required=False, help_text="[error] lines a minute")


class Monitoring(s.Serializer):
    health_check_interval = s.IntegerField(required=False, help_text="seconds between alert and trend checks")
    alert_thresholds = AlertThresholds(required=False)


class SystemDefaults(s.Serializer):
    max_channels = s.IntegerField(required=False, help_text="channels running at once, system-wide (0: no limit)")
    resource_allocation = ResourceAllocation(required=False)
    failover_settings = SystemFailoverSettings(required=False)
    monitoring = Monitoring(required=False)


class SystemDefaultsAnswer(SystemDefaults):
    from_environment = s.ListField(child=s.CharField(), help_text="dotted keys not stored: the settings' values")


class SystemConfigView(APIView):
    permissions = {"GET": "channels_app.view_systemconfig", "PUT": "channels_app.change_systemconfig",
                   "PATCH": "channels_app.change_systemconfig"}

    @documented(SystemDefaultsAnswer)
    def get(self, request):
        return Response(system_config.describe())

    @documented(SystemDefaultsAnswer, request=SystemDefaults)
    def put(self, request):
        """Store this block; keys left out come from the environment again."""
        return Response(system_config.replace(request.data))

    @documented(SystemDefaultsAnswer, request=SystemDefaults)
    def patch(self, request):
        """Change the keys given; null sets a key or section back to the environment's value."""
        return Response(system_config.update(request.data))
