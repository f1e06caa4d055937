"""The IPTV surface's URLs, mounted twice: at their public paths, and all of them again under
/iptv/t/<token>/, where the path carries RETROVUE_IPTV_TOKEN. Generated URLs use that form:
clients append queries of their own to the URLs they are given (Jellyfin's `?transcode=...`)."""
from django.urls import include, path

from . import iptv, viewers

CLIENT = [
    path("channels.m3u", iptv.playlist, name="iptv-playlist"),
    path("xmltv.xml", iptv.guide, name="iptv-guide"),
    path("channels/<int:number>.ts", viewers.channel_stream, name="iptv-stream"),
    path("logos/<int:number>.<str:ext>", iptv.channel_logo, name="iptv-logo"),
    path("artwork/<int:asset_id>.<str:ext>", iptv.asset_artwork, name="iptv-artwork"),
]
TUNER = [
    path("discover.json", iptv.discover, name="hdhr-discover"),
    path("lineup.json", iptv.lineup, name="hdhr-lineup"),
    path("lineup_status.json", iptv.lineup_status, name="hdhr-lineup-status"),
    path("lineup.post", iptv.lineup_post, name="hdhr-lineup-post"),
    path("device.xml", iptv.device_description, name="hdhr-device"),
]

urlpatterns = [
    path("iptv/", include(CLIENT)),
    *TUNER,
    path("iptv/t/<str:token>/", include(([*CLIENT, *TUNER], "iptv"), namespace=iptv.TOKEN_NAMESPACE)),
]
