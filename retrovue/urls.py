"""URL map: admin, the JSON API under /api/, HLS windows under /hls/, the IPTV surface (/iptv/, HDHomeRun endpoints) and /metrics."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from channels_app import api as channels
from channels_app import config_api
from channels_app import schedule_api
from library_app import api as library
from notifications_app import api as notifications
from resources_app import api as resources
from streams_app import alerts_api, asrun_api, monitoring_api, prometheus, viewers_api
from streams_app import api as streams
from streams_app.viewers import hls_file

api = [
    path("channels", channels.ChannelList.as_view()),
    path("channels/start-all", streams.BulkAction.as_view(action="start_all_channels")),
    path("channels/stop-all", streams.BulkAction.as_view(action="stop_all_channels")),
    path("channels/restart-failed", streams.BulkAction.as_view(action="restart_failed_channels")),
    path("channels/<str:ref>", channels.ChannelDetail.as_view()),
    path("channels/<str:ref>/config", channels.ChannelConfigView.as_view()),
    path("channels/<str:ref>/logo", channels.ChannelLogoView.as_view()),
    path("channels/<str:ref>/start", streams.ChannelAction.as_view(action="start")),
    path("channels/<str:ref>/stop", streams.ChannelAction.as_view(action="stop")),
    path("channels/<str:ref>/schedule", schedule_api.ScheduleView.as_view()),
    path("channels/<str:ref>/switch", schedule_api.SwitchView.as_view()),
    path("channels/<str:ref>/programming", library.ProgrammingView.as_view()),
    path("libraries", library.LibraryList.as_view()),
    path("libraries/<str:ref>", library.LibraryDetail.as_view()),
    path("libraries/<str:ref>/scan", library.LibraryScan.as_view()),
    path("collections", library.CollectionList.as_view()),
    path("collections/<str:ref>", library.CollectionDetail.as_view()),
    path("media", schedule_api.MediaList.as_view()),
    path("config", config_api.SystemConfigView.as_view()),
    path("streams/<str:ref>/status", streams.StreamStatusView.as_view()),
    path("streams/<str:ref>/health", streams.StreamHealthView.as_view()),
    path("streams/<str:ref>/metrics", streams.StreamMetricsView.as_view()),
    path("streams/<str:ref>/restart", streams.StreamRestart.as_view()),
    path("health", monitoring_api.HealthView.as_view()),
    path("performance", monitoring_api.PerformanceView.as_view()),
    path("availability", monitoring_api.AvailabilityView.as_view()),
    path("alerts", alerts_api.AlertList.as_view()),
    path("viewers", viewers_api.ViewerList.as_view()),
    path("notifications", notifications.NotificationList.as_view()),
    path("notifications/routes", notifications.RouteList.as_view()),
    path("notifications/routes/<str:ref>", notifications.RouteDetail.as_view()),
    path("notifications/routes/<str:ref>/test", notifications.RouteTrial.as_view()),
    path("asrun", asrun_api.AsRunList.as_view()),
    path("resources/status", resources.ResourceStatus.as_view()),
    path("resources/plan", resources.CapacityPlan.as_view()),
    path("resources/allocate", resources.Allocate.as_view()),
    path("resources/release", resources.Release.as_view()),
    path("resources/hosts/<str:name>/drain", resources.HostDrain.as_view()),
    path("resources/hosts/<str:name>/undrain", resources.HostDrain.as_view(undrain=True)),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/channels", permanent=False)),
    path("", include("retrovue.page_urls")),
    path("admin/", admin.site.urls),
    path("hls/<int:number>/<str:filename>", hls_file),
    path("", include("streams_app.iptv_urls")),
    path("metrics", prometheus.metrics_view),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include(api)),
]
