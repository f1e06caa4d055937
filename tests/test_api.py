"""API contract: auth, ids by UUID or number, 400 with per-field errors and nothing written."""
import ipaddress
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.models import Channel, ChannelConfig, Schedule
from resources_app.models import EncodeHost
from streams_app.models import Stream

from .test_streaming import TEMPLATE

BAD_BODIES = [
    ("stream_settings.video_codec", {"stream_settings": {**TEMPLATE["stream_settings"], "video_codec": "theora"}}),
    ("stream_settings.video_codec", {"stream_settings": {**TEMPLATE["stream_settings"], "video_codec": "h264; rm -rf /"}}),
    ("stream_settings.bitrate", {"stream_settings": {**TEMPLATE["stream_settings"], "bitrate": "-5000k"}}),
    ("stream_settings.bitrate", {"stream_settings": {**TEMPLATE["stream_settings"], "bitrate": "lots"}}),
    ("stream_settings.resolution", {"stream_settings": {**TEMPLATE["stream_settings"], "resolution": "1920x"}}),
    ("network_settings.port", {"network_settings": {**TEMPLATE["network_settings"], "port": 70000}}),
    ("network_settings.port", {"network_settings": {**TEMPLATE["network_settings"], "port": 0}}),
    ("network_settings.multicast_address", {"network_settings": {**TEMPLATE["network_settings"], "multicast_address": "tv.example.com"}}),
    # Outputs: only the networks this site allows (a public address is not among the defaults), TTL capped.
    ("network_settings.multicast_address", {"network_settings": {**TEMPLATE["network_settings"], "multicast_address": "8.8.8.8"}}),
    ("network_settings.ttl", {"network_settings": {**TEMPLATE["network_settings"], "ttl": 200}}),
    ("quality", {"quality": "4k"}),
    ("quality", {"quality": {}}),
    ("quality", {"quality": []}),
    ("name", {"name": ""}),
    ("number", {"number": -3}),
    ("colour", {"colour": "red"}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("field,change", BAD_BODIES, ids=[f for f, _ in BAD_BODIES])
def test_bad_input_is_400_with_the_field_and_nothing_written(api, field, change):
    response = api.post("/api/channels", {**TEMPLATE, **change}, format="json")
    assert response.status_code == 400
    assert field in response.data, response.data
    assert not Channel.objects.exists() and not ChannelConfig.objects.exists()


@pytest.mark.django_db
def test_playlist_outside_media_roots_or_missing_is_refused(api, media, tmp_path):
    outside = tmp_path / "x.mp4"
    outside.write_bytes(b"x")
    for path in (str(outside), str(media["clip"].parent / "nope.mp4"), "/etc/passwd"):
        response = api.post("/api/channels", {**TEMPLATE, "playlist": [path]}, format="json")
        assert response.status_code == 400 and "playlist[0]" in response.data
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_template_is_accepted_verbatim_and_readable_by_uuid_or_number(api):
    created = api.post("/api/channels", TEMPLATE, format="json")
    assert created.status_code == 201
    for key in ("stream_settings", "quality_settings", "network_settings", "resource_limits"):
        assert created.data["config"][key] == TEMPLATE[key]
    by_number = api.get("/api/channels/1").data
    by_uuid = api.get(f"/api/channels/{created.data['id']}").data
    assert by_number == by_uuid
    assert {"id", "number", "name", "status", "host", "config"} <= set(by_number)
    assert api.post("/api/channels", TEMPLATE, format="json").data == {
        "number": ["channel number 1 is already taken"]}
    assert api.get("/api/channels/2").status_code == 404
    assert api.get("/api/channels/not-a-uuid").status_code == 404
    assert [c["number"] for c in api.get("/api/channels").data] == [1]


@pytest.mark.django_db
def test_config_update_validates_and_applies_quality(api):
    api.post("/api/channels", TEMPLATE, format="json")
    bad = api.put("/api/channels/1/config", {"quality_settings": {"crf": 99}}, format="json")
    assert bad.status_code == 400 and "quality_settings.crf" in bad.data
    assert ChannelConfig.objects.get().quality_settings["crf"] == 23
    good = api.put("/api/channels/1/config", {"quality": "480p", "network_settings": {"port": 5600}},
                   format="json")
    assert good.status_code == 200
    config = good.data["config"]
    assert config["stream_settings"]["resolution"] == "854x480"
    assert config["network_settings"] == {**TEMPLATE["network_settings"], "port": 5600}


@pytest.mark.django_db
def test_multicast_output_is_refused_to_start_when_loopback_only(api):
    """The test environment may never send to a multicast group: start is refused, nothing queued."""
    api.post("/api/channels", TEMPLATE, format="json")
    response = api.post("/api/channels/1/start")
    assert response.status_code == 409 and "loopback" in response.data["detail"]
    assert Channel.objects.get(number=1).status == "STOPPED" and not Stream.objects.exists()


@pytest.mark.django_db
def test_start_without_a_live_host_is_refused_cleanly(api):
    api.post("/api/channels", {**TEMPLATE, "network_settings": {"multicast_address": "127.0.0.1", "port": 5999}},
             format="json")
    response = api.post("/api/channels/1/start")
    assert response.status_code == 503 and "no encode host" in response.data["detail"]
    assert Channel.objects.get(number=1).status == "STOPPED" and not Stream.objects.exists()
    EncodeHost.objects.create(name="enc-quiet", last_heartbeat=timezone.now() - timedelta(seconds=30))
    detail = api.post("/api/channels/1/start").data["detail"]
    assert re.search(r"enc-quiet: ONLINE, heartbeat 3\d\.\ds ago", detail), detail


@pytest.mark.django_db
def test_delete_refused_while_running_allowed_when_stopped(api):
    api.post("/api/channels", TEMPLATE, format="json")
    Channel.objects.filter(number=1).update(status="RUNNING", desired_state="RUNNING")
    assert api.delete("/api/channels/1").status_code == 409
    Channel.objects.filter(number=1).update(status="STOPPED", desired_state="STOPPED")
    assert api.delete("/api/channels/1").status_code == 204
    assert not Channel.objects.exists() and not ChannelConfig.objects.exists()


@pytest.mark.django_db
def test_config_update_null_removes_a_key_and_name_can_change(api):
    api.post("/api/channels", {**TEMPLATE, "network_settings": {**TEMPLATE["network_settings"], "ttl": 4}},
             format="json")
    response = api.put("/api/channels/1/config", {"network_settings": {"ttl": None}, "name": "Renamed"},
                       format="json")
    assert response.status_code == 200
    assert response.data["config"]["network_settings"] == TEMPLATE["network_settings"]
    assert response.data["name"] == "Renamed"
    assert api.put("/api/channels/1/config", {"name": ""}, format="json").status_code == 400


@pytest.mark.django_db
def test_failover_settings_are_settable_and_validated(api):
    api.post("/api/channels", TEMPLATE, format="json")
    assert api.get("/api/channels/1").data["config"]["failover_settings"] == {}
    bad = api.put("/api/channels/1/config", {"failover_settings": {
        "auto_restart": "sometimes", "max_restart_attempts": -1, "restart_delay_seconds": 99999}},
        format="json")
    assert bad.status_code == 400
    assert set(bad.data) == {"failover_settings.auto_restart", "failover_settings.max_restart_attempts",
                             "failover_settings.restart_delay_seconds"}
    good = api.put("/api/channels/1/config", {"failover_settings": {
        "auto_restart": False, "max_restart_attempts": 5, "restart_delay_seconds": 30}}, format="json")
    assert good.status_code == 200
    assert ChannelConfig.objects.get().failover() == {
        "auto_restart": False, "max_restart_attempts": 5, "restart_delay_seconds": 30}


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["port", "ttl"])
def test_a_number_too_large_for_a_float_is_a_400_not_a_500(api, field):
    network = {**TEMPLATE["network_settings"], field: "NUMBER"}
    body = json.dumps({**TEMPLATE, "network_settings": network}).replace('"NUMBER"', "1e309")
    response = api.generic("POST", "/api/channels", body, content_type="application/json")
    assert response.status_code == 400 and f"network_settings.{field}" in response.data, response.content
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_a_channel_configured_before_the_output_networks_narrowed_is_refused_at_start(api, settings):
    assert api.post("/api/channels", TEMPLATE, format="json").status_code == 201
    settings.RETROVUE_OUTPUT_NETWORKS = [ipaddress.ip_network("10.99.0.0/16")]
    response = api.post("/api/channels/1/start")
    assert response.status_code == 409 and "RETROVUE_OUTPUT_NETWORKS" in response.data["detail"], response.data
    assert Channel.objects.get(number=1).desired_state == "STOPPED" and not Stream.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field,change", [
    ("name", {"name": "News\ufffe"}),
    ("description", {"description": "x" * 2001}),  # refused, never cut to fit
    ("description", {"description": {"a": 1}}),  # never stored as its repr
    ("description", {"description": "bell \x07"}),
], ids=["U+FFFE in a name", "long description", "dict description", "control character"])
def test_text_the_guide_cannot_carry_or_that_would_be_cut_is_a_400(api, field, change):
    response = api.post("/api/channels", {**TEMPLATE, **change}, format="json")
    assert response.status_code == 400 and field in response.data, response.data
    assert not Channel.objects.exists()
    assert api.post("/api/channels", {**TEMPLATE, "description": "x" * 2000}, format="json").status_code == 201
    assert api.put("/api/channels/1/config", change, format="json").status_code == 400
    assert Channel.objects.get(number=1).description == "x" * 2000


