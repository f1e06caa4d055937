"""Pure validation logic: the allow-lists that guard every FFmpeg argv."""
import pytest

from channels_app import validation
from channels_app.profiles import merged_sections
from channels_app.validation import ConfigError, bitrate_bps, parse_output_url, validate_config

TEMPLATE_SECTIONS = {
    "stream_settings": {"video_codec": "h264", "audio_codec": "aac", "bitrate": "5000k",
                        "resolution": "1920x1080", "frame_rate": 30},
    "quality_settings": {"preset": "medium", "crf": 23, "max_bitrate": "6000k", "buffer_size": "12000k"},
    "network_settings": {"multicast_address": "239.0.0.1", "port": 1234, "protocol": "udp"},
    "resource_limits": {"max_cpu_percent": 25, "max_memory_mb": 2048, "max_bandwidth_mbps": 10},
}


def test_product_template_validates_verbatim():
    assert validate_config(TEMPLATE_SECTIONS) == {**TEMPLATE_SECTIONS, "failover_settings": {},
                                                 "placement_settings": {}}


@pytest.mark.parametrize("text,bps", [("5000k", 5_000_000), ("5M", 5_000_000), ("1.5m", 1_500_000),
                                      ("128k", 128_000), ("64000", 64_000)])
def test_bitrates(text, bps):
    assert bitrate_bps(text) == bps


@pytest.mark.parametrize("section,key,value", [
    ("stream_settings", "video_codec", "h264; rm -rf /"),
    ("stream_settings", "video_codec", "theora"),
    ("stream_settings", "audio_codec", "opus"),
    ("stream_settings", "bitrate", "-5000k"),
    ("stream_settings", "bitrate", "5000kb"),
    ("stream_settings", "bitrate", "1k"),
    ("stream_settings", "resolution", "1920x"),
    ("stream_settings", "resolution", "1921x1080"),
    ("stream_settings", "frame_rate", 0),
    ("stream_settings", "frame_rate", "fast"),
    ("quality_settings", "preset", "ludicrous"),
    ("quality_settings", "crf", 52),
    ("quality_settings", "crf", 2.5),
    ("network_settings", "port", 0),
    ("network_settings", "port", 65536),
    ("network_settings", "port", True),
    ("network_settings", "multicast_address", "not-an-ip"),
    ("network_settings", "multicast_address", "239.0.0.1;reboot"),
    ("network_settings", "multicast_address", "0.0.0.0"),
    ("network_settings", "protocol", "tcp"),
    ("resource_limits", "max_memory_mb", -1),
    ("stream_settings", "colour", "red"),
])
def test_bad_values_are_refused_with_the_field_named(section, key, value):
    sections = {name: dict(values) for name, values in TEMPLATE_SECTIONS.items()}
    sections[section][key] = value
    with pytest.raises(ConfigError) as caught:
        validate_config(sections)
    assert list(caught.value.errors) == [f"{section}.{key}"]
    assert "\n" not in caught.value.one_line()


def test_copy_needs_no_resolution_and_quality_profile_fills_settings():
    sections = merged_sections(3, "copy")
    assert validate_config(sections)["stream_settings"]["video_codec"] == "copy"
    assert merged_sections(3, "480p")["stream_settings"]["resolution"] == "854x480"
    assert merged_sections(3, None)["network_settings"] == {
        "protocol": "udp", "multicast_address": "127.0.0.1", "port": 5003}


def test_explicit_settings_override_the_profile():
    sections = merged_sections(1, "720p", {"stream_settings": {"bitrate": "2500k"}})
    assert sections["stream_settings"]["bitrate"] == "2500k"
    assert sections["stream_settings"]["resolution"] == "1280x720"


def test_output_url():
    assert parse_output_url("udp://127.0.0.1:5001") == {
        "protocol": "udp", "multicast_address": "127.0.0.1", "port": 5001}
    assert parse_output_url("udp://[::1]:5001")["multicast_address"] == "::1"
    for bad in ("udp://127.0.0.1", "tcp://127.0.0.1:5", "udp://host.example:5001", "udp://1.2.3.4:70000"):
        with pytest.raises(ConfigError):
            parse_output_url(bad)


def test_playlist_must_stay_under_media_roots(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    (root / "a.mp4").write_bytes(b"x")
    (tmp_path / "outside.mp4").write_bytes(b"x")
    assert validation.validate_playlist([str(root / "a.mp4")], [root]) == [str(root / "a.mp4")]
    for bad in ([str(tmp_path / "outside.mp4")], [str(root / "../outside.mp4")],
                [str(root / "missing.mp4")], [str(root)], "a.mp4", [str(root / "a\n.mp4")]):
        with pytest.raises(ConfigError):
            validation.validate_playlist(bad, [root])


def with_network(**network):
    sections = {**TEMPLATE_SECTIONS, "network_settings": {**TEMPLATE_SECTIONS["network_settings"], **network}}
    return validate_config(sections)


def test_cbr_with_a_rate_that_holds_the_stream_and_service_information_validate():
    clean = with_network(mode="cbr", muxrate="6500k", service_id=301, transport_stream_id=77,
                         original_network_id=8472, provider_name="Kanal Süd")
    assert clean["network_settings"]["muxrate"] == "6500k" and clean["network_settings"]["service_id"] == 301


@pytest.mark.parametrize("network,field,says", [
    ({"mode": "cbr", "muxrate": "5000k"}, "network_settings.muxrate", "at least 5898k"),  # 5000k + 128k, +15 %
    ({"mode": "cbr"}, "network_settings.muxrate", "required with mode cbr"),
    ({"muxrate": "8000k"}, "network_settings.muxrate", "only with mode cbr"),
    ({"mode": "abr"}, "network_settings.mode", "not an allowed mux mode"),
    ({"service_id": 0}, "network_settings.service_id", "outside 1..65535"),
    ({"transport_stream_id": 65536}, "network_settings.transport_stream_id", "outside 1..65535"),
    ({"original_network_id": "x"}, "network_settings.original_network_id", "not a network id"),
    ({"provider_name": "a\x07b"}, "network_settings.provider_name", "XML cannot carry"),
    ({"provider_name": "p" * 65}, "network_settings.provider_name", "at most 64"),
])
def test_cbr_and_service_information_refusals_name_the_field(network, field, says):
    with pytest.raises(ConfigError) as refused:
        with_network(**network)
    assert says in refused.value.errors[field][0], refused.value.errors
