"""The admin as a control surface: same validation as the API, actions through the services,
stream history read-only, and changelists that cost a fixed number of queries."""
import json
import re

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app import services
from channels_app.models import Channel, ChannelConfig
from resources_app.models import EncodeHost
from streams_app.models import Stream

from .conftest import wait_status
from .factories import make_channel
from .helpers import wait_for

CHANNELS = "/admin/channels_app/channel/"
STREAMS = "/admin/streams_app/stream/"
HOSTS = "/admin/resources_app/encodehost/"


def add_form(config=None, quality="", **fields):
    """The POST of the channel add page; config sections not given are left as shown ({})."""
    config = config or {}
    return {
        "name": "News", "number": "7", "description": "", "playlist": "[]", **fields,
        "config-TOTAL_FORMS": "1", "config-INITIAL_FORMS": "0",
        "config-MIN_NUM_FORMS": "1", "config-MAX_NUM_FORMS": "1", "config-0-quality": quality,
        **{f"config-0-{name}": json.dumps(config.get(name, {})) for name in ChannelConfig.SECTIONS},
    }


def change_form(channel, config=None, **fields):
    """The POST of a channel's change page, with its config as shown unless overridden."""
    shown = {**channel.config.sections(), **(config or {})}
    return {
        "name": channel.name, "description": channel.description,
        "playlist": json.dumps(channel.playlist), **fields,
        "config-TOTAL_FORMS": "1", "config-INITIAL_FORMS": "1",
        "config-MIN_NUM_FORMS": "1", "config-MAX_NUM_FORMS": "1",
        "config-0-id": str(channel.config.pk), "config-0-channel": str(channel.pk),
        "config-0-quality": "", **{f"config-0-{k}": json.dumps(v) for k, v in shown.items()},
        "streams-TOTAL_FORMS": "0", "streams-INITIAL_FORMS": "0",
    }


def messages_of(response):
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def act(client, action, *channels):
    response = client.post(CHANNELS, {"action": action, "_selected_action": [str(c.pk) for c in channels]})
    assert response.status_code == 302
    return messages_of(response)


def inline_streams(response):
    """The stream runs in the channel page's read-only inline."""
    formset = next(f.formset for f in response.context["inline_admin_formsets"] if f.formset.model is Stream)
    return [form.instance for form in formset.forms]


def test_changelists_render_with_their_columns(admin_client):
    channel = make_channel(3, port=5003)
    Stream.objects.create(channel=channel, host="enc-1", generation=channel.generation,
                          status=Stream.Status.STOPPED)
    EncodeHost.objects.create(name="enc-1", last_heartbeat=timezone.now())

    page = admin_client.get(CHANNELS).content.decode()
    assert '<td class="field-status">Stopped</td>' in page
    assert '<td class="field-host">enc-1</td>' in page
    assert f'{CHANNELS}{channel.pk}/change/">3</a>' in page

    page = admin_client.get(STREAMS).content.decode()
    assert '<td class="field-host">enc-1</td>' in page and "Channel 3" in page

    page = admin_client.get(HOSTS).content.decode()
    assert '<th class="field-name">' in page and ">enc-1</a>" in page


def changelist_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_changelists_cost_the_same_queries_for_more_rows(admin_client):
    def add_running(number, host):
        channel = make_channel(number, port=5000 + number)
        Stream.objects.create(channel=channel, host=host, generation=channel.generation,
                              status=Stream.Status.RUNNING, started_at=timezone.now())
        EncodeHost.objects.get_or_create(name=host, defaults={"last_heartbeat": timezone.now()})

    add_running(1, "enc-1")
    few = [changelist_queries(admin_client, url) for url in (CHANNELS, STREAMS, HOSTS)]
    for number in range(2, 6):
        add_running(number, f"enc-{number}")
    assert [changelist_queries(admin_client, url) for url in (CHANNELS, STREAMS, HOSTS)] == few


