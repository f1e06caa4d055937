"""The open-alerts banner of every dashboard page (templates/dashboards/alert_banner.html)."""
from django.db.models import Count, Window
from django.utils.functional import cached_property

from streams_app.models import Alert

BANNER_SIZE = 5


class OpenAlerts:
    """The newest open alerts and how many are open, for a user who may see alerts; read in one
    query, and only when a page shows them (the admin and the API never do)."""

    def __init__(self, user):
        self.user = user

    @cached_property
    def newest(self):
        if not (self.user and self.user.has_perm("streams_app.view_alert")):
            return []
        return list(Alert.objects.filter(cleared_at=None).select_related("channel")
                    .annotate(open_count=Window(Count("pk"))).order_by("-raised_at", "-pk")[:BANNER_SIZE])

    @property
    def count(self):
        return self.newest[0].open_count if self.newest else 0


def open_alerts(request):
    return {"open_alerts": OpenAlerts(getattr(request, "user", None))}
