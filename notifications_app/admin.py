"""Routes are edited here (the model's clean checks them, as the API does); deliveries are a
read-only record. Routes from RETROVUE_ALERT_WEBHOOKS are read-only too: the environment owns them."""
from django.contrib import admin, messages

from retrovue.record_admin import RecordAdmin

from .delivery import send_trial
from .models import Notification, NotificationRoute


@admin.register(NotificationRoute)
class NotificationRouteAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "target", "min_severity", "kinds", "channel", "host", "enabled",
                    "send_resolved", "from_environment"]
    list_filter = ["kind", "enabled", "from_environment"]
    list_select_related = ["channel"]
    search_fields = ["name", "target", "host"]
    actions = ["send_test"]

    @admin.action(description="Send test notification", permissions=["change"])
    def send_test(self, request, queryset):
        for route in queryset:
            outcome = send_trial(route)
            self.message_user(request, f"{route.name}: {outcome['detail']}",
                              messages.SUCCESS if outcome["sent"] else messages.ERROR)

    def has_change_permission(self, request, obj=None):
        return not (obj and obj.from_environment) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not (obj and obj.from_environment) and super().has_delete_permission(request, obj)


@admin.register(Notification)
class NotificationAdmin(RecordAdmin):
    list_display = ["created_at", "route", "alert", "event", "status", "attempts", "next_attempt_at", "sent_at",
                    "last_error"]
    list_filter = ["status", "event", "route"]
    list_select_related = ["route", "alert__channel"]
    search_fields = ["route__name", "last_error", "alert__message"]