@pytest.mark.django_db
def test_a_program_title_the_guide_cannot_carry_is_a_400_and_the_guide_stays_valid(api, media, client):
    assert api.post("/api/channels", TEMPLATE, format="json").status_code == 201
    start = (timezone.now() + timedelta(minutes=5)).isoformat()
    program = {"asset": str(media["clip"]), "start": start, "title": "Late\ufffeShow"}
    response = api.put("/api/channels/1/schedule", {"programs": [program]}, format="json")
    assert response.status_code == 400 and "programs[0].title" in response.data, response.data
    guide = client.get("/iptv/xmltv.xml")
    assert guide.status_code == 200 and "\ufffe" not in guide.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("start", ["9999-12-31T23:59:55+00:00", "1900-01-01T00:00:00+00:00"])
def test_a_program_out_of_any_guide_s_range_is_a_400_and_nothing_is_stored(api, media, client, start):
    assert api.post("/api/channels", TEMPLATE, format="json").status_code == 201
    response = api.put("/api/channels/1/schedule", {"programs": [{"asset": str(media["clip"]), "start": start}]},
                       format="json")
    assert response.status_code == 400 and "programs[0].start" in response.data, response.data
    assert Channel.objects.get(number=1).current_schedule is None
    assert client.get("/iptv/xmltv.xml").status_code == 200
    assert api.get("/api/channels/1/schedule").status_code == 200


@pytest.mark.django_db
def test_a_schedule_whose_timeline_cannot_be_worked_out_is_not_committed(api, media, monkeypatch):
    from channels_app import programming

    assert api.post("/api/channels", TEMPLATE, format="json").status_code == 201

    def overflow(*args, **kwargs):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(programming, "channel_segments", overflow)
    response = api.put("/api/channels/1/schedule", {"programs": [{"asset": str(media["clip"])}]}, format="json")
    assert response.status_code == 400 and "programs" in response.data, response.data
    assert Channel.objects.get(number=1).current_schedule is None and not Schedule.objects.exists()
