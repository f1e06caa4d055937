"""Routes and deliveries in and out of JSON; a route's input is checked here by the model's own
rules (the admin's form runs the same ones through the model's clean)."""
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from channels_app.models import Channel
from streams_app.models import Alert

from .models import ENVIRONMENT_PREFIX, Notification, NotificationRoute, clean_target

MAX_CHANNEL_NUMBER = 2**31 - 1


class ChannelByNumber(serializers.IntegerField):
    """A channel by its number, shown as its number (null: every channel)."""

    def to_representation(self, channel):
        return channel.number

    def to_internal_value(self, data):
        number = super().to_internal_value(data)
        if not 1 <= number <= MAX_CHANNEL_NUMBER:
            raise serializers.ValidationError(f"no channel {number}")
        try:
            return Channel.objects.get(number=number)
        except Channel.DoesNotExist:
            raise serializers.ValidationError(f"no channel {number}") from None


class RouteSerializer(serializers.ModelSerializer):
    kinds = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text=f"alert kinds this route wants ({', '.join(Alert.Kind.values)}); "
                                            "empty or absent: every kind")
    channel = ChannelByNumber(required=False, allow_null=True, help_text="only this channel's alerts")

    class Meta:
        model = NotificationRoute
        fields = ["id", "name", "kind", "target", "min_severity", "kinds", "channel", "host", "enabled",
                  "send_resolved", "from_environment", "created_at"]
        read_only_fields = ["from_environment", "created_at"]

    def validate_name(self, name):
        if name.startswith(ENVIRONMENT_PREFIX):
            raise serializers.ValidationError(f"names starting with '{ENVIRONMENT_PREFIX}' are kept for "
                                              "RETROVUE_ALERT_WEBHOOKS")
        return name

    def validate_kinds(self, kinds):
        unknown = [kind for kind in kinds if kind not in Alert.Kind.values]
        if unknown:
            raise serializers.ValidationError(f"'{unknown[0][:40]}' is not one of {', '.join(Alert.Kind.values)}")
        return kinds

    def validate(self, data):
        kind = data.get("kind", getattr(self.instance, "kind", None))
        target = data.get("target", getattr(self.instance, "target", ""))
        try:
            data["target"] = clean_target(kind, target)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"target": exc.messages}) from None
        return data


class NotificationSerializer(serializers.ModelSerializer):
    route_name = serializers.CharField(source="route.name")
    kind = serializers.CharField(source="alert.kind")
    severity = serializers.CharField(source="alert.severity")
    channel = serializers.IntegerField(source="alert.channel.number", default=None)
    host = serializers.CharField(source="alert.host")
    # text, not an enum: the schema keeps one "status" enum (the channel's)
    status = serializers.CharField(help_text="pending, sent or failed")

    class Meta:
        model = Notification
        fields = ["id", "route", "route_name", "alert", "kind", "severity", "channel", "host", "event", "status",
                  "attempts", "next_attempt_at", "last_error", "created_at", "sent_at"]


class TrialOutcomeSerializer(serializers.Serializer):
    route = serializers.IntegerField()
    sent = serializers.BooleanField()
    detail = serializers.CharField(help_text="where it went, or what the receiver answered")