def test_host_list_counts_active_channels_and_liveness(admin_client):
    stale = timezone.now() - timezone.timedelta(seconds=settings.RETROVUE_LEASE_TTL_SECONDS + 5)
    EncodeHost.objects.create(name="enc-live", last_heartbeat=timezone.now())
    EncodeHost.objects.create(name="enc-stale", last_heartbeat=stale)
    EncodeHost.objects.create(name="enc-off", state=EncodeHost.State.OFFLINE, last_heartbeat=timezone.now())
    for number, status in ((1, Stream.Status.RUNNING), (2, Stream.Status.STARTING), (3, Stream.Status.STOPPED)):
        channel = make_channel(number, port=5000 + number)
        Stream.objects.create(channel=channel, host="enc-live", generation=0, status=status)

    rows = {host.name: host for host in admin_client.get(HOSTS).context["cl"].result_list}
    assert {name: host.is_live for name, host in rows.items()} == {
        "enc-live": True, "enc-stale": False, "enc-off": False}
    page = admin_client.get(HOSTS).content.decode()
    assert '<td class="field-active_channels">2 / 8</td>' in page
    assert page.count('alt="True"') == 1
    # Reserved beside capacity: nothing is reserved on these hand-made rows (1 core, no memory).
    assert '<td class="field-cpu">0 / 100% (used -)</td>' in page


@pytest.mark.parametrize("config,playlist,field,message", [
    ({"stream_settings": {"bitrate": "-5k"}}, [], "stream_settings",
     "stream_settings.bitrate: '-5k' is not a bitrate"),
    ({"stream_settings": {"video_codec": "h264; rm -rf /"}}, [], "stream_settings",
     "stream_settings.video_codec: 'h264; rm -rf /' is not an allowed video codec"),
    ({"network_settings": {"multicast_address": "0.0.0.0"}}, [], "network_settings",
     "cannot be an output address"),
    ({}, ["/etc/passwd"], "playlist", "is outside the media roots"),
])
def test_add_with_invalid_input_shows_the_error_and_writes_nothing(admin_client, config, playlist,
                                                                     field, message):
    response = admin_client.post(f"{CHANNELS}add/", add_form(config, playlist=json.dumps(playlist)))
    assert response.status_code == 200
    forms = [response.context["adminform"].form] + [
        form for formset in response.context["inline_admin_formsets"] for form in formset.formset.forms]
    errors = [str(e) for form in forms for e in form.errors.get(field, [])]
    assert any(message in e for e in errors), errors
    assert not Channel.objects.exists() and not ChannelConfig.objects.exists()


def test_add_creates_the_channel_and_its_config_through_the_service(admin_client, media, free_port):
    form = add_form({"network_settings": {"port": free_port}}, quality="copy",
                    playlist=json.dumps([str(media["clip"])]))
    response = admin_client.post(f"{CHANNELS}add/", form)
    assert response.status_code == 302, response.context and response.context["errors"]

    channel = services.get_channel(7)
    assert response["Location"] == f"{CHANNELS}"
    assert channel.playlist == [str(media["clip"].resolve())]
    assert channel.config.stream_settings["video_codec"] == "copy"
    # The template fills what the form left out: loopback output, default limits.
    assert channel.config.network_settings == {"protocol": "udp", "multicast_address": "127.0.0.1",
                                               "port": free_port}
    assert channel.config.resource_limits["max_cpu_percent"] == 25
    assert (channel.status, channel.desired_state, channel.generation) == ("STOPPED", "STOPPED", 0)
    assert admin_client.get(f"{CHANNELS}{channel.pk}/change/").status_code == 200


def test_add_refuses_a_taken_number(admin_client):
    make_channel(7, port=5007)
    response = admin_client.post(f"{CHANNELS}add/", add_form())
    assert response.status_code == 200
    assert "number" in response.context["adminform"].form.errors
    assert Channel.objects.count() == 1


def test_edit_validates_config_and_keeps_state_read_only(admin_client):
    channel = make_channel(4, port=5004)
    url = f"{CHANNELS}{channel.pk}/change/"

    response = admin_client.post(url, change_form(channel, {"stream_settings": {"bitrate": "-5k"}}))
    assert response.status_code == 200
    assert services.get_channel(4).config.stream_settings == channel.config.stream_settings

    bad_state = {"status": "RUNNING", "desired_state": "RUNNING", "generation": "9", "number": "99"}
    settings_ = {**channel.config.stream_settings, "bitrate": "4000k"}
    response = admin_client.post(url, change_form(channel, {"stream_settings": settings_},
                                                  name="Renamed", **bad_state))
    assert response.status_code == 302
    changed = services.get_channel(channel.pk)
    assert changed.name == "Renamed" and changed.config.stream_settings == settings_
    assert (changed.number, changed.status, changed.desired_state, changed.generation) == (
        4, "STOPPED", "STOPPED", 0)


