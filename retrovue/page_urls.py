"""URLs of the operator pages. Each page's changing part has its own URL the page polls."""
from django.contrib import admin
from django.urls import path

from resources_app import pages as resources
from streams_app import channel_pages as channels
from streams_app import asrun_pages, guide_pages
from streams_app import pages as streams

# The admin's "View site" link leads to the dashboards; their header links back to the admin.
admin.site.site_url = "/channels"

urlpatterns = [
    path("channels", channels.channel_list, name="channels"),
    path("channels/live", channels.channel_list, {"partial": True}, name="channels-live"),
    path("channels/start-all", channels.bulk_action, {"action": "start"}, name="channels-start-all"),
    path("channels/stop-all", channels.bulk_action, {"action": "stop"}, name="channels-stop-all"),
    path("channels/<int:number>", channels.channel_detail, name="channel"),
    path("channels/<int:number>/live", channels.channel_detail, {"partial": True}, name="channel-live"),
    path("channels/<int:number>/thumbnail.jpg", channels.channel_thumbnail, name="channel-thumbnail"),
    *[path(f"channels/<int:number>/{action}", channels.channel_action, {"action": action},
           name=f"channel-{action}") for action in channels.ACTIONS],
    path("streams", streams.stream_monitor, name="streams"),
    *[path(f"streams/{part}", streams.stream_monitor, {"part": part}, name=f"streams-{part}")
      for part in streams.PARTS],
    path("asrun", asrun_pages.as_run_page, name="asrun"),
    path("guide", guide_pages.guide_page, name="guide"),
    path("resources", resources.resources_page, name="resources"),
    path("resources/live", resources.resources_page, {"partial": True}, name="resources-live"),
    path("resources/hosts/<str:name>/drain", resources.drain, name="host-drain"),
    path("resources/hosts/<str:name>/undrain", resources.undrain, name="host-undrain"),
    path("resources/allocate", resources.allocate, name="resources-allocate"),
    path("resources/release", resources.release, name="resources-release"),
]