def test_start_refused_by_the_service_is_reported_not_raised(admin_client):
    multicast = make_channel(8, name="mc", network_settings={"multicast_address": "239.1.2.3", "port": 5008})
    assert act(admin_client, "start", multicast) == [
        ("error", "8 mc: start refused: output 239.1.2.3 is not loopback and "
                  "RETROVUE_LOOPBACK_ONLY is set")]
    assert services.get_channel(8).status == "STOPPED"
    assert not Stream.objects.exists()


def test_channel_page_shows_only_the_recent_runs(admin_client):
    channel = make_channel(6, port=5006)
    for generation in range(1, 13):
        Stream.objects.create(channel=channel, host="enc-1", generation=generation, status="STOPPED")
    Channel.objects.filter(pk=channel.pk).update(generation=12)

    streams = inline_streams(admin_client.get(f"{CHANNELS}{channel.pk}/change/"))
    assert sorted(s.generation for s in streams) == list(range(3, 13))
    assert admin_client.get(STREAMS).context["cl"].result_count == 12


def test_streams_admin_is_read_only(admin_client):
    channel = make_channel(5, port=5005)
    stream = Stream.objects.create(channel=channel, host="enc-1", generation=1, status="ERROR",
                                   status_reason="ffmpeg exited 1", argv=["ffmpeg", "-i", "x.mp4"],
                                   health_metrics={"speed": 0.5}, error_log=["x.mp4: No such file"])
    url = f"{STREAMS}{stream.pk}/change/"

    assert admin_client.get(f"{STREAMS}add/").status_code == 403
    assert admin_client.get(f"{STREAMS}{stream.pk}/delete/").status_code == 403
    assert admin_client.post(f"{STREAMS}{stream.pk}/delete/", {"post": "yes"}).status_code == 403
    response = admin_client.post(url, {"host": "elsewhere", "status": "RUNNING"})
    assert response.status_code == 403
    assert Stream.objects.get(pk=stream.pk).host == "enc-1"
    assert 'name="action"' not in admin_client.get(STREAMS).content.decode()

    page = admin_client.get(url).content.decode()
    assert "x.mp4: No such file" in page and "&quot;speed&quot;: 0.5" in page
    assert "ffmpeg exited 1" in page and 'name="host"' not in page


def test_start_restart_stop_actions_run_the_channel_on_the_worker(live_host, admin_client, media,
                                                                  free_port):
    channel = make_channel(9, port=free_port, quality="copy", playlist=[str(media["clip"])])

    assert act(admin_client, "start", channel) == [
        ("success", f"9 Channel 9: start requested, now STARTING on {live_host.host}.")]
    wait_status(9, "RUNNING")
    page = admin_client.get(CHANNELS).content.decode()
    assert '<td class="field-status">Running</td>' in page
    assert f'<td class="field-host">{live_host.host}</td>' in page
    assert '<td class="field-uptime">0:00:' in page
    streams = inline_streams(admin_client.get(f"{CHANNELS}{channel.pk}/change/"))
    assert [(s.host, s.status) for s in streams] == [(live_host.host, "RUNNING")]
    assert admin_client.get(f"{CHANNELS}{channel.pk}/delete/").status_code == 403

    assert act(admin_client, "restart", channel)[0][0] == "success"
    wait_for(lambda: Stream.objects.filter(channel=channel, restart_count=1, status="RUNNING").exists(),
             what="FFmpeg restarted in place")

    assert act(admin_client, "stop", channel)[0][0] == "success"
    wait_status(9, "STOPPED")

    response = admin_client.post(f"{CHANNELS}{channel.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Channel.objects.exists() and not Stream.objects.exists()


@pytest.mark.django_db
def test_bulk_actions_call_the_bulk_services(admin_client):
    from channels_app.models import Channel

    channel = make_channel(77, port=5077)
    Channel.objects.filter(pk=channel.pk).update(status="ERROR", desired_state="RUNNING")
    response = admin_client.post("/admin/channels_app/channel/", {
        "action": "stop_all", "_selected_action": [str(channel.pk)]}, follow=True)
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["stop all: 77: STOPPED"]
    assert Channel.objects.get(pk=channel.pk).desired_state == "STOPPED"


def test_channel_admin_links_to_its_dashboard_page(admin_client):
    channel = make_channel(7, port=5007)
    page = admin_client.get(f"/admin/channels_app/channel/{channel.pk}/change/").content.decode()
    link = re.search(r'href="(/admin/r/[^"]+)"[^>]*>View on site', page)
    assert link, "the admin offers View on site"
    response = admin_client.get(link.group(1))
    assert response.status_code == 302 and response["Location"].endswith("/channels/7")
